"""What a caller holds while its request is generated: a stream of events from the scheduler.

The scheduler thread puts :class:`Delta` events (new text per candidate) as tokens are chosen,
then one :class:`~tunesmith.types.Generation` (the whole answer) or an error. A caller reads
them with a plain ``for`` (blocking, for the SDK and threads) or ``async for`` (the HTTP
routes: waiting costs the event loop nothing and holds no thread).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from ..records.generation import Delta
from ..types import Generation

Event = Delta | Generation


class Stream:
    def __init__(self) -> None:
        self._events: deque[Event | BaseException] = deque()
        self._cond = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._done = False
        self.cancelled = False

    # -- the scheduler's side ----------------------------------------------------------

    def put(self, event: Event | BaseException) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)

    # -- the caller's side -------------------------------------------------------------

    def cancel(self) -> None:
        """The caller has gone: its rows leave the batch at the next step."""
        self.cancelled = True

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Event:
        with self._cond:
            while not self._events:
                if self._done:
                    raise StopIteration
                self._cond.wait()
            event = self._events.popleft()
        return self._deliver(event)

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Event:
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._events:
                    event = self._events.popleft()
                    break
                if self._done:
                    raise StopAsyncIteration
                fut = loop.create_future()
                self._waiters.append((loop, fut))
            await fut
        return self._deliver(event)

    def result(self) -> Generation:
        """Wait for the whole answer (blocking)."""
        for event in self:
            if isinstance(event, Generation):
                return event
        raise RuntimeError("the stream ended without an answer")

    async def aresult(self) -> Generation:
        """Wait for the whole answer without blocking the event loop."""
        try:
            async for event in self:
                if isinstance(event, Generation):
                    return event
        finally:
            self.cancel()  # no-op when finished; stops the rows if the caller was cancelled
        raise RuntimeError("the stream ended without an answer")

    def _deliver(self, event: Event | BaseException) -> Event:
        if isinstance(event, BaseException):
            self._done = True
            raise event
        if isinstance(event, Generation):
            self._done = True
        return event


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)

"""What a caller holds while its request is generated: a stream of events from the scheduler.

The scheduler thread puts :class:`Delta` events (new text per candidate) as tokens are chosen,
then one :class:`~tunesmith.types.Generation` (the whole answer) or an error. A caller reads
them with a plain ``for`` (blocking, for the SDK and threads) or ``async for`` (the HTTP
routes: waiting costs the event loop nothing and holds no thread).

A caller that wants only the whole answer (:meth:`Stream.result`, :meth:`Stream.aresult`) is
woken once, by the answer, not by every token: with many requests in a batch, waking each
caller's thread at every step makes those threads compete with the scheduler thread for the
GIL between its kernels.
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
        self._final_only = False  # the caller waits for the answer alone: no wake per token
        self.cancelled = False

    # -- the scheduler's side ----------------------------------------------------------

    def put(self, event: Event | BaseException) -> None:
        final = isinstance(event, (Generation, BaseException))
        waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        with self._cond:
            self._events.append(event)
            if final or not self._final_only:
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
        with self._cond:
            self._final_only = True
            while (event := self._take_final()) is None:
                self._cond.wait()
        return self._answer(event)

    async def aresult(self) -> Generation:
        """Wait for the whole answer without blocking the event loop."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                with self._cond:
                    self._final_only = True
                    event = self._take_final()
                    if event is None:
                        fut = loop.create_future()
                        self._waiters.append((loop, fut))
                if event is not None:
                    return self._answer(event)
                await fut
        finally:
            self.cancel()  # no-op when finished; stops the rows if the caller was cancelled

    def _take_final(self) -> Event | BaseException | None:
        """The answer or the error, once it has come; the text deltas before it are dropped
        (called with the lock held)."""
        if self._done:
            raise RuntimeError("the stream ended without an answer")
        while self._events:
            event = self._events.popleft()
            if isinstance(event, (Generation, BaseException)):
                return event
        return None

    def _answer(self, event: Event | BaseException) -> Generation:
        answer = self._deliver(event)
        assert isinstance(answer, Generation)  # _take_final returns nothing else
        return answer

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

"""How many threads serving decodes on, for both engines: every core, or one while a tuning
run trains on this machine (llama.cpp's contexts that decode at once share that count:
:data:`.llama.CONTEXTS`).

A decoding step is hundreds of small parallel pieces, each ending at a barrier where every
thread waits for the slowest. Beside a run that keeps the cores busy, a second thread waits at
each barrier for a core the run holds: llama.cpp fell from 83 to 4.6 tokens/s on 2 cores, and
62 on one thread (``benchmarks/serving_beside_tuning.py``). Whether a run trains is the
machine's training lock (:mod:`tunesmith.engine.cores`), so a worker in another process counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

CHECK_SECONDS = 0.5  # how often decoding asks whether a tuning run trains beside it


def decode_threads() -> int:
    """The threads to decode on now: one while a tuning run trains here, else one per core."""
    from ..engine import cores

    return 1 if cores.training_now() else cores.usable()


class Follower:
    """Keeps an engine on :func:`decode_threads`' count (or ``wanted``'s, a share of it):
    called before each decoding step, it asks at most every :data:`CHECK_SECONDS` (a run that
    starts mid-answer is noticed within that) and changes the engine's count through
    ``apply`` when ``current`` differs."""

    def __init__(
        self,
        current: Callable[[], int],
        apply: Callable[[int], None],
        wanted: Callable[[], int] = decode_threads,
    ):
        self._current, self._apply, self._wanted = current, apply, wanted
        self._checked = -math.inf

    def recheck(self) -> None:
        """Ask again at the next step (what ``wanted`` depends on changed)."""
        self._checked = -math.inf

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._checked < CHECK_SECONDS:
            return
        self._checked = now
        threads = self._wanted()
        if threads != self._current():
            self._apply(threads)

"""Test-only: on PYTHONPATH, makes a tuning run hang for real after its first step when its
training data contains ``TUNESMITH_TEST_HANG_WORD`` (nothing happens without the variable).

The step's callback then blocks forever inside the worker process, exactly as a run stuck in
torch would: no further step ever comes, while the worker's heartbeat thread keeps its lease.
"""

import os

_WORD = os.environ.get("TUNESMITH_TEST_HANG_WORD")

if _WORD:
    import threading

    from tunesmith.engine import recipe

    _real_run = recipe.run

    def _run(r, on_step):
        hangs = any(_WORD in str(e) for e in r.examples)

        def step(report):
            answer = on_step(report)
            if hangs:
                threading.Event().wait()  # never set: the run hangs here
            return answer

        return _real_run(r, step)

    recipe.run = _run

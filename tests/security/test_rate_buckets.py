"""The requests-per-minute rule of api/limits.py, on a clock the test moves: a key's budget,
and operation reads (what google-generativeai's ``wait_bar`` sends without sleeping) in a
bucket of their own, paced for one poller and refused to a flood."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tunesmith.api.limits import MAX_PACE, GuardMiddleware, TokenBuckets
from tunesmith.settings import Settings

OPERATION = "/v1beta/tunedModels/m/operations/op1"


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep_and_advance(self, seconds: float) -> None:  # one request at a time
        self.slept.append(seconds)
        self.now += seconds

    async def sleep_frozen(self, seconds: float) -> None:  # many at the same instant
        self.slept.append(seconds)
        await asyncio.sleep(0)


async def answered_by_the_route(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def guard(clock: Clock, frozen: bool = False, rpm: int = 600) -> GuardMiddleware:
    settings = Settings(
        home=Path("/nonexistent"), database_url="sqlite://", requests_per_minute=rpm
    )
    sleep = clock.sleep_frozen if frozen else clock.sleep_and_advance
    return GuardMiddleware(answered_by_the_route, settings, clock=clock, sleep=sleep)


def run(app, calls):
    """Send ``calls`` (``(key, method, path)``) in order, one at a time; their responses."""

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return [
                await c.request(method, path, headers={"x-goog-api-key": key})
                for key, method, path in calls
            ]

    return asyncio.run(main())


def run_at_once(app, calls):
    """Send ``calls`` all at the same time; their responses, in the order given."""

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(
                *(
                    c.request(method, path, headers={"x-goog-api-key": key})
                    for key, method, path in calls
                )
            )

    return asyncio.run(main())


def codes(responses) -> list[int]:
    return [r.status_code for r in responses]


# -- TokenBuckets --------------------------------------------------------------------------


def test_a_bucket_holds_a_minute_then_refills_evenly_and_refusals_are_not_counted():
    clock = Clock()
    buckets = TokenBuckets(60, clock=clock)
    assert [buckets.take("a") for _ in range(60)] == [0.0] * 60
    assert buckets.take("a") == 1.0  # one a second
    assert buckets.take("a") == 1.0  # the refusal did not count: still one second away
    assert buckets.take("b") == 0.0  # names are separate
    clock.now += 1.0
    assert buckets.take("a") == 0.0 and buckets.take("a") == 1.0


def test_a_paced_request_is_counted_and_a_longer_wait_is_not():
    clock = Clock()
    buckets = TokenBuckets(60, burst=1, clock=clock)
    assert buckets.take("a", pace_up_to=3) == 0.0
    # Each paced request owes one more second; past 3 s of debt: refused, not counted.
    assert [buckets.take("a", pace_up_to=3) for _ in range(4)] == [1.0, 2.0, 3.0, 4.0]
    assert buckets.take("a", pace_up_to=3) == 4.0
    clock.now += 3.0  # the debt is paid
    assert buckets.take("a", pace_up_to=3) == 1.0


# -- the middleware --------------------------------------------------------------------------


def test_polling_an_operation_does_not_spend_the_keys_budget():
    clock = Clock()
    app = guard(clock)
    # google-generativeai's wait_bar: 2000 reads back to back, for well over a minute.
    polls = run(app, [("k", "GET", OPERATION)] * 2000)
    assert set(codes(polls)) == {200}  # slowed, never refused
    assert clock.now > 60 and max(clock.slept) < 0.1001  # one read's interval at most
    # The key's whole minute is still there for its real calls, and past it: 429.
    calls = run(app, [("k", "POST", "/v1beta/tunedModels/m:generateContent")] * 601)
    assert codes(calls) == [200] * 600 + [429]
    err = calls[-1].json()["error"]
    assert err["code"] == 429 and err["status"] == "RESOURCE_EXHAUSTED"
    assert "over 600 per minute for this API key" in err["message"]
    assert int(calls[-1].headers["retry-after"]) >= 1
    # ... and a spent budget does not stop the key from polling.
    assert codes(run(app, [("k", "GET", OPERATION)])) == [200]


def test_operation_lists_and_waits_are_reads_and_cancelling_is_a_call():
    clock = Clock()
    app = guard(clock, rpm=60)
    reads = ["/v1beta/operations", "/v1beta/tunedModels/m/operations", "/v1/" + OPERATION[8:]]
    assert set(codes(run(app, [("k", "POST", OPERATION + ":wait")] * 70))) == {200}  # paced
    assert set(codes(run(app, [("k", "GET", path) for path in reads * 40]))) == {200}
    cancel = ("k", "POST", OPERATION + ":cancel")
    assert codes(run(app, [cancel] * 61)) == [200] * 60 + [429]


def test_a_flood_of_reads_is_paced_up_to_the_cap_then_refused():
    clock = Clock()
    app = guard(clock, frozen=True)  # 600 a minute: a burst of 10, then 10 a second
    flood = run_at_once(app, [("k", "GET", OPERATION)] * 100)
    assert sorted(codes(flood)) == [200] * 60 + [429] * 40  # 10 at once, 50 paced
    assert max(clock.slept) == MAX_PACE
    err = flood[-1].json()["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED" and "operation reads" in err["message"]
    assert int(flood[-1].headers["retry-after"]) >= 1
    # Another key reads and calls at once meanwhile; this key's calls are not touched either.
    paced = len(clock.slept)
    others = run(app, [("other", "GET", OPERATION), ("other", "GET", "/v1beta/tunedModels")])
    assert codes(others) == [200, 200] and len(clock.slept) == paced
    assert codes(run(app, [("k", "GET", "/v1beta/tunedModels")])) == [200]


def test_a_lone_poller_is_paced_even_at_a_very_low_rate():
    clock = Clock()
    app = guard(clock, rpm=6)  # one read every 10 s, longer than MAX_PACE
    assert set(codes(run(app, [("k", "GET", OPERATION)] * 5))) == {200}
    assert clock.slept and max(clock.slept) < 10.001


def test_requests_without_a_key_and_outside_the_api_are_not_counted():
    clock = Clock()
    app = guard(clock, rpm=1)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return [(await c.get("/v1beta/tunedModels")).status_code for _ in range(5)] + [
                (await c.get("/healthz", headers={"x-goog-api-key": "k"})).status_code
                for _ in range(5)
            ]

    assert asyncio.run(main()) == [200] * 10

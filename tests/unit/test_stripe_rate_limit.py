"""The Stripe stand-in's 429s (paywall/stack/stripe_rate_limit.py), over a real aiohttp server
on loopback; a clock of the test's own makes the per-second limit exact."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from paywall.stack.stripe_rate_limit import ROUTE, RateLimits

KEY = {"Authorization": "Bearer sk_test_a"}


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def created(_: web.Request) -> web.Response:
    return web.json_response({"id": "pi_1"})


def app(limits: RateLimits) -> web.Application:
    application = web.Application()
    application.router.add_post("/v1/payment_intents", created)
    application.router.add_get("/v1/payment_intents", created)
    limits.install(application)
    return application


def run(limits: RateLimits, steps: Any) -> Any:
    async def go() -> Any:
        async with TestClient(TestServer(app(limits))) as client:
            return await steps(client)

    return asyncio.run(go())


def test_the_next_n_matching_calls_answer_429_as_stripe_does() -> None:
    async def steps(client: TestClient) -> list[Any]:
        asked = {"next": 2, "should_retry": True, "retry_after": 1}
        assert (await client.post(ROUTE, json=asked)).status == 200
        other = await client.get("/v1/payment_intents", headers=KEY)  # not the matched call
        out = [other.status]
        for _ in range(3):
            resp = await client.post("/v1/payment_intents", headers=KEY)
            body = await resp.json()
            out.append((resp.status, resp.headers.get("Stripe-Should-Retry"), body))
        out.append(await (await client.get(ROUTE)).json())
        return out

    other, first, second, third, report = run(RateLimits(), steps)
    assert other == 200
    for status, should_retry, body in (first, second):
        assert (status, should_retry) == (429, "true")
        assert body["error"]["code"] == "rate_limit"
    assert third[0] == 200
    assert report == {"per_second": None, "queued": 0, "answered": {"/v1/payment_intents": 2}}


def test_past_its_per_second_limit_it_answers_429_until_the_second_has_passed() -> None:
    clock = Clock()

    async def steps(client: TestClient) -> list[int]:
        await client.post(ROUTE, json={"per_second": 2})
        statuses = []
        for step in (0.0, 0.3, 0.3, 0.3, 0.5):  # at 100.0, 100.3, 100.6, 100.9, 101.4
            clock.now += step
            statuses.append((await client.post("/v1/payment_intents", headers=KEY)).status)
        # Another account has a budget of its own.
        other = await client.post("/v1/payment_intents", headers={"Authorization": "Bearer b"})
        return [*statuses, other.status]

    # 100.0 and 100.3 pass; 100.6 and 100.9 find two in the last second; at 101.4 the
    # window holds only 100.6/100.9's refusals, which were never counted.
    assert run(RateLimits(clock), steps) == [200, 200, 429, 429, 200, 200]

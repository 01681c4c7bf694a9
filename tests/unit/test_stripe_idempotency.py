"""The Stripe stand-in's Idempotency-Key expiry (paywall/stack/localstripe_server.py): a key
is replayed for IDEMPOTENCY_SECONDS after its request and not after, whatever order the
answers were saved in; a clock of the test's own makes the ages exact."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from paywall.stack.localstripe_server import IDEMPOTENCY_SECONDS, idempotency

AUTH = {"Authorization": "Bearer sk_test_a"}


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_saved_after_a_younger_one_still_expires_on_time() -> None:
    clock = Clock()
    numbers = itertools.count(1)
    slow_may_answer = asyncio.Event()

    async def create(request: web.Request) -> web.Response:
        if request.headers["Idempotency-Key"] == "slow":
            await slow_may_answer.wait()
        return web.json_response({"id": f"cus_{next(numbers)}"})

    app = web.Application(middlewares=[idempotency(clock)])
    app.router.add_post("/v1/customers", create)

    async def post(client: TestClient, key: str) -> tuple[Any, str | None]:
        resp = await client.post("/v1/customers", headers={**AUTH, "Idempotency-Key": key})
        return (await resp.json())["id"], resp.headers.get("Idempotent-Replayed")

    async def steps() -> list[tuple[Any, str | None]]:
        async with TestClient(TestServer(app)) as client:
            # "slow" asks first (at 1000) but answers after "fast" (asked at 1001), so it is
            # saved after it.
            slow = asyncio.create_task(post(client, "slow"))
            await asyncio.sleep(0.05)
            clock.now = 1001.0
            fast = await post(client, "fast")
            slow_may_answer.set()
            first = [await slow, fast]
            # Half a second past "slow"'s 24 hours, half a second short of "fast"'s.
            clock.now = 1000.0 + IDEMPOTENCY_SECONDS + 0.5
            return [*first, await post(client, "slow"), await post(client, "fast")]

    slow, fast, slow_again, fast_again = asyncio.run(steps())
    assert (slow, fast) == (("cus_2", None), ("cus_1", None))
    assert slow_again == ("cus_3", None)  # expired: run again, not replayed
    assert fast_again == ("cus_1", "true")

"""Run localstripe on loopback with its state in a file of this instance's own.

localstripe pickles its store to a fixed /tmp/localstripe.pickle and listens on every
interface; two stacks on one machine would share (and clobber) that state.

It also pickles the whole store on every object it stores and after every write request:
a signup's five Stripe calls rewrote the growing store eleven times, and localstripe's CPU
per request grew with its age. Here a change only marks the store dirty; it is written at
most every FLUSH_SECONDS and when the server stops (SIGTERM). Writing blocks the server
(0.4-1.3 s for a store of 20,000 PaymentIntents, as busy as the machine is), so the wait
after a write is also at least ten times that write: writing takes at most ~10% of the
server's time however large the store grows. A crash loses the changes since the last
write: half a second while the store is small, ten times a write at most (~4-13 s at
20,000 intents).

localstripe lists any type of object by walking its whole store, a charge's refunds
twice per PaymentIntent confirmed; `localstripe_index` lists each type from an index of
its own instead, in the same order.

localstripe ignores Stripe's Idempotency-Key; real Stripe answers a repeated POST with the
same key (per API key, for 24 hours) with the first answer, refuses it with other
parameters, and refuses it while the first is still running. The payment service relies
on that, and so does the stripe library, which retries a POST whose answer was lost with
the same key: without it a lost answer would be a second charge here and not at Stripe.
`idempotency` gives the stand-in the same contract (kept in memory: a restart forgets it).

Nor does localstripe ever answer 429; `stripe_rate_limit` adds Stripe's rate limits, off
until a test or a benchmark sets them (POST /_config/rate_limit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from paywall.stack.stripe_rate_limit import RateLimits

FLUSH_SECONDS = 0.5
IDEMPOTENCY_SECONDS = 24 * 3600
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def idempotency(clock: Callable[[], float] = time.monotonic) -> Callable[..., object]:
    """aiohttp middleware: Stripe's Idempotency-Key semantics for POST requests."""
    saved: dict[tuple[str, str], tuple[float, str, int, bytes, str]] = {}
    running: set[tuple[str, str]] = set()

    def error(status: int, message: str) -> web.Response:
        body = {"error": {"type": "idempotency_error", "message": message}}
        return web.json_response(body, status=status)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)
        # A key belongs to an account (the API key), as at Stripe.
        account = hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()
        slot = (account, key)
        asked = hashlib.sha256(request.path.encode() + b"\0" + await request.read()).hexdigest()
        now = clock()
        # Forget expired keys oldest first, stopping at the first one still live, rather
        # than checking every saved key on every POST (tens of thousands in a billing day).
        # `saved` is in the order answers were saved, close to but not exactly the order of
        # their request times (a slow request saves after a later fast one), so a key just
        # expired may outlive this sweep briefly; the check of the asked key's own age below
        # keeps it from being replayed.
        while saved:
            oldest = next(iter(saved))
            if now - saved[oldest][0] <= IDEMPOTENCY_SECONDS:
                break
            del saved[oldest]
        if slot in saved and now - saved[slot][0] > IDEMPOTENCY_SECONDS:
            del saved[slot]
        if slot in saved:
            _, fingerprint, status, body, content_type = saved[slot]
            if fingerprint != asked:
                return error(
                    400,
                    "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with.",
                )
            return web.Response(
                status=status,
                body=body,
                content_type=content_type,
                headers={"Idempotent-Replayed": "true", "Idempotency-Key": key},
            )
        if slot in running:
            return error(409, "There is currently another in-progress request using this key.")
        running.add(slot)
        try:
            response = await handler(request)
        finally:
            running.discard(slot)
        # Stripe keeps every answer that ran, declines included, but not its own failures.
        if (
            isinstance(response, web.Response)
            and response.status < 500
            and response.status not in (401, 429)
            and isinstance(response.body, bytes)
        ):
            saved[slot] = (now, asked, response.status, response.body, response.content_type)
        return response

    return middleware


def filter_intent_lists(resources: Any) -> None:
    """Stripe's `customer` and `created` filters on listing PaymentIntents, which localstripe
    refuses: the payment service looks for an interrupted charge's intent by both, and
    reconciliation for a day's by `created`, rather than paging through every intent."""
    listed = resources.StripeObject._api_list_all.__func__

    def filtered(
        cls: Any,
        url: str,
        limit: Any = None,
        starting_after: Any = None,
        customer: str | None = None,
        created: Any = None,
        **kwargs: Any,
    ) -> Any:
        page = listed(cls, url, limit=limit, starting_after=starting_after, **kwargs)
        bounds = (
            created if isinstance(created, dict) else {} if created is None else {"eq": created}
        )
        page._list = [
            pi
            for pi in page._list
            if (customer is None or pi.customer == customer)
            and all(_compare(op, int(pi.created), int(v)) for op, v in bounds.items())
        ]
        return page

    resources.PaymentIntent._api_list_all = classmethod(filtered)


def _compare(op: str, value: int, bound: int) -> bool:
    checks = {"gt": value > bound, "gte": value >= bound, "lt": value < bound}
    checks |= {"lte": value <= bound, "eq": value == bound}
    if op not in checks:
        from localstripe.errors import UserError

        raise UserError(400, f"Unexpected created[{op}]")
    return checks[op]


def serve(host: str, port: int, state: Path, flush_seconds: float = FLUSH_SECONDS) -> None:
    from localstripe import resources, server

    # Imported here, as localstripe is: it checks localstripe's internals on import.
    from paywall.stack import localstripe_index

    dirty = False

    def load(store: resources.Store) -> None:
        if state.exists():
            with state.open("rb") as f:
                store.clear()
                store.update(pickle.load(f))

    def mark_dirty(_: resources.Store) -> None:
        nonlocal dirty
        dirty = True

    def write() -> None:
        nonlocal dirty
        dirty = False
        tmp = state.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(dict(resources.store), f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(state)

    async def flushing(_: web.Application) -> AsyncIterator[None]:
        async def flush_loop() -> None:
            took = 0.0
            while True:
                # Writing blocks the event loop for as long as pickling the whole store
                # takes; waiting ten times that between writes bounds it to ~10% of the time.
                await asyncio.sleep(max(flush_seconds, 10 * took))
                if dirty:
                    started = time.monotonic()
                    write()
                    took = time.monotonic() - started

        task = asyncio.create_task(flush_loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if dirty:
            write()

    # Before filter_intent_lists, which wraps the base list as it finds it. The load below
    # fills the store with update(), which rebuilds the index from what was loaded.
    localstripe_index.install()
    filter_intent_lists(resources)
    resources.Store.try_load_from_disk = load  # type: ignore[method-assign]
    resources.Store.dump_to_disk = mark_dirty  # type: ignore[method-assign]
    resources.store.try_load_from_disk()
    server.app.cleanup_ctx.append(flushing)
    # Outermost, so what it saves is the answer the client got (errors already rendered).
    server.app.middlewares.insert(0, idempotency())
    # Outside even that: Stripe's 429s (stripe_rate_limit.py), off until configured.
    RateLimits().install(server.app)
    web.run_app(server.app, host=host, port=port, access_log=None, print=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    serve(args.host, args.port, args.state)


if __name__ == "__main__":
    main()

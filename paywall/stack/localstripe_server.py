"""Run localstripe on loopback with its state in a file of this instance's own.

localstripe pickles its store to a fixed /tmp/localstripe.pickle and listens on every
interface; two stacks on one machine would share (and clobber) that state.

It also pickles the whole store on every object it stores and after every write request:
a signup's five Stripe calls rewrote the growing store eleven times, and localstripe's CPU
per request grew with its age. Here a change only marks the store dirty; it is written at
most every FLUSH_SECONDS and when the server stops (SIGTERM), so a crash loses at most
that last fraction of a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pickle
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

FLUSH_SECONDS = 0.5


def serve(host: str, port: int, state: Path, flush_seconds: float = FLUSH_SECONDS) -> None:
    from localstripe import resources, server

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
            while True:
                await asyncio.sleep(flush_seconds)
                if dirty:
                    write()

        task = asyncio.create_task(flush_loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if dirty:
            write()

    resources.Store.try_load_from_disk = load  # type: ignore[method-assign]
    resources.Store.dump_to_disk = mark_dirty  # type: ignore[method-assign]
    resources.store.try_load_from_disk()
    server.app.cleanup_ctx.append(flushing)
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

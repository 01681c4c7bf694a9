"""Run localstripe on loopback with its state in a file of this instance's own.

localstripe pickles its store to a fixed /tmp/localstripe.pickle and listens on every
interface; two stacks on one machine would share (and clobber) that state.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from aiohttp import web


def serve(host: str, port: int, state: Path) -> None:
    from localstripe import resources, server

    def load(store: resources.Store) -> None:
        if state.exists():
            with state.open("rb") as f:
                store.clear()
                store.update(pickle.load(f))

    def dump(store: resources.Store) -> None:
        tmp = state.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(state)

    resources.Store.try_load_from_disk = load  # type: ignore[method-assign]
    resources.Store.dump_to_disk = dump  # type: ignore[method-assign]
    resources.store.try_load_from_disk()
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

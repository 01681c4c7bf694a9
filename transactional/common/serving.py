"""Serve an ASGI app with uvicorn on a background thread (the demo and the tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


@contextmanager
def serving(app: FastAPI, host: str, port: int, timeout: float = 30.0) -> Iterator[str]:
    """Yield the base URL once uvicorn accepts connections; stop it on exit."""
    # log_config=None: uvicorn's own dictConfig would detach its loggers from ours.
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None)
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {host}:{port} did not start")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

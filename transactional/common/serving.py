"""How uvicorn serves the services: `paywall serve`, the demo and the tests alike."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

# The most a request line and headers may take before the server stops reading and answers
# 400. h11, not httptools: httptools buffers a header of any size (an 8 MB one was read
# whole). The app's own, lower limits answer 431 problem+json (HeaderLimits in app.py); this
# bound is what protects memory when a client sends far more.
MAX_REQUEST_HEAD_BYTES = 64 * 1024


def server_config(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Config:
    # log_config=None: uvicorn's own dictConfig would detach its loggers from ours.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        log_config=None,
        **options,
    )


@contextmanager
def serving(app: FastAPI, host: str, port: int, timeout: float = 30.0) -> Iterator[str]:
    """Yield the base URL once uvicorn accepts connections; stop it on exit."""
    server = uvicorn.Server(server_config(app, host, port, log_level="warning"))
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

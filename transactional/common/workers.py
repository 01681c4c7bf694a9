"""`paywall serve --workers N`: gunicorn's arbiter running uvicorn workers, metrics summed.

Gunicorn supervises the processes (restarts a crashed worker, graceful stop on SIGTERM);
each worker is uvicorn with the same server settings as `serving.server_config`. Prometheus
runs in multiprocess mode: every worker writes its series to files in one directory per
run, `/metrics` (transactional.common.app) sums them, and a worker's live gauges go with
it when it exits. The directory must be in the environment before prometheus_client is
first imported, so `serve` creates it before importing any service.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from transactional.common.serving import MAX_REQUEST_HEAD_BYTES

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Worker(UvicornWorker):
    """A uvicorn worker with the options `serving.server_config` gives a single server."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 (the base class declares it so)
        "loop": "auto",
        "http": "h11",
        "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES,
    }


def _post_fork(_server: Any, _worker: Any) -> None:
    # The parent's log writer thread does not survive the fork: each worker starts its own,
    # and uvicorn's loggers go back to ours (uvicorn-worker hands them to gunicorn's), at
    # LOG_LEVEL too: gunicorn's access logger is INFO whatever the level, so under WARNING
    # every request's line was still rendered (redacted, formatted) and written.
    from paywall.logs import configure_logging
    from paywall.settings import get_settings

    configure_logging(get_settings())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [], True
        logger.setLevel(logging.NOTSET)


def _worker_exit(_server: Any, _worker: Any) -> None:
    from paywall.logs import flush_logs

    flush_logs()


def _child_exit(_server: Any, worker: Any) -> None:
    """In the arbiter, whenever a worker ends (crash included): drop its live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class Workers(BaseApplication):  # type: ignore[misc]
    """Gunicorn's documented custom application: its options from code, the app a factory."""

    def __init__(self, factory: Callable[[], FastAPI], options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> FastAPI:
        return self.factory()


def run_workers(factory: Callable[[], FastAPI], host: str, port: int, workers: int) -> None:
    """Serve `factory()`'s app from `workers` processes until SIGTERM or Ctrl-C."""
    Workers(
        factory,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": f"{__name__}.Worker",
            "post_fork": _post_fork,
            "worker_exit": _worker_exit,
            "child_exit": _child_exit,
            "loglevel": "warning",
            # Seconds a stopping worker may finish its requests (a signup's saga included).
            "graceful_timeout": 20,
        },
    ).run()


@contextmanager
def metrics_dir() -> Iterator[str]:
    """A fresh multiprocess directory in the environment for this run, removed afterwards."""
    path = tempfile.mkdtemp(prefix="paywall-metrics-")
    os.environ[MULTIPROC_ENV] = path
    owner = os.getpid()
    try:
        yield path
    finally:
        # Workers are forks of this process and unwind through here too: only the owner
        # removes the directory.
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

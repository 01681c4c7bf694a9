"""Structured logging: JSON lines in production, readable lines locally; request ids bound.

Everything logs through the standard library so uvicorn, alembic and librdkafka wrappers
land in the same stream; structlog renders it. Three rules hold under every renderer:

- secrets never reach a line (`paywall.redaction` runs on every event, tracebacks included);
- a traceback is short and plain: the last frames, never their local variables (those held
  request bodies with passwords in them);
- logging never blocks the caller: a line is rendered where it is logged, then a thread
  writes it, so a slow or stuck stderr cannot stall the event loop (a full queue drops
  lines and counts them rather than wait).
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import time
import traceback
from contextvars import ContextVar
from logging.handlers import QueueHandler, QueueListener

import structlog
from prometheus_client import Counter

from paywall.redaction import redact
from paywall.settings import Settings

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# The frames nearest the error, per exception in a chain: where it happened, not the
# framework's way down to it.
TRACEBACK_FRAMES = 8
QUEUE_SIZE = 10_000
DROPPED = Counter(
    "paywall_log_records_dropped_total", "Log lines dropped because the writer fell behind"
)
_listener: QueueListener | None = None
_lines: queue.Queue[logging.LogRecord] | None = None


def _add_request_id(
    _: object, __: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    rid = request_id.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def short_traceback(exc_info: structlog.types.ExcInfo) -> str:
    """The exception chain with the last frames of each; no local variables."""
    _, exc, tb = exc_info
    assert exc is not None
    lines = traceback.TracebackException(
        type(exc), exc, tb, limit=-TRACEBACK_FRAMES, capture_locals=False
    ).format()
    return "".join(lines).rstrip("\n")


class _NonBlockingQueueHandler(QueueHandler):
    """Renders in the caller (cheap), never waits for the writer thread."""

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            DROPPED.inc()


def configure_logging(settings: Settings) -> None:
    json_out = settings.log_format == "json" or (
        settings.log_format == "auto" and settings.is_production
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_out
        # Never its default (Rich, with every frame's local variables), should an
        # exc_info ever reach it unrendered.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    lines: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_SIZE)
    handler = _NonBlockingQueueHandler(lines)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Render the traceback to text first, so redaction sees it too.
                structlog.processors.ExceptionRenderer(short_traceback),
                redact,
                renderer,
            ],
        )
    )
    _start_writer(lines, logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def _start_writer(lines: queue.Queue[logging.LogRecord], stream: logging.Handler) -> None:
    global _listener, _lines
    if _listener is None:
        atexit.register(flush_logs)
    else:
        flush_logs()  # a second configuration (tests) first drains the first writer
        _listener.stop()
    _listener, _lines = QueueListener(lines, stream), lines
    _listener.start()


def flush_logs(timeout: float = 5.0) -> None:
    """Wait until every line logged so far is written, or `timeout` (a stuck stderr) passes."""
    if _lines is None:
        return
    deadline = time.monotonic() + timeout
    # Queue.join() with a deadline: the same condition and counter it waits on.
    with _lines.all_tasks_done:
        while _lines.unfinished_tasks and (left := deadline - time.monotonic()) > 0:
            _lines.all_tasks_done.wait(left)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)  # type: ignore[no-any-return]

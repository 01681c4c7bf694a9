"""The app factory every service uses: problems, request ids, metrics, limits, health probes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywall.logs import get_logger, request_id
from paywall.settings import get_settings
from transactional.common import api_document, docs_pages, errors, problems
from transactional.common.errors import DomainError
from transactional.common.worker_metrics import WorkerFiles

REQUESTS = Counter(
    "paywall_http_requests_total",
    "HTTP requests by service, route template, method and status",
    ["service", "route", "method", "status"],
)
LATENCY = Histogram(
    "paywall_http_request_duration_seconds",
    "HTTP request latency by service, route template and method",
    ["service", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# One series per live worker process (a `pid` label under `paywall serve --workers N`):
# shows how requests spread over the workers. Gone with its worker (mark_process_dead).
WORKER_REQUESTS = Gauge(
    "paywall_http_worker_requests",
    "HTTP requests this worker process has answered since it started",
    multiprocess_mode="liveall",
)
REQUEST_ID_HEADER = "x-request-id"
# What one request may carry in headers. Kong refuses more than 100 at the edge; the services
# leave room for what Kong and the mesh add on the way (forwarding, tracing, identity).
MAX_HEADERS = 128
MAX_HEADER_BYTES = 32 * 1024
log = get_logger(__name__)

ReadyCheck = Callable[[], None]


class RequestContext:
    """Pure ASGI middleware: request id in and out, and metrics by route template."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        rid = incoming if 0 < len(incoming) <= 128 else uuid.uuid4().hex
        token = request_id.set(rid)
        status, started = 500, False
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message.setdefault("headers", [])
                message["headers"].append((REQUEST_ID_HEADER.encode(), rid.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answered and logged here, once. Re-raised, Starlette's ServerErrorMiddleware
            # and then uvicorn would each log it again, with the same traceback.
            log.error("request.failed", method=scope["method"], path=scope["path"], exc_info=exc)
            if not started:
                failed = DomainError(errors.INTERNAL)
                await problems.problem_response(failed, Request(scope))(
                    scope, receive, send_with_id
                )
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            REQUESTS.labels(self.service, route, method, str(status)).inc()
            LATENCY.labels(self.service, route, method).observe(time.perf_counter() - start)
            WORKER_REQUESTS.inc()
            request_id.reset(token)


class HeaderLimits:
    """Pure ASGI middleware: too many or too large headers get 431 before any route runs.

    The server bounds what it buffers (serving.py); this is the policy clients see.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            size = sum(len(name) + len(value) for name, value in headers)
            if len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
                problem = DomainError(
                    errors.HEADERS_TOO_LARGE,
                    f"at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all",
                )
                await problems.problem_response(problem, Request(scope))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _registry() -> CollectorRegistry:
    """Every worker's series under `paywall serve --workers N`, else this process's own."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    WorkerFiles(registry, os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return registry


def create_app(
    service: str,
    routers: Sequence[APIRouter],
    ready_checks: dict[str, ReadyCheck],
    description: str = "",
    **kwargs: Any,
) -> FastAPI:
    app = FastAPI(
        title=f"Paywall {service} API",
        description=description,
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
        **kwargs,
    )
    problems.install(app)
    api_document.install(app)
    docs_pages.install(app)
    for router in routers:
        app.include_router(router)

    # async: answered on the event loop, so a threadpool full of requests waiting for a
    # database does not make a live process look dead.
    @app.get("/healthz", tags=["probes"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["probes"],
        summary="Readiness: every dependency answers",
        responses={503: {"description": "A dependency is down"}},
    )
    def readyz() -> JSONResponse:
        failed = {}
        for name, check in ready_checks.items():
            try:
                check()
            except Exception as exc:  # any failure means not ready; say which
                failed[name] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if failed:
            body = {"type": "about:blank", "title": "Not Ready", "status": 503, "checks": failed}
            return JSONResponse(body, status_code=503, media_type=problems.PROBLEM_JSON)
        return JSONResponse({"status": "ready", "checks": sorted(ready_checks)})

    @app.get("/metrics", tags=["probes"], include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            generate_latest(_registry()).decode(), media_type=CONTENT_TYPE_LATEST
        )

    app.add_middleware(HeaderLimits)
    origins = get_settings().cors_origins
    if origins:
        # Browsers' apps (the first-party web app, a partner's) call with bearer tokens,
        # never cookies: no credentials. The headers a client reads are exposed.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After", "Idempotent-Replayed", "X-Request-Id"],
            max_age=600,
        )
    app.add_middleware(RequestContext, service=service)  # outermost: added last
    return app

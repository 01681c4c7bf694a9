"""RFC 9457 problem details: every error a client sees has this shape."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as db
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from paywall.logs import get_logger
from transactional.common import errors
from transactional.common.errors import DomainError

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)

# A dependency outage is passing trouble: 503 with a hint of when to come back. A restarted
# pod or server is back within seconds; a Multi-AZ failover takes a minute or two, and a
# short hint keeps clients polling at a pace that does not add to the trouble.
RETRY_AFTER_SECONDS = 5
# Errors that mean a dependency is down or overloaded, never that the request was wrong.
# SQLAlchemy raises OperationalError for a refused, dropped or timed-out connection (and for
# server-side cancels such as deadlocks, also worth a retry), InterfaceError for a connection
# closed under it, TimeoutError when no pooled connection frees up in time.
OUTAGES: dict[type[Exception], str] = {
    db.OperationalError: "postgres",
    db.InterfaceError: "postgres",
    db.TimeoutError: "postgres",
    redis.ConnectionError: "redis",
    redis.TimeoutError: "redis",
}


class ProblemModel(BaseModel):
    """Schema of the problem+json body, for the OpenAPI docs."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def dependency_unavailable(dependency: str) -> DomainError:
    """503 naming the dependency, never its address or credentials."""
    return DomainError(
        errors.DEPENDENCY_UNAVAILABLE,
        f"{dependency} is unavailable; retry after {RETRY_AFTER_SECONDS} seconds",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        dependency=dependency,
    )


def problem_response(error: DomainError, request: Request) -> JSONResponse:
    return JSONResponse(
        error.body(request.url.path),
        status_code=error.problem.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


# A route that answers its errors in another shape (OAuth's RFC 6749 JSON) sets this in its
# `openapi_extra` and documents its errors itself (see `api_document`).
OWN_ERRORS = "x-own-errors"


# What a 405's Allow may list: the methods RFC 9110 defines that an API would route.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts on this path; Starlette names only the first route's.

    Asked of the routes themselves, one method at a time, so that routers FastAPI keeps
    nested (each include_router) answer too.
    """
    routes: list[BaseRoute] = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


def _bad_header(error: dict[str, Any]) -> DomainError:
    # Headers are the request's envelope: one missing or malformed makes the request
    # malformed (400), as the Idempotency-Key money requests need. 422 is about the content.
    name = error["loc"][-1]
    if error["type"] == "missing":
        missing = errors.REQUIRED_HEADERS.get(name, errors.INVALID_HEADER)
        return DomainError(missing, f"send the {name} header")
    return DomainError(errors.INVALID_HEADER, f"{name}: {error['msg']}")


def install(app: Any) -> None:
    """Answer every error as a problem (`api_document` documents them)."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Only the router raises these now (no route, wrong method): services raise
        # DomainError. Anything else keeps its status under a generic title.
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
            return problem_response(
                DomainError(errors.METHOD_NOT_ALLOWED, detail, headers=headers), request
            )
        if exc.status_code == 404:
            return problem_response(DomainError(errors.ROUTE_NOT_FOUND, detail), request)
        if exc.status_code == 400:
            # FastAPI's only 400: a body that is not JSON (or not text) at all.
            return problem_response(DomainError(errors.MALFORMED_BODY, detail), request)
        generic = errors.ProblemType("about:blank", exc.status_code, "Error")
        body = {"type": "about:blank", "title": generic.title, "status": exc.status_code}
        if detail:
            body["detail"] = detail
        return JSONResponse(
            {**body, "instance": request.url.path},
            status_code=exc.status_code,
            media_type=PROBLEM_JSON,
            headers=headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        header = next((e for e in found if e["loc"][:1] == ["header"]), None)
        if header is not None:
            return problem_response(_bad_header(header), request)
        first = found[0] if found else {"loc": [], "msg": "invalid"}
        where = ".".join(first["loc"])
        problem = DomainError(errors.VALIDATION, f"{where}: {first['msg']}", errors=found)
        return problem_response(problem, request)

    @app.exception_handler(db.DataError)
    async def _bad_data(request: Request, exc: db.DataError) -> JSONResponse:
        # The database refused a value the schema let through (a NUL byte in text, a number
        # beyond the column's range): the client's input, and the transaction rolled back.
        reason = str(exc.orig).splitlines()[0][:200] if exc.orig else "invalid value"
        return problem_response(DomainError(errors.UNPROCESSABLE_VALUE, reason), request)

    async def _outage(request: Request, exc: Exception) -> JSONResponse:
        dependency = next(name for kind, name in OUTAGES.items() if isinstance(exc, kind))
        return _unavailable(request, exc, dependency)

    for kind in OUTAGES:
        app.add_exception_handler(kind, _outage)

    @app.exception_handler(db.DBAPIError)
    async def _lost_connection(request: Request, exc: db.DBAPIError) -> JSONResponse:
        # Any driver error may report that the connection died under it; the others are
        # bugs, answered and logged once by the app's RequestContext.
        if not exc.connection_invalidated:
            raise exc
        return _unavailable(request, exc, "postgres")


def _unavailable(request: Request, exc: Exception, dependency: str) -> JSONResponse:
    # The driver's own message (no SQL parameters: the engine hides them) for operators.
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    log.warning(
        "dependency.unavailable", dependency=dependency, error=type(cause).__name__, detail=first
    )
    return problem_response(dependency_unavailable(dependency), request)

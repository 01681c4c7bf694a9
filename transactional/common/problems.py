"""RFC 9457 problem details: every error a client sees has this shape."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as db
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from paywall.logs import get_logger

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


class Problem(HTTPException):
    """Raise anywhere in a service to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.title = title
        self.type = type_
        self.extra = extra

    def body(self, instance: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status_code}
        if self.detail:
            out["detail"] = self.detail
        out["instance"] = instance
        out.update(self.extra)
        return out


def dependency_unavailable(dependency: str) -> Problem:
    """503 naming the dependency, never its address or credentials."""
    return Problem(
        503,
        "Dependency Unavailable",
        f"{dependency} is unavailable; retry after {RETRY_AFTER_SECONDS} seconds",
        type_="https://paywall.dev/problems/dependency-unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        dependency=dependency,
    )


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status_code,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


# Which responses each route documents besides its own.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemModel, "content": {PROBLEM_JSON: {}}, "description": text}
    for code, text in {
        400: "Malformed request",
        401: "Missing or invalid access token",
        403: "Token lacks the scope, its client has no tenant, or it names another tenant",
        422: "Validation failed",
        503: "A dependency (database, cache) is unavailable; retry after Retry-After seconds",
    }.items()
}


# A route that answers its errors in another shape (OAuth's RFC 6749 JSON) sets this in its
# `openapi_extra` and documents its errors itself: the defaults above are left out of its docs.
OWN_ERRORS = "x-own-errors"


def _without_default_errors(schema: dict[str, Any]) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and operation.pop(OWN_ERRORS, False):
                responses = operation.get("responses", {})
                for code in [
                    c for c, r in responses.items() if PROBLEM_JSON in r.get("content", {})
                ]:
                    del responses[code]


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


def _bad_header(error: dict[str, Any]) -> Problem:
    # Headers are the request's envelope: one missing or malformed makes the request
    # malformed (400), as the Idempotency-Key money requests need. 422 is about the content.
    name = error["loc"][-1]
    if error["type"] == "missing":
        return Problem(
            400,
            f"{name} Required",
            f"send the {name} header",
            type_=f"https://paywall.dev/problems/{name.lower()}-required",
        )
    return Problem(
        400,
        f"Invalid {name}",
        f"{name}: {error['msg']}",
        type_="https://paywall.dev/problems/invalid-header",
    )


def install(app: Any) -> None:
    """Answer every error as a problem, and document the defaults where routes use them."""
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema: dict[str, Any] = build_openapi()
        if fresh:
            _without_default_errors(schema)
        return schema

    app.openapi = openapi

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        problem = Problem(exc.status_code, title, detail, headers=headers)
        return problem_response(problem, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        header = next((e for e in errors if e["loc"][:1] == ["header"]), None)
        if header is not None:
            return problem_response(_bad_header(header), request)
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(first["loc"])
        problem = Problem(
            422,
            "Validation failed",
            f"{where}: {first['msg']}",
            type_="https://paywall.dev/problems/validation",
            errors=errors,
        )
        return problem_response(problem, request)

    @app.exception_handler(db.DataError)
    async def _bad_data(request: Request, exc: db.DataError) -> JSONResponse:
        # The database refused a value the schema let through (a NUL byte in text, a number
        # beyond the column's range): the client's input, and the transaction rolled back.
        reason = str(exc.orig).splitlines()[0][:200] if exc.orig else "invalid value"
        problem = Problem(
            422, "Unprocessable Value", reason, type_="https://paywall.dev/problems/validation"
        )
        return problem_response(problem, request)

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

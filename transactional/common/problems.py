"""RFC 9457 problem details: every error a client sees has this shape."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from paywall.logs import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


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
        headers = dict(exc.headers) if exc.headers else None
        problem = Problem(exc.status_code, title, detail, headers=headers)
        return problem_response(problem, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
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

    @app.exception_handler(DataError)
    async def _bad_data(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the schema let through (a NUL byte in text, a number
        # beyond the column's range): the client's input, and the transaction rolled back.
        reason = str(exc.orig).splitlines()[0][:200] if exc.orig else "invalid value"
        problem = Problem(
            422, "Unprocessable Value", reason, type_="https://paywall.dev/problems/validation"
        )
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.failed", path=request.url.path)
        return problem_response(Problem(500, "Internal Server Error"), request)

"""Reading application/x-www-form-urlencoded bodies without python-multipart.

OAuth endpoints take form bodies (RFC 6749), and so do the portal's forms; the few fields
they carry are parsed here, with the checks the RFC asks for: no repeated parameters, empty
means absent.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

FORM_TYPE = "application/x-www-form-urlencoded"
# Our forms' bodies are a few hundred bytes; refuse megabytes early.
MAX_FORM_BYTES = 16 * 1024


class FormError(ValueError):
    pass


def parse_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """One value per name (RFC 6749 3.1: a repeated parameter is an invalid request)."""
    params: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise FormError(f"parameter {name!r} given more than once")
        seen.add(name)
        if "\x00" in name or "\x00" in value:  # no parameter has one, and PostgreSQL refuses it
            raise FormError("parameters must not contain NUL characters")
        if value:  # RFC 6749 3.1: a parameter without a value is as if omitted
            params[name] = value
    return params


async def read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise FormError(f"the body must be {FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise FormError("request body too large")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError("malformed form body") from exc
    return parse_params(pairs)

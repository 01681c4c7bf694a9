"""One list envelope and one cursor for every list in the public API.

Lists are keyset pages over `(created_at, id)`: a cursor names the last row a page
showed, so a page never repeats or skips a row when rows are added between calls (an
offset would). The cursor is opaque to callers; they pass back what they were given.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from transactional.common import errors
from transactional.common.problems import DomainError

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=100, description="At most this many items (1-100)")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="The `next_cursor` of the previous page"),
]
After = tuple[datetime, uuid.UUID]


class Page(BaseModel, Generic[T]):
    """A page of a list; `next_cursor` is null on the last page."""

    data: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


def encode_cursor(*key: datetime | uuid.UUID | str) -> str:
    """An opaque cursor for a keyset position (the sort key of a page's last row)."""
    parts = [part.isoformat() if isinstance(part, datetime) else str(part) for part in key]
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> After | None:
    """The `(created_at, id)` position a cursor names, or a 400 problem for a foreign one."""
    parts = decode_parts(cursor, 2)
    if parts is None:
        return None
    try:
        return datetime.fromisoformat(parts[0]), uuid.UUID(parts[1])
    except ValueError as exc:
        raise _bad_cursor() from exc


def decode_parts(cursor: str | None, count: int) -> list[str] | None:
    """The `count` strings of a cursor's keyset position (None for the first page)."""
    if cursor is None:
        return None
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise _bad_cursor() from exc
    if (
        not isinstance(parts, list)
        or len(parts) != count
        or not all(isinstance(part, str) for part in parts)
    ):
        raise _bad_cursor()
    return parts


def decode_sequence(cursor: str | None) -> int | None:
    """The position a cursor over a sequence number names (logs, event feeds)."""
    parts = decode_parts(cursor, 1)
    if parts is None:
        return None
    try:
        return int(parts[0])
    except ValueError as exc:
        raise _bad_cursor() from exc


def _bad_cursor() -> DomainError:
    return DomainError(errors.BAD_CURSOR, "cursor is not one this API returned")


def page_of(
    rows: Sequence[T], limit: int, position: Callable[[T], Sequence[datetime | uuid.UUID | str]]
) -> Page[T]:
    """The page for rows fetched with `LIMIT limit + 1`: the extra row says another follows."""
    if len(rows) > limit:
        last = encode_cursor(*position(rows[limit - 1]))
        return Page[T](data=list(rows[:limit]), next_cursor=last)
    return Page[T](data=list(rows), next_cursor=None)

"""Text a request must fill in: blank is refused, and the OpenAPI document says so.

Such fields are stripped before their length is checked, so whitespace alone is refused;
the pattern makes the schema say the same, or a client (and the API fuzzer) would take
"\\u000b" for a valid name. The whitespace is spelled out: it is what pydantic strips
(Unicode White_Space), and `\\s` means other things to JSON Schema's regex engine
(ECMA-262) and to pydantic's.
"""

from __future__ import annotations

from pydantic import StringConstraints

STRIPPED = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
NOT_BLANK = f"[^{STRIPPED}]"


def non_blank(max_length: int) -> StringConstraints:
    """Stripped, then 1 to `max_length` characters; documented with a pattern to match."""
    return StringConstraints(
        strip_whitespace=True, min_length=1, max_length=max_length, pattern=NOT_BLANK
    )

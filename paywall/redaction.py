"""Secrets out of log lines: by the name of a field, and by the look of a value.

Every event dict passes `redact` before it is rendered, whatever the renderer, so a
password, card number, token or client secret cannot reach a log even when a library puts
it into an exception message (pydantic's `input_value=…`, a URL with credentials) or a
caller logs a whole dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

MASK = "[REDACTED]"

# Field names whose values are secret whatever they hold (matched anywhere in the name,
# case-blind): password, client_secret, access_token, authorization, card_number, cvc…
_SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)|secret|token|authori[sz]ation|cookie|api_?key|credential"
    r"|card|cvc|cvv|^number$|^pan$",
    re.IGNORECASE,
)
_SECRET_TEXT: list[tuple[re.Pattern[str], str]] = [
    # key=value and "key": "value" pairs inside free text (query strings, reprs, JSON).
    (
        re.compile(
            r"""(?P<k>["']?[\w-]*(?:password|passwd|secret|token|api_?key|authorization|cvc|card_?number)"""
            r"""["']?\s*[:=]\s*)(?P<v>"[^"]*"|'[^']*'|[^\s,&;}\]]+)""",
            re.IGNORECASE,
        ),
        rf"\g<k>{MASK}",
    ),
    # pydantic's validation errors repeat the rejected input.
    (re.compile(r"input_value=(\"[^\"]*\"|'[^']*'|[^,\]\s]+)"), f"input_value={MASK}"),
    (re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]+", re.IGNORECASE), rf"\1 {MASK}"),
    # JWTs (access, refresh and ID tokens) wherever they appear.
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), MASK),
    # Stripe secret, restricted and webhook-signing keys.
    (re.compile(r"\b(sk|rk)_(live|test)_\w+|\bwhsec_\w+"), MASK),
    # user:password@ in URLs.
    (re.compile(r"(?P<scheme>\w+://[^:/@\s]+):[^@\s]+@"), rf"\g<scheme>:{MASK}@"),
]
# 13 to 19 digits, maybe grouped by spaces or dashes: a card number if Luhn agrees.
_DIGITS = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")


def redact(_: object, __: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """A structlog processor: secret fields masked, secret-looking text masked."""
    return {key: _clean(key, value) for key, value in event.items()}


def scrub(text: str) -> str:
    """`text` with secret-looking parts masked."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return _DIGITS.sub(_mask_card, text)


def _clean(key: object, value: Any) -> Any:
    if isinstance(key, str) and _SECRET_NAME.search(key):
        return MASK
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: _clean(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_clean(None, v) for v in value]
    return value


def _mask_card(match: re.Match[str]) -> str:
    digits = [int(c) for c in match.group() if c.isdigit()]
    return MASK if _luhn(digits) else match.group()


def _luhn(digits: list[int]) -> bool:
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0

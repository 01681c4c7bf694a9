"""A required text field's schema pattern refuses exactly what the API refuses."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from pydantic import TypeAdapter, ValidationError

from transactional.common.text import NOT_BLANK, non_blank

NAME = TypeAdapter(Annotated[str, non_blank(10)])


def _api_takes(value: str) -> bool:
    try:
        NAME.validate_python(value)
    except ValidationError:
        return False
    return True


def test_the_pattern_and_the_api_agree_on_every_character() -> None:
    # Python's re reads the pattern's explicit escapes as ECMA-262 does (no \s, no classes).
    disagree = [
        hex(code)
        for code in (*range(1, 0xD800), *range(0xE000, 0x10000))  # not lone surrogates
        if (re.search(NOT_BLANK, chr(code)) is not None) != _api_takes(chr(code))
    ]
    assert disagree == []


@pytest.mark.parametrize("value", ["\u000b", " \t\n", "\u3000\u00a0", ""])
def test_blank_is_refused(value: str) -> None:
    assert not _api_takes(value) and re.search(NOT_BLANK, value) is None


def test_text_is_stripped_and_documented() -> None:
    assert NAME.validate_python("  Ada \u2028") == "Ada"
    assert NAME.json_schema() == {
        "type": "string",
        "minLength": 1,
        "maxLength": 10,
        "pattern": NOT_BLANK,
    }

"""Request headers more than one service declares, declared once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header

from transactional.common.problems import PROBLEM_JSON, ProblemModel

# Required by every request that moves money or signs someone up. A request without one
# is malformed (400 idempotency-key-required, see problems.install), not invalid (422).
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="A retry with the same key and body returns the first answer (a UUID).",
    ),
]
IDEMPOTENCY_KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ProblemModel,
        "content": {PROBLEM_JSON: {}},
        "description": "No Idempotency-Key header, or not 1-255 characters",
    }
}

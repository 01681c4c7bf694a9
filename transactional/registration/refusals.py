"""How a signup is refused: the saga's outcomes that are the client's to hear."""

from __future__ import annotations

from typing import Any

from paywall.service_client import ServiceError


class Declined(Exception):
    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail", "card declined"))
        self.problem = problem


class AlreadyRegistered(Exception):
    pass


class Rejected(Exception):
    """A downstream service refused the caller's input: pass its problem on as is."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail", "rejected"))
        self.status = status
        self.problem = problem


CLIENT_ERRORS = {400, 404, 409, 422}


def check(service: str, status: int, body: dict[str, Any], ok: set[int]) -> dict[str, Any]:
    if status in ok:
        return body
    if status == 402:
        raise Declined(body)
    if status in CLIENT_ERRORS:
        raise Rejected(status, body)
    raise ServiceError(service, status, body)

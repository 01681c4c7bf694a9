"""Schemathesis against the services' OpenAPI: no generated input may produce a 5xx."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.conftest import REPO, Api

pytestmark = pytest.mark.integration

ALL_SCOPES = (
    "registrations:write customers:read customers:write subscriptions:read "
    "subscriptions:write payments:read payments:write"
)


def test_no_server_errors(api: Api, issue_token: Callable[..., str]) -> None:
    token = issue_token(ALL_SCOPES, "tenant-fuzz")
    # The CLI rather than the pytest plugin: its runner checks every operation with
    # examples, fuzzing and stateful links, and it is what a person would run by hand.
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "st"),
            "run",
            f"{api.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {token}",
            # One worker: the coverage phase's lambda introspection is not thread-safe.
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "20261125",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

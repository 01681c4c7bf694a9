"""The test session's local stack: real servers on free loopback ports, stopped at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from paywall.settings import STATE_DIR_ENV, Settings, reset_settings
from paywall.stack.local import LocalStack

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(tmp_path_factory.mktemp("stack"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STATE_DIR_ENV, str(stack.root))
        mp.setenv("PAYWALL_ENV", "test")
        try:
            stack.up()
            yield stack
        finally:
            stack.down()
            reset_settings()


@pytest.fixture(scope="session")
def settings(local_stack: LocalStack) -> Settings:
    from paywall import db

    settings = local_stack.settings()
    db.upgrade(settings)
    return settings


@pytest.fixture
def cli_env(local_stack: LocalStack) -> dict[str, str]:
    """Environment for running the `paywall` command against the session stack."""
    return {**os.environ, STATE_DIR_ENV: str(local_stack.root)}

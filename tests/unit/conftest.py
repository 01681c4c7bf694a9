from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from paywall.logs import flush_logs


@pytest.fixture(autouse=True)
def _detach_logging() -> Iterator[None]:
    """A test that configures logging writes to its own captured stderr; detach after it."""
    yield
    flush_logs()
    logging.getLogger().handlers.clear()

"""A throwaway local stack for one benchmark run: its own state dir, stopped on exit."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from paywall.settings import STATE_DIR_ENV, Settings
from paywall.stack.component import Component
from paywall.stack.local import LocalStack


@contextmanager
def fresh_stack(
    prefix: str, waves: list[list[Component]] | None = None
) -> Iterator[tuple[Path, Settings]]:
    """A scratch directory and the settings of a stack started under it for this run."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        stack = LocalStack(Path(tmp) / "stack", waves)
        os.environ[STATE_DIR_ENV] = str(stack.root)
        try:
            yield Path(tmp), stack.up()
        finally:
            stack.down()

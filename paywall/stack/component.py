"""What every local-stack server looks like to the stack that starts it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from paywall.settings import Settings


@dataclass
class Running:
    """A server the stack started: enough to find it, use it and stop it later."""

    name: str
    pid: int
    port: int
    env: dict[str, str]
    log: str
    detail: str = ""
    ticks: int = 0


@dataclass
class StackContext:
    """Where a component keeps its files, and the settings started before it."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def settings(self) -> Settings:
        """Settings from the real environment, else from the servers started so far."""
        return Settings(_env_file=None, **self.env)  # type: ignore[call-arg, arg-type]


class Component(Protocol):
    name: str

    def external(self) -> bool:
        """True when the environment points at a server of this kind: start nothing."""
        ...

    def start(self, ctx: StackContext, port: int | None = None) -> Running: ...

    def stop(self, running: Running) -> None: ...

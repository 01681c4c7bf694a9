"""The sink's memory: every accepted message, in memory and appended to a JSON-lines file
(so a restarted sink still answers `GET /_sink/messages`), and the faults waiting to be
served."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Record = dict[str, Any]


class SinkState:
    """Recorded messages and pending faults, shared by all request threads."""

    def __init__(self, store: Path) -> None:
        self._lock = threading.Lock()
        self._store = store
        self._faults: dict[str, tuple[int, int]] = {}
        store.parent.mkdir(parents=True, exist_ok=True)
        self._messages = _load(store)

    def record(self, records: list[Record]) -> None:
        with self._lock:
            self._messages.extend(records)
            with self._store.open("a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)

    def messages(self, provider: str | None = None, to: str | None = None) -> list[Record]:
        with self._lock:
            return [
                m
                for m in self._messages
                if (provider is None or m["provider"] == provider) and (to is None or m["to"] == to)
            ]

    def twilio_message(self, sid: str) -> Record | None:
        with self._lock:
            return next(
                (m for m in self._messages if m["provider"] == "twilio" and m["message_id"] == sid),
                None,
            )

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            # Truncate too, or a restart would bring the cleared messages back.
            self._store.write_text("", encoding="utf-8")

    def set_fault(self, provider: str, status: int, count: int) -> None:
        with self._lock:
            self._faults[provider] = (status, count)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {p: {"status": s, "count": c} for p, (s, c) in self._faults.items()}

    def take_fault(self, provider: str) -> int | None:
        """Consume one injected failure for `provider`, returning its HTTP status."""
        with self._lock:
            status, count = self._faults.get(provider, (0, 0))
            if count <= 0:
                return None
            if count == 1:
                del self._faults[provider]
            else:
                self._faults[provider] = (status, count - 1)
            return status


def _load(store: Path) -> list[Record]:
    if not store.exists():
        return []
    records: list[Record] = []
    for line in store.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # A crash mid-append leaves a torn last line; the complete lines are still good.
            continue
    return records


def now() -> datetime:
    return datetime.now(UTC)

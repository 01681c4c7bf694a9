"""What a billing run counts, and the outcome of one charge attempt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Counts:
    due: int = 0
    invoiced: int = 0
    skipped_already_invoiced: int = 0
    charged: int = 0
    paid: int = 0
    failed: int = 0
    retried: int = 0
    recovered: int = 0
    renewed: int = 0
    past_due: int = 0
    canceled: int = 0
    pending: int = 0
    conflicts: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)

    def numbers(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)}

    def add(self, other: Counts) -> None:
        """Add another's counts and problems to these (a thread's own, when it is done)."""
        for name, value in other.numbers().items():
            setattr(self, name, getattr(self, name) + value)
        self.problems.extend(other.problems)


@dataclass(frozen=True)
class Outcome:
    kind: str  # succeeded | failed | pending | error
    payment_id: str | None = None
    decline_code: str | None = None
    detail: str | None = None

"""Billing shards: one billing day split into `count` disjoint sets of subscriptions, so
the day's runs spread across Dagster runs and pods (assets/billing/assets.py).

Shard `index` of `count` holds the subscriptions whose id's last 32 bits are `index`
modulo `count`. Ids are uuid4, whose last bits are random, so shards come out even; the
rule needs no table, so the subscription service (which answers the due list) and billing
(which reads its own invoices) apply the same one, in SQL or in Python.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

MAX_SHARDS = 256


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"a day splits into 1 to {MAX_SHARDS} shards, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} is not one of 0..{self.count - 1}")

    @property
    def whole(self) -> bool:
        return self.count == 1

    @property
    def label(self) -> str:
        """How logs, metrics and errors name it: `2/4`, or `all` for the whole day."""
        return "all" if self.whole else f"{self.index}/{self.count}"

    def holds(self, subscription_id: uuid.UUID | str) -> bool:
        return (uuid.UUID(str(subscription_id)).int & 0xFFFFFFFF) % self.count == self.index

    def where(self, column: str) -> str:
        """The SQL condition `holds` is, on a uuid column; its values come from `params`."""
        if self.whole:
            return "TRUE"
        return f"(('x' || right({column}::text, 8))::bit(32)::bigint % :shard_count) = :shard_index"

    def params(self) -> dict[str, Any]:
        return {"shard_index": self.index, "shard_count": self.count}

    @classmethod
    def all_of(cls, count: int) -> list[Shard]:
        return [cls(i, count) for i in range(count)]

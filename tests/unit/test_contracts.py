"""Event contracts: published versions never change, new versions never break old readers."""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from datetime import UTC, datetime

import pytest

from streaming import contracts

PUBLISHED = contracts.HERE / "published.json"


def test_published_contracts_are_never_edited_in_place() -> None:
    published = json.loads(PUBLISHED.read_text())
    files = {p.name: p for p in contracts.SCHEMAS.glob("*.json")}
    files["envelope.json"] = contracts.HERE / "envelope.json"
    for name, path in files.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert name in published, f"{name} is new: add its sha256 {digest} to published.json"
        assert published[name] == digest, (
            f"{name} was published and changed; add a new version file instead"
        )
    assert set(published) <= set(files), "a published contract was deleted"


@pytest.mark.parametrize(
    "event_type",
    sorted({t for t, _ in contracts.contracts()}),
)
def test_each_version_reads_like_the_one_before(event_type: str) -> None:
    chain = contracts.versions(event_type)
    assert [c.version for c in chain] == list(range(1, len(chain) + 1))
    for old, new in itertools.pairwise(chain):
        assert contracts.breaking_changes(old.schema, new.schema) == []


def test_breaking_changes_are_detected() -> None:
    v1 = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
    renamed = {
        "properties": {"a2": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a2", "b"],
    }
    retyped = {
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "required": ["a", "b"],
    }
    widened = {
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "string"}},
        "required": ["a", "b", "c"],
    }
    assert contracts.breaking_changes(v1, renamed) == [
        "required field 'a' removed or made optional"
    ]
    assert len(contracts.breaking_changes(v1, retyped)) == 1
    assert contracts.breaking_changes(v1, widened) == []
    kinds = {"properties": {"k": {"type": "string", "enum": ["a", "b"]}}, "required": ["k"]}
    more = {"properties": {"k": {"type": "string", "enum": ["a", "b", "c"]}}, "required": ["k"]}
    assert contracts.breaking_changes(kinds, more) == []
    assert contracts.breaking_changes(more, kinds) == ["field 'k' no longer allows ['c']"]


def test_invoice_events_v3_add_the_first_period_kind() -> None:
    for event in ("created", "finalized", "paid", "payment_failed", "voided"):
        v2, v3 = (contracts.contracts()[(f"invoice.{event}", n)].schema for n in (2, 3))
        kinds = v3["properties"]["kind"]["enum"]
        assert kinds == [*v2["properties"]["kind"]["enum"], "first_period"]
        assert {k: v for k, v in v3.items() if k not in ("$id", "description", "properties")} == {
            k: v for k, v in v2.items() if k not in ("$id", "description", "properties")
        }


def envelope(event_type: str, data: dict[str, object]) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "test",
        "key": "k",
        "data": data,
    }


def test_producers_refuse_an_event_that_breaks_its_schema() -> None:
    good = {"customer_id": "c1", "tenant_id": None, "stripe_customer_id": "cus_1"}
    contracts.validate(envelope("payment.account_created", good))
    with pytest.raises(contracts.ContractError, match="stripe_customer_id"):
        contracts.validate(envelope("payment.account_created", {**good, "stripe_customer_id": 1}))
    with pytest.raises(contracts.ContractError, match="no contract"):
        contracts.validate(envelope("payment.teleported", good))
    with pytest.raises(contracts.ContractError, match="Additional properties"):
        contracts.validate(envelope("payment.account_created", {**good, "surprise": 1}))


def test_consumers_check_only_the_envelope() -> None:
    contracts.check_envelope(envelope("customer.created", {"anything": "new"}))
    with pytest.raises(contracts.ContractError):
        contracts.check_envelope({"event_type": "customer.created"})

"""Write an event to a service's outbox, in the same transaction as the state change.

The row holds the whole envelope (DESIGN.md: event_id, event_type, schema_version,
occurred_at, producer, key, data); the relay publishes it as is, keyed by aggregate id.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam

from streaming import contracts


def emit(
    conn: Connection,
    schema: str,
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    data: dict[str, Any],
    schema_version: int | None = None,
) -> uuid.UUID:
    event_id = uuid.uuid4()
    envelope: dict[str, Any] = {
        "event_id": str(event_id),
        "event_type": event_type,
        "schema_version": schema_version or contracts.latest_version(event_type),
        "occurred_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "producer": f"{schema}-service",
        "key": aggregate_id,
        "data": json.loads(json.dumps(data, default=str)),
    }
    # A producer refuses an event that breaks its contract: the state change rolls back.
    contracts.validate(envelope)
    conn.execute(
        text(
            f"INSERT INTO {schema}.outbox (id, aggregate_type, aggregate_id, type, payload) "
            "VALUES (:id, :aggregate_type, :aggregate_id, :type, :payload)"
        ).bindparams(bindparam("payload", type_=JSONB)),
        {
            "id": event_id,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "type": event_type,
            "payload": envelope,
        },
    )
    return event_id

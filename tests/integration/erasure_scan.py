"""Searches of every store for a person's email and phone in clear text (test_erasure).

Each search answers `<where>: <needle>` for every needle found, so a test can also look for
something that must be there (the customer's id) and know the search saw the data.
"""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
from confluent_kafka import Consumer
from sqlalchemy import Engine, text

from paywall.clients import kafka_config, s3_client
from paywall.settings import Settings

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY", "USER-DEFINED")


def postgres(db: Engine, needles: list[str]) -> list[str]:
    """`schema.table.column` of every text or JSON column, in every schema, holding a needle."""
    found = []
    with db.connect() as conn:
        columns = conn.execute(
            text(
                "SELECT c.table_schema, c.table_name, c.column_name FROM "
                "information_schema.columns c JOIN information_schema.tables t ON "
                "t.table_schema = c.table_schema AND t.table_name = c.table_name "
                "WHERE t.table_type = 'BASE TABLE' AND c.data_type = ANY(:types) "
                "AND c.table_schema NOT IN ('pg_catalog', 'information_schema') "
                "AND c.table_schema NOT LIKE 'pg_toast%'"
            ),
            {"types": list(TEXT_TYPES)},
        ).all()
        for schema, table, column in columns:
            for needle in needles:
                hit = conn.execute(
                    text(
                        f'SELECT 1 FROM "{schema}"."{table}" WHERE "{column}"::text ILIKE :n '
                        "LIMIT 1"
                    ),
                    {"n": f"%{needle}%"},
                ).first()
                if hit:
                    found.append(f"{schema}.{table}.{column}: {needle}")
    assert len(columns) > 50, "the scan saw too few columns to mean anything"
    return found


def kafka(settings: Settings, needles: list[str]) -> list[str]:
    """Every message of every topic, read from the earliest offset: value, key and headers."""
    consumer = Consumer(
        kafka_config(
            settings,
            **{
                "group.id": f"erasure-scan-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
            },
        )
    )
    topics = [t for t in consumer.list_topics(timeout=10).topics if not t.startswith("__")]
    consumer.subscribe(topics)
    found, idle, seen = [], 0, 0
    try:
        while idle < 10:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                idle = idle + 1 if consumer.assignment() else 0
                continue
            idle, seen = 0, seen + 1
            parts = [msg.value() or b"", msg.key() or b""]
            parts += [h[1] or b"" for h in msg.headers() or []]
            blob = b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)
            where = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
            found += _found(where, blob.decode("utf-8", "replace"), needles)
    finally:
        consumer.close()
    assert seen > 0, "no message read: the scan would prove nothing"
    return found


def bucket(settings: Settings, name: str, needles: list[str]) -> list[str]:
    """Every object of a bucket: Parquet read as rows, gzip opened, the rest as bytes."""
    s3 = s3_client(settings)
    found, seen = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            body = s3.get_object(Bucket=name, Key=key)["Body"].read()
            seen += 1
            found += _found(key, _readable(key, body), needles)
    assert seen > 0, f"bucket {name} is empty: the scan would prove nothing"
    return found


def _readable(key: str, body: bytes) -> str:
    if key.endswith(".parquet"):
        import io

        return json.dumps(pq.read_table(io.BytesIO(body)).to_pylist(), default=str)
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8", "replace")


def warehouse(path: Path, needles: list[str]) -> list[str]:
    """Every text column of every table and view in the DuckDB warehouse."""
    found = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON') OR data_type LIKE '%[]'"
        ).fetchall()
        for schema, table, column in columns:
            for needle in needles:
                hit = con.execute(
                    f'SELECT 1 FROM "{schema}"."{table}" '
                    f'WHERE CAST("{column}" AS VARCHAR) ILIKE ? LIMIT 1',
                    [f"%{needle}%"],
                ).fetchone()
                if hit:
                    found.append(f"{schema}.{table}.{column}: {needle}")
    assert columns, "the warehouse has no text columns: the scan would prove nothing"
    return found


def datadog(logs: list[dict[str, Any]], needles: list[str]) -> list[str]:
    found = []
    for i, entry in enumerate(logs):
        found += _found(f"log {i}", json.dumps(entry), needles)
    return found


def _found(where: str, haystack: str, needles: list[str]) -> list[str]:
    lowered = haystack.lower()
    return [f"{where}: {n}" for n in needles if n.lower() in lowered]


def only(found: list[str], needle: str) -> list[str]:
    """What was found besides `needle` (asserted empty), after asserting `needle` was."""
    assert any(f.endswith(f": {needle}") for f in found), f"{needle} not found: blind search"
    return [f for f in found if not f.endswith(f": {needle}")]


def redis(settings: Settings, needles: list[str]) -> list[str]:
    """Every key of the cache with its value (strings, hashes, lists, sets)."""
    import redis as redis_lib

    assert settings.redis_url
    client = redis_lib.Redis.from_url(settings.redis_url)
    found, seen = [], 0
    for key in client.scan_iter(count=500):
        seen += 1
        kind = client.type(key)
        value: Any = b""
        if kind == b"string":
            value = client.get(key)
        elif kind == b"hash":
            value = client.hgetall(key)
        elif kind == b"list":
            value = client.lrange(key, 0, -1)
        elif kind == b"set":
            value = client.smembers(key)
        found += _found(key.decode("utf-8", "replace"), f"{key!r} {value!r}", needles)
    assert seen > 0, "the cache is empty: the scan would prove nothing"
    return found

"""A day of `audit.log` (by the time rows were appended, so days tile the chain without
gaps or overlaps) → `s3://<lake>/audit/date=YYYY-MM-DD/audit.jsonl.gz` + `manifest.json`.

The object is deterministic (rows in seq order, canonical JSON, gzip without a timestamp):
archiving a day again writes the same bytes. `verify` re-downloads it and checks the
SHA-256, the manifest, the chain segment (every hash recomputed, every prev_hash linked)
and its anchors in the database (the row before the segment and the last row's hash).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, text

from streaming.consumers.audit import GENESIS, chain_hash

PREFIX = "audit"
BATCH = 5000


def object_key(day: date) -> str:
    return f"{PREFIX}/date={day.isoformat()}/audit.jsonl.gz"


def manifest_key(day: date) -> str:
    return f"{PREFIX}/date={day.isoformat()}/manifest.json"


def archived_days(s3: Any, bucket: str) -> list[date]:
    """Every day with a manifest in the bucket."""
    days = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/manifest.json") and "/date=" in key:
                days.append(date.fromisoformat(key.split("/date=")[1].split("/")[0]))
    return sorted(days)


@dataclass(frozen=True)
class Manifest:
    date: str
    object_key: str
    rows: int
    first_seq: int | None
    last_seq: int | None
    first_prev_hash: str | None
    first_hash: str | None
    last_hash: str | None
    sha256: str
    bytes: int


def _line(row: Any) -> bytes:
    record = {
        "seq": row.seq,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "occurred_at": row.occurred_at.isoformat(),
        "recorded_at": row.recorded_at.isoformat(),
        "topic": row.topic,
        "partition": row.partition,
        "offset": row.offset,
        "envelope": row.envelope,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, UTC)
    return start, start + timedelta(days=1)


def build(engine: Engine, day: date) -> tuple[bytes, Manifest]:
    """The day's rows as gzip'd JSON lines, and their manifest."""
    start, end = _bounds(day)
    buf = io.BytesIO()
    rows, first, last = 0, None, None
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        engine.connect() as conn,
    ):
        after = 0
        while True:
            page = conn.execute(
                text(
                    "SELECT seq, event_id, event_type, occurred_at, recorded_at, topic, partition, "
                    '"offset", envelope, prev_hash, hash FROM audit.log WHERE recorded_at >= :s '
                    "AND recorded_at < :e AND seq > :a ORDER BY seq LIMIT :n"
                ),
                {"s": start, "e": end, "a": after, "n": BATCH},
            ).all()
            for row in page:
                gz.write(_line(row) + b"\n")
                first = first or row
                last = row
                rows += 1
            if len(page) < BATCH:
                break
            after = page[-1].seq
    data = buf.getvalue()
    manifest = Manifest(
        date=day.isoformat(),
        object_key=object_key(day),
        rows=rows,
        first_seq=first.seq if first else None,
        last_seq=last.seq if last else None,
        first_prev_hash=first.prev_hash if first else None,
        first_hash=first.hash if first else None,
        last_hash=last.hash if last else None,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )
    return data, manifest


def archive(engine: Engine, s3: Any, bucket: str, day: date) -> Manifest:
    data, manifest = build(engine, day)
    s3.put_object(
        Bucket=bucket,
        Key=manifest.object_key,
        Body=data,
        ContentType="application/x-ndjson",
        ContentEncoding="gzip",
        ChecksumAlgorithm="SHA256",
        Metadata={"sha256": manifest.sha256, "rows": str(manifest.rows)},
    )
    # The manifest goes last: its presence means the object it describes is complete.
    s3.put_object(
        Bucket=bucket,
        Key=manifest_key(day),
        Body=json.dumps(asdict(manifest), indent=2).encode(),
        ContentType="application/json",
    )
    return manifest


@dataclass
class Verification:
    passed: bool
    problems: list[str]
    rows: int


def verify(engine: Engine, s3: Any, bucket: str, day: date) -> Verification:
    problems: list[str] = []
    try:
        raw_manifest = s3.get_object(Bucket=bucket, Key=manifest_key(day))["Body"].read()
        manifest = Manifest(**json.loads(raw_manifest))
        data = s3.get_object(Bucket=bucket, Key=manifest.object_key)["Body"].read()
    except Exception as exc:  # a missing object or manifest is a failed check, not a crash
        return Verification(False, [f"cannot read the archive: {exc}"], 0)
    if hashlib.sha256(data).hexdigest() != manifest.sha256:
        problems.append("object SHA-256 differs from the manifest")
    if len(data) != manifest.bytes:
        problems.append(f"object is {len(data)} bytes, manifest says {manifest.bytes}")
    try:
        records = [json.loads(line) for line in gzip.decompress(data).splitlines() if line]
    except (OSError, ValueError) as exc:
        return Verification(False, [*problems, f"object unreadable: {exc}"], 0)
    problems.extend(_chain_problems(records, manifest))
    problems.extend(_anchor_problems(engine, manifest))
    return Verification(not problems, problems, len(records))


def _chain_problems(records: list[dict[str, Any]], manifest: Manifest) -> list[str]:
    problems = []
    if len(records) != manifest.rows:
        problems.append(f"{len(records)} rows, manifest says {manifest.rows}")
    prev: dict[str, Any] | None = None
    for rec in records:
        if chain_hash(rec["prev_hash"], rec["envelope"]) != rec["hash"]:
            problems.append(f"seq {rec['seq']}: hash does not match its content")
        if prev is not None:
            if rec["seq"] != prev["seq"] + 1:
                problems.append(f"seq {rec['seq']} follows {prev['seq']}: a gap")
            if rec["prev_hash"] != prev["hash"]:
                problems.append(f"seq {rec['seq']}: prev_hash does not link to seq {prev['seq']}")
        prev = rec
        if len(problems) > 20:
            break
    if records:
        ends = (records[0]["seq"], records[-1]["seq"], records[0]["prev_hash"], records[-1]["hash"])
        expected = (
            manifest.first_seq,
            manifest.last_seq,
            manifest.first_prev_hash,
            manifest.last_hash,
        )
        if ends != expected:
            problems.append("first/last seq or hash differ from the manifest")
    return problems


def _anchor_problems(engine: Engine, manifest: Manifest) -> list[str]:
    """The segment hangs off the database's chain: a rewritten archive cannot."""
    if manifest.first_seq is None or manifest.last_seq is None:
        return []
    with engine.connect() as conn:
        before = conn.execute(
            text("SELECT hash FROM audit.log WHERE seq = :s"), {"s": manifest.first_seq - 1}
        ).scalar()
        last = conn.execute(
            text("SELECT hash FROM audit.log WHERE seq = :s"), {"s": manifest.last_seq}
        ).scalar()
    problems = []
    if (before or GENESIS) != manifest.first_prev_hash:
        problems.append("the segment does not link to the row before it in audit.log")
    if last != manifest.last_hash:
        problems.append("the last hash differs from audit.log")
    return problems

"""The lake job against the real broker and S3: exactly once across reruns and a SIGKILL."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pyarrow.fs import FileSelector, FileType

from paywall.clients import ensure_bucket, kafka_config
from paywall.settings import STATE_DIR_ENV, Settings
from paywall.stack.local import LocalStack
from streaming.lake.config import pii_salt
from streaming.lake.pii import hash_value

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spark(settings: Settings) -> Iterator[Any]:
    from streaming.lake.job import lake_spark_session

    session = lake_spark_session()
    yield session
    session.stop()


@dataclass
class Lake:
    settings: Settings
    topic: str
    checkpoint: Path

    @property
    def bucket(self) -> str:
        return self.settings.lake_bucket

    def run(self, max_offsets: int = 40, min_partitions: int = 1) -> None:
        from streaming.lake.job import run_lake_stream

        run_lake_stream(
            self.settings.model_copy(update={"lake_min_partitions": min_partitions}),
            available_now=True,
            checkpoint=self.checkpoint,
            topics=[self.topic],
            max_offsets_per_trigger=max_offsets,
        )

    def start_job(
        self, env: dict[str, str], log: Path, available_now: bool = True
    ) -> subprocess.Popen[bytes]:
        """`paywall stream lake [--available-now]` on this topic and checkpoint, in a session
        of its own (killing its group takes Spark's JVM too), its output in `log`."""
        argv = [
            str(REPO / ".venv" / "bin" / "paywall"),
            *("stream", "lake", *(["--available-now"] if available_now else [])),
            *("--topics", self.topic, "--checkpoint", str(self.checkpoint)),
        ]
        with log.open("wb") as out:
            return subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def produce(
        self, count: int, first: int = 0, extra: list[bytes] | None = None, hours_apart: int = 5
    ) -> list[str]:
        producer = Producer(kafka_config(self.settings, **{"linger.ms": 5}))
        ids = []
        day0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
        for i in range(first, first + count):
            event_id = str(uuid.uuid4())
            customer = f"cus_{i}"
            event_type = "customer.created" if i % 3 else "customer.updated"
            envelope = {
                "event_id": event_id,
                "event_type": event_type,
                "schema_version": 1,
                # Spread over three days so event_date partitioning is exercised.
                "occurred_at": (day0 + dt.timedelta(hours=hours_apart * i)).isoformat(),
                "producer": "customer-service",
                "key": customer,
                "data": {"customer_id": customer, "email": f"User{i}@Example.com", "name": "N"},
            }
            headers: dict[str, str | bytes | None] = {
                "event_id": event_id,
                "event_type": event_type,
            }
            producer.produce(self.topic, json.dumps(envelope), key=customer, headers=headers)
            ids.append(event_id)
        for value in extra or []:
            producer.produce(self.topic, value, key=b"poison")
        assert producer.flush(30) == 0
        return ids

    def s3(self) -> Any:
        from streaming.lake.config import lake_filesystem

        return lake_filesystem(self.settings)

    def keys(self, prefix: str) -> list[str]:
        infos = self.s3().get_file_info(
            FileSelector(f"{self.bucket}/{prefix}", allow_not_found=True, recursive=True)
        )
        return sorted(i.path for i in infos if i.type == FileType.File)

    def table(self, prefix: str) -> pa.Table:
        s3 = self.s3()
        tables = []
        for path in self.keys(prefix):
            t = pq.read_table(path, filesystem=s3)
            tables.append(t.append_column("_path", pa.array([path] * t.num_rows)))
        return (
            pa.concat_tables(tables)
            if tables
            else pa.table({"event_id": pa.array([], pa.string())})
        )

    def manifests(self) -> list[dict[str, Any]]:
        s3 = self.s3()
        return [json.loads(s3.open_input_stream(p).read()) for p in self.keys("_manifests/events")]


@pytest.fixture
def lake(settings: Settings, spark: Any, tmp_path: Path) -> Lake:
    name = uuid.uuid4().hex[:8]
    scoped = settings.model_copy(update={"lake_bucket": f"lake-{name}"})
    ensure_bucket(scoped, scoped.lake_bucket)
    topic = f"test.lake.{name}"
    admin = AdminClient(kafka_config(settings))
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result()
    return Lake(scoped, topic, tmp_path / "checkpoint")


def assert_exact(lake: Lake, expected: list[str]) -> pa.Table:
    events = lake.table("events")
    ids = events["event_id"].to_pylist()
    assert len(ids) == len(expected), f"{len(ids)} rows in the lake, {len(expected)} produced"
    assert set(ids) == set(expected)
    assert sum(m["rows"] for m in lake.manifests()) == len(expected)
    return events


def test_available_now_is_exactly_once_across_reruns(lake: Lake) -> None:
    first = lake.produce(90)
    lake.run()
    events = assert_exact(lake, first)

    # Layout, types and hashing as other work reads them.
    assert events.schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")
    assert events.schema.field("offset").type == pa.int64()
    assert set(events["partition"].to_pylist()) == {0, 1, 2}
    for row in events.to_pylist():
        day = row["occurred_at"].date().isoformat()
        assert row["_path"].startswith(
            f"{lake.bucket}/events/{row['event_type']}/event_date={day}/part-"
        )
        data = json.loads(row["data"])
        number = int(data["customer_id"].removeprefix("cus_"))
        assert data["email"] == hash_value(f"user{number}@example.com", pii_salt())
        assert "@" not in row["data"]
    assert len({r["_path"].split("/")[3] for r in events.to_pylist()}) >= 3  # days
    manifests = lake.manifests()
    assert len(manifests) >= 3  # 90 events, 40 per trigger
    assert all(
        f["url"].startswith(f"s3://{lake.bucket}/events/") for m in manifests for f in m["files"]
    )

    lake.run()  # nothing new: nothing added, no new manifest
    assert_exact(lake, first)
    assert len(lake.manifests()) == len(manifests)

    more = lake.produce(25, first=1000)
    lake.run()
    assert_exact(lake, first + more)


def test_malformed_messages_go_to_rejects_and_the_batch_goes_on(lake: Lake) -> None:
    poison = [b'{"event_id": "x", "data": {"email": "leak@example.com"', b"\x00\x01binary"]
    good = lake.produce(20, extra=poison)
    good += lake.produce(10, first=100)
    lake.run()
    assert_exact(lake, good)
    rejects = lake.table("_rejects/events")
    assert rejects.num_rows == 2
    assert all(r.startswith("malformed JSON") for r in rejects["reject_reason"].to_pylist())
    assert not any("leak@example.com" in (v or "") for v in rejects["raw_value"].to_pylist())
    assert sum(m["rejected_rows"] for m in lake.manifests()) == 2


def test_a_run_killed_mid_batch_neither_loses_nor_duplicates(
    lake: Lake, local_stack: LocalStack, tmp_path: Path
) -> None:
    produced = lake.produce(150)
    env = {
        **os.environ,
        STATE_DIR_ENV: str(local_stack.root),
        "LAKE_BUCKET": lake.bucket,
        "LAKE_MAX_OFFSETS_PER_TRIGGER": "30",
    }
    log = tmp_path / "killed-run.log"
    proc = lake.start_job(env, log)
    try:
        deadline = time.monotonic() + 120
        # Kill as soon as the second batch has a data file: it is mid-write, no manifest yet.
        while not any("/part-1-" in k for k in lake.keys("events")):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the lake job wrote nothing in 120 s"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the JVM too: it is in the same session
        proc.wait(timeout=30)
    written_before = len(lake.table("events"))
    assert 0 < written_before < len(produced)

    lake.run()
    assert_exact(lake, produced)
    batches = [m["batch_id"] for m in lake.manifests()]
    assert len(batches) == len(set(batches))


def test_the_broker_restarting_between_runs_loses_nothing(
    lake: Lake, local_stack: LocalStack
) -> None:
    first = lake.produce(30)
    lake.run()
    local_stack.restart("kafka")
    more = lake.produce(30, first=500)
    lake.run()
    assert_exact(lake, first + more)


def test_a_query_on_a_new_checkpoint_overwrites_nothing_an_earlier_one_wrote(
    lake: Lake, tmp_path: Path
) -> None:
    produced = lake.produce(30)
    lake.run()
    before = set(lake.keys("events"))
    # A lost or reset checkpoint starts batch ids at 0 again and reads from the earliest
    # offsets: the lake then holds the events twice (readers dedupe by event_id), never once.
    lake.checkpoint = tmp_path / "new-checkpoint"
    lake.run()
    after = set(lake.keys("events"))
    assert before < after
    ids = lake.table("events")["event_id"].to_pylist()
    assert sorted(ids) == sorted(produced * 2)
    assert len({m["query_id"] for m in lake.manifests()}) == 2


def test_a_large_batch_is_read_by_several_tasks_exactly_once(lake: Lake) -> None:
    # 12k per partition: each is split in two (4 tasks wanted); a file per task and day.
    produced = lake.produce(36_000, hours_apart=0)
    lake.run(max_offsets=50_000, min_partitions=4)
    assert_exact(lake, produced)
    [manifest] = lake.manifests()
    tasks = {f["path"].split("/part-")[1].split("-")[1] for f in manifest["files"]}
    assert len(tasks) == 6, tasks
    assert sum(span["rows"] for span in manifest["offsets"][lake.topic].values()) == 36_000


def test_end_offsets_are_true_on_a_topic_the_broker_reads_slowly(lake: Lake) -> None:
    # With this much data the local broker answers the probe's short-wait fetches with no
    # records and no end-of-partition: the end must come from the answers' watermark.
    from streaming.lake import kafka_offsets as ko

    produced = lake.produce(100_000)
    bootstrap = lake.settings.kafka_bootstrap_servers
    assert bootstrap
    ends = ko.end_offsets(bootstrap, ko.partitions_of(bootstrap, [lake.topic]))
    assert sum(ends[lake.topic].values()) == len(produced)


def test_a_restarted_stream_resumes_from_its_checkpoint(
    lake: Lake, local_stack: LocalStack, tmp_path: Path
) -> None:
    """As the Deployment runs it: the continuous stream on a durable checkpoint, stopped by
    SIGTERM (a pod restart) and started again, reads only what came after, not from the
    earliest offsets (which would write every event again: see the test above)."""
    env = {
        **os.environ,
        STATE_DIR_ENV: str(local_stack.root),
        "LAKE_BUCKET": lake.bucket,
        "LAKE_TRIGGER_SECONDS": "0.5",
    }

    def run_until_in_lake(expected: list[str], log: Path) -> None:
        proc = lake.start_job(env, log, available_now=False)
        try:
            deadline = time.monotonic() + 180
            # Until committed: a batch's manifest is written after its files.
            while sum(m["rows"] for m in lake.manifests()) < len(expected):
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the stream wrote too little in 180 s"
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)  # what the kubelet sends the pod's process
            assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    first = lake.produce(60)
    run_until_in_lake(first, tmp_path / "first.log")
    before = {json.dumps(m, sort_keys=True) for m in lake.manifests()}
    more = lake.produce(45, first=300)
    run_until_in_lake(first + more, tmp_path / "restarted.log")
    assert_exact(lake, first + more)
    after = [m for m in lake.manifests() if json.dumps(m, sort_keys=True) not in before]
    assert sum(m["rows"] for m in after) == len(more)  # the restart read only the new ones
    assert len({m["query_id"] for m in lake.manifests()}) == 1  # one query, resumed


def test_sigterm_mid_batch_lets_the_batch_commit_before_the_stream_stops(
    lake: Lake, local_stack: LocalStack, tmp_path: Path
) -> None:
    """A pod stopped while a batch runs: the stream finishes and commits that batch before
    it exits, so the next pod has nothing to write again (a cut batch is replayed, and
    rewrites its files and manifest)."""
    produced = lake.produce(5_000, hours_apart=0)  # one batch, seconds long on a cold start
    env = {
        **os.environ,
        STATE_DIR_ENV: str(local_stack.root),
        "LAKE_BUCKET": lake.bucket,
        # Longer than any first batch on a slow machine: the default 20 s is a pod's budget.
        "LAKE_STOP_GRACE_SECONDS": "150",
    }
    # Spark writes a batch's offsets when it starts it and its commit when it has ended it.
    started, committed = lake.checkpoint / "offsets" / "0", lake.checkpoint / "commits" / "0"
    log = tmp_path / "stream.log"
    proc = lake.start_job(env, log, available_now=False)
    try:
        deadline = time.monotonic() + 180
        while not started.exists():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the stream started no batch in 180 s"
            time.sleep(0.02)
        assert not committed.exists(), "the batch ended before it could be caught mid-way"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=200) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert committed.exists(), "the stop cut the running batch"
    assert_exact(lake, produced)

"""The lake job on a Spark standalone cluster (a master and two workers started from the
pyspark package, over loopback), not in local mode: a worker SIGKILLed while the stream runs
loses its executor mid-batch, the tasks run again on the other worker, and the lake still
holds every event exactly once, each batch with one manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyspark
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from paywall.clients import ensure_bucket, kafka_config
from paywall.settings import STATE_DIR_ENV, Settings
from paywall.stack.local import LocalStack
from paywall.stack.process import free_port, stop_pid, wait_until
from tests.integration.test_lake_stream import REPO, Lake, assert_exact

pytestmark = pytest.mark.integration

SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"


@dataclass
class Cluster:
    master_url: str
    ui: str
    workers: list[subprocess.Popen[bytes]]

    def alive_workers(self) -> int:
        try:
            return int(httpx.get(f"{self.ui}/json/", timeout=2).json()["aliveworkers"])
        except (httpx.HTTPError, ValueError, KeyError):
            return -1

    def running_apps(self) -> list[dict[str, object]]:
        return list(httpx.get(f"{self.ui}/json/", timeout=2).json()["activeapps"])


def _daemon(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # A session of its own: killing its group takes the JVM's executors with it.
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    port, ui_port = free_port(), free_port()
    # Executors run the lake's Python data source: this interpreter and this repository.
    env = {**os.environ, "PYSPARK_PYTHON": str(REPO / ".venv/bin/python"), "PYTHONPATH": str(REPO)}
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    master = _daemon(
        [
            str(SPARK_CLASS),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui_port),
        ],
        tmp_path / "master.log",
        env,
    )
    procs = [master]
    try:
        ui = f"http://127.0.0.1:{ui_port}"
        wait_until(
            lambda: _json_up(ui), "spark master", timeout=90, alive=lambda: master.poll() is None
        )
        url = f"spark://127.0.0.1:{port}"
        workers = []
        for n in (1, 2):
            work = tmp_path / f"worker{n}"
            work.mkdir()
            workers.append(
                _daemon(
                    [
                        str(SPARK_CLASS),
                        "org.apache.spark.deploy.worker.Worker",
                        url,
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "1",
                        "--memory",
                        "1g",
                        "--webui-port",
                        str(free_port()),
                        "--work-dir",
                        str(work),
                    ],
                    tmp_path / f"worker{n}.log",
                    env,
                )
            )
        procs += workers
        found = Cluster(url, ui, workers)
        wait_until(lambda: found.alive_workers() == 2, "two spark workers", timeout=90)
        yield found
    finally:
        for proc in reversed(procs):
            stop_pid(proc.pid)


@pytest.fixture
def lake(settings: Settings, tmp_path: Path) -> Lake:
    """A bucket and a 3-partition topic of this test's own (no local Spark session here)."""
    name = uuid.uuid4().hex[:8]
    scoped = settings.model_copy(update={"lake_bucket": f"lake-cluster-{name}"})
    ensure_bucket(scoped, scoped.lake_bucket)
    topic = f"test.lake.cluster.{name}"
    admin = AdminClient(kafka_config(settings))
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result()
    return Lake(scoped, topic, tmp_path / "checkpoint")


def _json_up(ui: str) -> bool:
    try:
        return httpx.get(f"{ui}/json/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    lake: Lake, cluster: Cluster, local_stack: LocalStack, tmp_path: Path
) -> None:
    produced = lake.produce(600)
    env = {
        **os.environ,
        STATE_DIR_ENV: str(local_stack.root),
        "SPARK_MASTER": cluster.master_url,
        "LAKE_BUCKET": lake.bucket,
        "LAKE_MAX_OFFSETS_PER_TRIGGER": "100",
        # Three Kafka partitions, split in two: every batch has tasks on both workers.
        "LAKE_MIN_PARTITIONS": "6",
        "PYTHONPATH": str(REPO),
        "SPARK_LOCAL_IP": "127.0.0.1",  # the driver on loopback, as the cluster is
    }
    log = tmp_path / "driver.log"
    driver = lake.start_job(env, log)
    try:
        deadline = time.monotonic() + 240
        # The first batch's files are there: the stream runs, batches follow back to back.
        while not lake.keys("events"):
            assert driver.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the lake job wrote nothing in 240 s"
            time.sleep(0.05)
        assert cluster.running_apps(), "the lake job is not running on the cluster"
        victim = cluster.workers[0]
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and its executor
        victim.wait(timeout=30)
        assert driver.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)

    assert "Lost executor" in log.read_text(), "the driver never saw its executor go"
    assert_exact(lake, produced)
    batches = [m["batch_id"] for m in lake.manifests()]
    assert len(batches) == len(set(batches)) > 1
    assert cluster.alive_workers() == 1

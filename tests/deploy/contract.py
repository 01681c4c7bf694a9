"""What the deploy manifests expect from code, where the code cannot tell by itself.

The HTTP services are NOT listed here: the tests derive them from the code
(`transactional.services.SERVICES`, and the metric objects in `transactional.common.app`),
so a service added to SERVICES without manifests fails the deploy tests.

Everything below is a promise the event-bus, streaming, billing and Dagster code must keep:
the relay, the consumers, the lake stream and the billing assets MUST export the metric
names listed here, and the `paywall` CLI MUST have the commands the workers run. Entries
under PENDING_CLI_COMMANDS do not exist yet; the tests fail once one does. Alerts and
dashboards may query only metrics the code exports: there is no pending list for those.
"""

from __future__ import annotations

# --- CLI -------------------------------------------------------------------------------

# Worker Deployments: manifest name -> container args (the `paywall` entrypoint is implied).
# Each serves Prometheus metrics on WORKER_METRICS_PORT through `--metrics-port`.
WORKER_METRICS_PORT = 9100
# Workers whose liveness is their progress: they touch this file, the probe reads it.
HEARTBEAT_ARGS: tuple[str, ...] = ("--heartbeat", "/tmp/heartbeat")
WORKERS: dict[str, tuple[str, ...]] = {
    "outbox-relay": ("relay", "--metrics-port", "9100", *HEARTBEAT_ARGS),
    "consumer-notification": ("consume", "notification", "--metrics-port", "9100", *HEARTBEAT_ARGS),
    "consumer-audit": ("consume", "audit", "--metrics-port", "9100", *HEARTBEAT_ARGS),
    "consumer-erasure": ("consume", "erasure", "--metrics-port", "9100", *HEARTBEAT_ARGS),
    "consumer-webhooks": ("consume", "webhooks", "--metrics-port", "9100", *HEARTBEAT_ARGS),
    "webhook-delivery": ("webhooks", "deliver", "--metrics-port", "9100", *HEARTBEAT_ARGS),
    "stream-lake": (
        "stream",
        "lake",
        "--checkpoint",
        "/var/lib/paywall/checkpoints/lake",
        "--metrics-port",
        "9100",
    ),
}
# Workers whose state must outlive the pod: name -> the option naming where it is kept,
# which must be on a PersistentVolumeClaim (Spark checkpoints need an atomic rename: no S3).
DURABLE_STATE: dict[str, str] = {"stream-lake": "--checkpoint"}
# Housekeeping CronJobs: manifest name -> container args.
HOUSEKEEPING: dict[str, tuple[str, ...]] = {
    f"housekeeping-{task}": ("housekeeping", task)
    for task in ("signing-keys", "auth-tokens", "outbox", "idempotency-keys", "webhooks")
}
# Workloads that talk to Kafka: in production each signs in with its own IAM role (MSK IAM).
# (The webhook delivery worker reads deliveries from Postgres and POSTs: no Kafka.)
KAFKA_CLIENTS: tuple[str, ...] = (
    *(w for w in WORKERS if w != "webhook-delivery"),
    "topics-sync",
)
# Workers that run in the `spark` image target (Java + PySpark).
SPARK_WORKERS: frozenset[str] = frozenset({"stream-lake"})

# Command paths the manifests run that the CLI does not have yet (being built now).
# `paywall stream lake` must accept `--metrics-port PORT` like `relay` and `consume`.
PENDING_CLI_COMMANDS: frozenset[tuple[str, ...]] = frozenset()

# The migration Job.
MIGRATION_ARGS: tuple[str, ...] = ("db", "upgrade")
# The Job that creates the Kafka topics, and the durability the ConfigMap gives them.
TOPICS_ARGS: tuple[str, ...] = ("topics", "sync")
TOPIC_DURABILITY: dict[str, str] = {
    "KAFKA_REPLICATION_FACTOR": "3",
    "KAFKA_MIN_INSYNC_REPLICAS": "2",
}

# Executables other than `paywall` that manifests may run from the same image
# (Dagster's own CLIs, from the dagster / dagster-webserver packages).
OTHER_EXECUTABLES: frozenset[str] = frozenset({"dagster", "dagster-webserver", "dagster-daemon"})

# --- Metrics ---------------------------------------------------------------------------

# Modules whose import registers paywall_* metrics in prometheus_client's default registry.
METRIC_MODULES: tuple[str, ...] = (
    "transactional.common.app",
    "transactional.registration.service",
    "transactional.payment.service",
    "streaming.relay",
    "streaming.consumers.runner",
    "streaming.webhooks.worker",
)
# Batch runs push to the Pushgateway, each from a registry of its own: the module's GAUGES
# (name -> help, labels) are what it pushes.
PUSHED_METRIC_MODULES: tuple[str, ...] = ("assets.billing.metrics",)

# The expected label names of metrics that already exist (checked against the code).
EXPECTED_LABELS: dict[str, tuple[str, ...]] = {
    "paywall_outbox_lag_events": ("schema",),
    "paywall_outbox_published_total": ("schema",),
    "paywall_consumer_processed_total": ("group", "result"),
    "paywall_consumer_lag_messages": ("group", "topic"),
    "paywall_signups_total": ("outcome",),
    "paywall_payments_total": ("outcome",),
    "paywall_billing_run_charges": ("outcome",),
    "paywall_webhook_deliveries_total": ("outcome",),
}

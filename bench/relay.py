"""Outbox relay events/s per process, against producing the same events straight to Kafka.

    .venv/bin/python bench/relay.py [--events 100000] [--schemas subscription,payment]

On a throwaway local stack (Postgres, the broker and the S3 server its log lives in), each
phase writes `--events` valid envelopes of real event types into the service outboxes
set-based (one INSERT … SELECT per schema, committed before the clock starts), then times
real `paywall relay` processes, started as production runs them and idle beforehand,
until every outbox is drained:

1. one relay, the events split over `--schemas`;
2. two relays on fresh events, same split. They share work per schema, not per row: each
   batch of a schema is published under that schema's advisory lock (`pg_try_advisory_
   xact_lock`), so a relay that finds a schema taken moves to the next one;
3. two relays on fresh events all in one schema (`--one-schema`, on by default): only
   one of them publishes at a time (they may take turns), shown for contrast.

The floor, measured in the same run: the same number of envelopes, built by the same SQL
and serialised as the relay serialises them, produced to the same topics with the same
keys and headers by one plain confluent-kafka Producer in this process, configured as
the relay's (`make_producer`: idempotent, acks=all, linger.ms=5), flushed once at the
end; no Postgres read, no mark. Also printed, not part of the ratio: the same floor
acknowledged every 500 messages as the relay's batches are (what waiting for each
batch's acks costs), and that from two producers at once, a schema each, as two relays
on two schemas produce (what the broker gives a second producer). CPU-seconds per 1,000
events are read from each process tree over the timed phase (bench/cpu.py): the relays
(for the floors this process), Postgres, the broker, the S3 server. The drain
is watched with one cheap query every 50 ms, its Postgres time included; a relay wakes
within its 0.2 s idle sleep after the commit, included too.

Checked at the end, or the run fails: no outbox row unpublished, and every event written
(warm-ups, phases, floors) read back from the topics exactly once by its event_id header,
nothing else found.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from bench.cpu import CpuMeter, own_seconds  # noqa: E402
from bench.fresh_stack import fresh_stack  # noqa: E402
from paywall import db  # noqa: E402
from paywall.clients import kafka_config  # noqa: E402
from paywall.settings import Settings  # noqa: E402
from paywall.stack.component import Component  # noqa: E402
from paywall.stack.kafka import Kafka  # noqa: E402
from paywall.stack.local import LocalStack  # noqa: E402
from paywall.stack.postgres import Postgres  # noqa: E402
from paywall.stack.process import free_port, port_open, stop_pid, wait_until  # noqa: E402
from paywall.stack.s3 import S3  # noqa: E402
from streaming import contracts  # noqa: E402
from streaming.admin import sync_topics  # noqa: E402
from streaming.relay import BATCH_SIZE, make_producer  # noqa: E402
from streaming.topics import EVENT_ID_HEADER, EVENT_TOPICS, EVENT_TYPE_HEADER  # noqa: E402

BATCH = BATCH_SIZE  # what one relay transaction takes, as deployed
WARM_UP = 50  # events per schema drained before a phase's clock starts
SERVERS = ("postgres", "kafka", "s3")


@dataclass(frozen=True)
class Spec:
    """A real event type of a schema, and the `data` field that carries the aggregate id."""

    aggregate_type: str
    event_type: str
    id_field: str
    data: dict[str, Any]


SPECS: dict[str, Spec] = {
    "subscription": Spec(
        "subscription",
        "subscription.created",
        "subscription_id",
        {
            "customer_id": "cus_bench",
            "tenant_id": None,
            "plan_id": "plan_bench",
            "status": "active",
            "current_period_start": "2026-12-01T00:00:00+00:00",
            "current_period_end": "2027-01-01T00:00:00+00:00",
            "amount": 1200,
            "currency": "usd",
            "interval": "month",
            "trial_end": None,
        },
    ),
    "payment": Spec(
        "payment",
        "payment.succeeded",
        "payment_id",
        {
            "customer_id": "cus_bench",
            "amount": 1200,
            "currency": "usd",
            "status": "succeeded",
            "stripe_payment_intent_id": "pi_bench",
        },
    ),
    "customer": Spec(
        "customer", "customer.deleted", "customer_id", {"customer_id": "", "tenant_id": None}
    ),
    "registration": Spec(
        "registration",
        "registration.failed",
        "registration_id",
        {"registration_id": "", "reason": "card_declined"},
    ),
}

# One generator for the outbox rows and the floor's messages: what emit() writes (the
# whole envelope in `payload`), with a fresh event id each and the aggregate id as key.
ROWS = """
SELECT g.id, g.key AS aggregate_id,
       CAST(:template AS jsonb)
       || jsonb_build_object(
              'event_id', CAST(g.id AS text),
              'key', g.key,
              'data', CAST(:data AS jsonb) || jsonb_build_object(CAST(:id_field AS text), g.key))
       AS payload
FROM (SELECT gen_random_uuid() AS id, :prefix || CAST(i % :aggregates AS text) AS key
      FROM generate_series(1, :n) AS i) AS g
"""


def row_params(schema: str, n: int) -> dict[str, Any]:
    spec = SPECS[schema]
    template = {
        "event_type": spec.event_type,
        "schema_version": contracts.latest_version(spec.event_type),
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "producer": f"{schema}-service",
    }
    return {
        "template": json.dumps(template),
        "data": json.dumps(spec.data),
        "id_field": spec.id_field,
        # Many aggregates, so keys spread over the partitions as real traffic does.
        "prefix": f"{schema[:3]}_{uuid.uuid4().hex[:8]}_",
        "aggregates": max(1, n // 10),
        "n": n,
    }


def check_contract(engine: Engine, schema: str) -> None:
    """One generated envelope through the producers' own contract check, before any run."""
    with engine.connect() as conn:
        row = conn.execute(text(ROWS), row_params(schema, 1)).one()
    contracts.validate(row.payload)


def write(engine: Engine, counts: dict[str, int]) -> None:
    """`counts[schema]` events into each schema's outbox, all in one transaction."""
    with engine.begin() as conn:
        for schema, n in counts.items():
            spec = SPECS[schema]
            conn.execute(
                text(
                    f"INSERT INTO {schema}.outbox "
                    "(id, aggregate_type, aggregate_id, type, payload) "
                    "SELECT r.id, :aggregate_type, r.aggregate_id, :type, r.payload "
                    f"FROM ({ROWS}) r"
                ),
                {
                    **row_params(schema, n),
                    "aggregate_type": spec.aggregate_type,
                    "type": spec.event_type,
                },
            )


def pending(engine: Engine, schemas: Iterable[str]) -> int:
    with engine.connect() as conn:
        return sum(
            conn.execute(
                text(f"SELECT count(*) FROM {s}.outbox WHERE published_at IS NULL")
            ).scalar_one()
            for s in schemas
        )


def wait_drained(engine: Engine, schemas: list[str], relays: list[subprocess.Popen[bytes]]) -> None:
    # EXISTS on the partial unpublished index: cheap, unlike counting what is left.
    probe = text(
        "SELECT "
        + " OR ".join(
            f"EXISTS (SELECT 1 FROM {s}.outbox WHERE published_at IS NULL)" for s in schemas
        )
    )
    deadline = time.monotonic() + 600
    with engine.connect() as conn:
        while conn.execute(probe).scalar_one():
            conn.commit()  # a fresh snapshot for the next look
            if any(r.poll() is not None for r in relays):
                raise RuntimeError("a relay exited while draining")
            if time.monotonic() > deadline:
                raise RuntimeError("the outboxes did not drain in 600 s")
            time.sleep(0.05)


def published_metric(port: int) -> float:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "paywall_outbox_published_total"
    )


@dataclass
class Result:
    label: str
    processes: int
    events: int
    seconds: float
    cpu: dict[str, float]
    shares: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_per_1000(self, name: str) -> float:
        return self.cpu.get(name, 0.0) * 1000 / self.events


def running(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def start_relays(
    procs: list[subprocess.Popen[bytes]], count: int, root: Path, phase: str, batch_size: int
) -> list[int]:
    """`count` relay processes appended to `procs` as each starts (so the caller stops
    every one even when a later one fails to start); their metrics ports."""
    ports: list[int] = []
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    for i in range(count):
        port = free_port()
        log = root / f"relay-{phase}-{i + 1}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(REPO / ".venv/bin/paywall"),
                    "relay",
                    "--metrics-port",
                    str(port),
                    "--batch-size",
                    str(batch_size),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        ports.append(port)
        wait_until(
            partial(port_open, "127.0.0.1", port),
            "paywall relay",
            timeout=120,
            alive=partial(running, proc),
            log=log,
        )
    return ports


def relay_phase(
    engine: Engine,
    root: Path,
    servers: dict[str, int],
    label: str,
    relays: int,
    counts: dict[str, int],
    batch_size: int,
) -> Result:
    schemas = list(counts)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        phase = label.replace(" ", "-").replace(",", "")
        ports = start_relays(procs, relays, root, phase, batch_size)
        # A first small drain: the producers' connections, metadata and producer ids.
        write(engine, {s: WARM_UP for s in schemas})
        wait_drained(engine, schemas, procs)
        before = [published_metric(p) for p in ports]
        meter = CpuMeter({**{f"relay{i}": p.pid for i, p in enumerate(procs)}, **servers})
        write(engine, counts)
        meter.start()
        start = time.perf_counter()
        wait_drained(engine, schemas, procs)
        seconds = time.perf_counter() - start
        cpu = meter.stop()
        shares = [published_metric(p) - b for p, b in zip(ports, before, strict=True)]
    except Exception:
        for log in sorted(root.glob("relay-*.log")):
            print(f"--- {log.name}", log.read_text()[-3000:], sep="\n")
        raise
    finally:
        for proc in procs:
            stop_pid(proc.pid)
    relay_cpu = sum(v for k, v in cpu.items() if k.startswith("relay"))
    servers_cpu = {k: v for k, v in cpu.items() if not k.startswith("relay")}
    return Result(
        label, relays, sum(counts.values()), seconds, {"relay": relay_cpu, **servers_cpu}, shares
    )


@dataclass
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: dict[str, str | bytes | None]


def floor_messages(engine: Engine, counts: dict[str, int]) -> list[Message]:
    """The messages the relay would send for such rows, serialised as it serialises them."""
    out: list[Message] = []
    with engine.connect() as conn:
        for schema, n in counts.items():
            topic = EVENT_TOPICS[schema].name
            event_type = SPECS[schema].event_type
            for row in conn.execute(text(ROWS), row_params(schema, n)):
                out.append(
                    Message(
                        topic,
                        row.aggregate_id.encode(),
                        json.dumps(row.payload, separators=(",", ":")).encode(),
                        {EVENT_ID_HEADER: str(row.id), EVENT_TYPE_HEADER: event_type},
                    )
                )
    return out


class Sender:
    """One producer configured as the relay's, sending lists of messages and waiting for
    their acknowledgements; any delivery error fails the run."""

    def __init__(self, settings: Settings) -> None:
        self.producer = make_producer(settings)
        self.errors: list[KafkaError] = []

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.errors.append(err)

    def send(self, batch: list[Message]) -> None:
        for m in batch:
            while True:
                try:
                    self.producer.produce(
                        m.topic,
                        key=m.key,
                        value=m.value,
                        headers=m.headers,
                        on_delivery=self._on_delivery,
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self.producer.poll(0.01)
            self.producer.poll(0)
        if self.producer.flush(60) or self.errors:
            raise RuntimeError(f"floor: {self.errors[:1] or 'unacked messages'}")

    def send_all(self, messages: list[Message], ack_every: int | None) -> None:
        step = ack_every or len(messages)
        for i in range(0, len(messages), step):
            self.send(messages[i : i + step])


def floor_phase(
    settings: Settings,
    servers: dict[str, int],
    label: str,
    warm: list[list[Message]],
    groups: list[list[Message]],
    ack_every: int | None,
) -> Result:
    """Each group of messages sent by a producer of its own, in a thread of its own, all
    at once; each producer warmed up first with its `warm` messages."""
    senders = [Sender(settings) for _ in groups]
    for sender, first in zip(senders, warm, strict=True):
        sender.send(first)
    meter = CpuMeter(servers)
    meter.start()
    own = own_seconds()
    start = time.perf_counter()
    with ThreadPoolExecutor(len(groups)) as pool:
        # result(): a thread's exception is raised here, not lost.
        jobs = [pool.submit(s.send_all, g, ack_every) for s, g in zip(senders, groups, strict=True)]
        for job in jobs:
            job.result()
    seconds = time.perf_counter() - start
    cpu = {"relay": own_seconds() - own, **meter.stop()}
    return Result(label, len(groups), sum(len(g) for g in groups), seconds, cpu)


def read_back(settings: Settings, schemas: Iterable[str], expected: int) -> Counter[str]:
    """Every message of the topics, counted by event id: read to the end, not asked where
    the end is (the local broker's offset listing may lag what its fetches return)."""
    consumer = Consumer(
        kafka_config(
            settings, **{"group.id": f"bench-relay-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
    )
    consumer.assign(
        [
            TopicPartition(EVENT_TOPICS[s].name, p, OFFSET_BEGINNING)
            for s in schemas
            for p in range(EVENT_TOPICS[s].partitions)
        ]
    )
    seen: Counter[str] = Counter()
    quiet, total = 0, 0
    try:
        # Done after three empty reads once all are in (more would be duplicates), or
        # after twenty in a row short of them.
        while quiet < (3 if total >= expected else 20):
            batch = consumer.consume(10_000, 1.0)
            quiet = 0 if batch else quiet + 1
            for msg in batch:
                if msg.error() is not None:
                    raise RuntimeError(f"read back: {msg.error()}")
                headers = dict(msg.headers() or [])
                event_id = headers.get(EVENT_ID_HEADER) or b""
                seen[event_id.decode() if isinstance(event_id, bytes) else event_id] += 1
                total += 1
    finally:
        consumer.close()
    return seen


def outbox_ids(engine: Engine, schemas: Iterable[str]) -> list[str]:
    ids: list[str] = []
    with engine.connect() as conn:
        for s in schemas:
            ids += conn.execute(text(f"SELECT CAST(id AS text) FROM {s}.outbox")).scalars()
    return ids


def verify(
    engine: Engine, settings: Settings, schemas: list[str], floor_ids: list[str]
) -> tuple[int, int]:
    """Fail loudly unless the outboxes are drained and Kafka holds each event exactly once;
    (events checked, messages read)."""
    left = pending(engine, EVENT_TOPICS)
    if left:
        raise SystemExit(f"FAILED: {left} outbox row(s) still unpublished")
    want = Counter(outbox_ids(engine, schemas) + floor_ids)
    if any(n > 1 for n in want.values()):
        raise SystemExit("FAILED: an event id was generated twice")
    got = read_back(settings, schemas, sum(want.values()))
    missing = sum(1 for e in want if got[e] == 0)
    doubled = sum(n - 1 for e, n in got.items() if e in want and n > 1)
    foreign = sum(n for e, n in got.items() if e not in want)
    if missing or doubled or foreign:
        raise SystemExit(
            f"FAILED: {missing} event(s) missing from Kafka, {doubled} extra cop(ies), "
            f"{foreign} message(s) nobody wrote"
        )
    return len(want), sum(got.values())


def split(events: int, schemas: list[str]) -> dict[str, int]:
    share, extra = divmod(events, len(schemas))
    return {s: share + (1 if i < extra else 0) for i, s in enumerate(schemas)}


def cpu_text(r: Result, names: tuple[str, ...]) -> str:
    return ", ".join(f"{r.cpu_per_1000(n):.3f}" for n in names)


def report(results: list[Result], floor: Result, events: int, schemas: list[str]) -> None:
    names = ("relay", *SERVERS)
    print(f"\n{events:,} events per phase over {', '.join(schemas)}; {os.cpu_count()} cores")
    print(
        f"{'phase':38} {'events/s':>9} {'per process':>12} {'vs floor':>9}  "
        "CPU-s/1,000 events: relay(s) or bench producer, Postgres, broker, S3"
    )
    for r in [floor, *results]:
        shares = f"  published per process {[int(s) for s in r.shares]}" if r.shares else ""
        print(
            f"{r.label:38} {r.rate:9,.0f} {r.rate / r.processes:12,.0f} "
            f"{r.rate / floor.rate:8.3f}x  {cpu_text(r, names)}{shares}"
        )


def markdown_row(
    run: str,
    machine: str,
    events: int,
    schemas: list[str],
    floors: list[Result],
    results: list[Result],
) -> str:
    names = ("relay", *SERVERS)
    floor, acked, acked_two = floors
    by = {r.label: r for r in results}
    one, two = by["1 relay"], by["2 relays"]
    same = by.get("2 relays, one schema")
    cells = [
        run,
        dt.date.today().isoformat(),
        machine,
        f"{events:,}, {' + '.join(schemas)}",
        f"{floor.rate:,.0f}/s",
        f"{acked.rate:,.0f}/s, {acked_two.rate:,.0f}/s",
        f"{one.rate:,.0f}/s",
        f"{two.rate:,.0f}/s ({two.rate / 2:,.0f} per process)",
        f"{same.rate:,.0f}/s" if same else "—",
        f"{one.rate / floor.rate:.3f}x, {two.rate / floor.rate:.3f}x",
        cpu_text(one, names),
        cpu_text(two, names),
        cpu_text(floor, names),
    ]
    return "| " + " | ".join(cells) + " |"


MARKDOWN_HEADER = (
    "| run | date | machine | events, schemas | floor | floor acked every 500: 1, 2 producers "
    "| 1 relay | 2 relays | 2 relays, one schema | relay/floor: 1, 2 relays "
    "| CPU-s/1,000 events, 1 relay: relay, Postgres, broker, S3 | same, 2 relays "
    "| same, floor: this process (the producer), Postgres, broker, S3 |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def components() -> list[list[Component]]:
    """Only what the relay touches: no Redis, Stripe or mail sink competing for the cores."""
    return [[Postgres(), S3()], [Kafka("s3")]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events per phase")
    parser.add_argument(
        "--schemas",
        default="subscription,payment",
        help=f"outboxes the events are split over, comma-separated ({', '.join(SPECS)})",
    )
    parser.add_argument(
        "--one-schema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time two relays on events all in one schema",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH,
        help=f"the relays' --batch-size ({BATCH}, as deployed); the floor's acks follow {BATCH}",
    )
    parser.add_argument("--run", default="1", help="the run's number in the table row")
    parser.add_argument("--machine", default=None, help="how the table row names the machine")
    args = parser.parse_args()
    schemas = [s.strip() for s in args.schemas.split(",") if s.strip()]
    unknown = [s for s in schemas if s not in SPECS]
    if unknown or len(schemas) < 2:
        parser.error(f"--schemas: two or more of {', '.join(SPECS)} (got {args.schemas!r})")

    load_before = os.getloadavg()[0]
    with fresh_stack("paywall-bench-relay-", components()) as (root, settings):
        db.upgrade(settings)
        sync_topics(settings)
        engine = db.engine(settings)
        servers = {
            p.name: p.pid
            for p in LocalStack(root / "stack").status()
            if p.name in SERVERS and p.pid is not None
        }
        for schema in schemas:
            check_contract(engine, schema)
        counts = split(args.events, schemas)

        def warm(producers: int) -> list[list[Message]]:
            return [floor_messages(engine, {s: WARM_UP for s in schemas}) for _ in range(producers)]

        floors: list[Result] = []
        floor_ids: list[str] = []
        # (label, producers, ack_every): the floor, then what acking per batch costs, alone
        # and from two producers at once (as two relays on two schemas produce).
        for label, producers, ack_every in (
            ("floor: producer alone", 1, None),
            (f"floor, acked every {BATCH}", 1, BATCH),
            (f"floor, 2 producers, acked every {BATCH}", 2, BATCH),
        ):
            first = warm(producers)
            if producers == 1:
                groups = [floor_messages(engine, counts)]
            else:  # a schema's events to each producer, as the relays share them
                groups = [floor_messages(engine, {s: n}) for s, n in counts.items()]
            floors.append(floor_phase(settings, servers, label, first, groups, ack_every))
            floor_ids += [str(m.headers[EVENT_ID_HEADER]) for g in (*first, *groups) for m in g]
        floor = floors[0]

        phases: list[tuple[str, int, dict[str, int]]] = [
            ("1 relay", 1, counts),
            ("2 relays", 2, counts),
        ]
        if args.one_schema:
            phases.append(("2 relays, one schema", 2, {schemas[0]: args.events}))
        results = [relay_phase(engine, root, servers, *phase, args.batch_size) for phase in phases]

        checked, read = verify(engine, settings, schemas, floor_ids)
        print(
            f"verified: {checked:,} events each in Kafka exactly once ({read:,} messages read), "
            "every outbox drained"
        )
    load_after = os.getloadavg()[0]

    report([*floors[1:], *results], floor, args.events, schemas)
    machine = args.machine or (
        f"{os.cpu_count()} cores, load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print("\nbench/README.md row:\n")
    print(MARKDOWN_HEADER)
    print(markdown_row(args.run, machine, args.events, schemas, floors, results))


if __name__ == "__main__":
    main()

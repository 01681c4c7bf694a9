"""Each consumer by name: its handler and the topics its group reads (one place)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from paywall.db import engine
from paywall.settings import Settings
from streaming.consumers import audit, notification, webhooks
from streaming.consumers.runner import ConsumerLoop, Handler
from streaming.topics import EVENT_TOPICS

CONSUMERS = ("notification", "audit", "webhooks")


@dataclass
class Wiring:
    topics: list[str]
    handler: Handler
    on_idle: Callable[[], None] | None = None


def wiring(name: str, settings: Settings) -> Wiring:
    """What consumer `name` reads and does; KeyError for an unknown name."""
    db = engine(settings)
    if name == "audit":  # everything that happens is audited
        auditor = audit.handler(db, settings)
        return Wiring([t.name for t in EVENT_TOPICS.values()], auditor, auditor.idle)
    if name == "notification":
        topics = [EVENT_TOPICS[s].name for s in ("customer", "registration", "payment")]
        return Wiring(topics, notification.Notifier(db, notification.Senders(settings)))
    if name == "webhooks":  # any service's event may be a partner's, or name a tenant
        fanout = webhooks.Fanout(db, settings.webhook_schedule_scale)
        return Wiring([t.name for t in EVENT_TOPICS.values()], fanout)
    raise KeyError(name)


def consumer_loop(name: str, settings: Settings, group_id: str | None = None) -> ConsumerLoop:
    wired = wiring(name, settings)
    return ConsumerLoop(
        settings, name, wired.topics, wired.handler, group_id=group_id, on_idle=wired.on_idle
    )

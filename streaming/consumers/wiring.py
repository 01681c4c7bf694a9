"""Each consumer by name: its handler and the topics its group reads (one place)."""

from __future__ import annotations

from paywall.db import engine
from paywall.settings import Settings
from streaming.consumers import audit, notification
from streaming.consumers.runner import ConsumerLoop
from streaming.topics import EVENT_TOPICS

CONSUMERS = ("notification", "audit")


def consumer_loop(name: str, settings: Settings, group_id: str | None = None) -> ConsumerLoop:
    db = engine(settings)
    if name == "audit":  # everything that happens is audited
        topics = [t.name for t in EVENT_TOPICS.values()]
        auditor = audit.handler(db, settings)
        return ConsumerLoop(
            settings, name, topics, auditor, group_id=group_id, on_idle=auditor.idle
        )
    if name == "notification":
        topics = [EVENT_TOPICS[s].name for s in ("customer", "registration", "payment")]
        notifier = notification.Notifier(db, notification.Senders(settings))
        return ConsumerLoop(settings, name, topics, notifier, group_id=group_id)
    raise KeyError(name)

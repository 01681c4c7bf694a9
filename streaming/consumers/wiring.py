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
        handler = audit.handler(db, settings)
    elif name == "notification":
        topics = [EVENT_TOPICS[s].name for s in ("customer", "registration", "payment")]
        handler = notification.Notifier(db, notification.Senders(settings))
    else:
        raise KeyError(name)
    return ConsumerLoop(settings, name, topics, handler, group_id=group_id)

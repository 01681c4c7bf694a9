"""Every consumer the CLI runs, by name: the streaming ones (streaming/consumers/wiring.py)
and erasure, which runs the services' own erasure steps and so is wired with them
(transactional/erasure.py; streaming may not import the services)."""

from __future__ import annotations

from paywall.errors import PaywallError
from paywall.settings import Settings
from streaming.consumers.runner import ConsumerLoop, Handler
from streaming.consumers.wiring import CONSUMERS, consumer_loop, wiring
from transactional import erasure

NAMES = (*CONSUMERS, erasure.NAME)


def checked(name: str) -> str:
    if name not in NAMES:
        raise PaywallError(f"consumer: unknown consumer {name!r} ({' or '.join(NAMES)})")
    return name


def loop(name: str, settings: Settings, group_id: str | None = None) -> ConsumerLoop:
    if checked(name) == erasure.NAME:
        return erasure.consumer_loop(settings, group_id)
    return consumer_loop(name, settings, group_id)


def handler(name: str, settings: Settings) -> Handler:
    if checked(name) == erasure.NAME:
        return erasure.handler(settings)
    return wiring(name, settings).handler

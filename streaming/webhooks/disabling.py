"""Disabling an endpoint that keeps failing, and telling its tenant by email.

An endpoint is disabled after WEBHOOK_DISABLE_AFTER_FAILURES failed attempts in a row
(no success in between) whose streak has lasted at least WEBHOOK_DISABLE_AFTER_HOURS:
both, so neither a burst of events during a five-minute blip nor one slow retry a day
turns an endpoint off. Its pending deliveries wait; enabling it again sends them.
The email goes to the endpoint's contact address through the notification toolkit's
SendGrid sender, once: only the transaction that disabled the endpoint sends it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, text

from paywall.logs import get_logger
from paywall.settings import Settings
from streaming.notifications.senders import Email, ProviderError, Senders
from streaming.notifications.templates import render

log = get_logger(__name__)


@dataclass(frozen=True)
class Disabled:
    endpoint_id: uuid.UUID
    tenant_id: str
    url: str
    contact_email: str | None
    failures: int


def count(
    conn: Connection, settings: Settings, endpoint_id: uuid.UUID, ok: bool
) -> Disabled | None:
    """Count an attempt in the endpoint's streak; the endpoint if this one disabled it."""
    if ok:
        conn.execute(
            text(
                "UPDATE webhooks.endpoints SET failures = 0, failing_since = NULL "
                "WHERE id = :e AND failures > 0"
            ),
            {"e": endpoint_id},
        )
        return None
    row = conn.execute(
        text(
            "UPDATE webhooks.endpoints SET failures = failures + 1, "
            "failing_since = COALESCE(failing_since, now()) WHERE id = :e "
            "RETURNING failures, failing_since, disabled_at"
        ),
        {"e": endpoint_id},
    ).one()
    hours = timedelta(hours=settings.webhook_disable_after_hours)
    if row.failures < settings.webhook_disable_after_failures or row.disabled_at is not None:
        return None
    disabled = conn.execute(
        text(
            "UPDATE webhooks.endpoints SET disabled_at = now(), updated_at = now(), "
            "disabled_reason = :why WHERE id = :e AND disabled_at IS NULL "
            "AND failing_since <= now() - :hours "
            "RETURNING id, tenant_id, url, contact_email, failures"
        ),
        {
            "e": endpoint_id,
            "hours": hours,
            "why": f"{row.failures} failed attempts in a row since "
            f"{row.failing_since:%Y-%m-%d %H:%M} UTC",
        },
    ).first()
    if disabled is None:
        return None
    return Disabled(
        disabled.id, disabled.tenant_id, disabled.url, disabled.contact_email, disabled.failures
    )


def notify(settings: Settings, disabled: Disabled) -> None:
    """Email the tenant's contact; a provider failure is logged, never raised (the
    endpoint stays disabled, and the API shows why)."""
    log.warning(
        "webhook.endpoint_disabled",
        endpoint_id=str(disabled.endpoint_id),
        tenant_id=disabled.tenant_id,
        failures=disabled.failures,
    )
    if not disabled.contact_email:
        return
    message = render(
        "webhook_disabled",
        "email",
        {
            "endpoint_id": str(disabled.endpoint_id),
            "url": disabled.url,
            "failures": disabled.failures,
            "tenant": disabled.tenant_id,
        },
    )
    key = f"webhook-disabled:{disabled.endpoint_id}"
    try:
        Senders(settings).email([Email(disabled.contact_email, message.subject, message.body, key)])
    except ProviderError as exc:
        log.warning("webhook.disable_notice_failed", error=str(exc)[:200])

"""Every notice's text: templates/<template>.<channel>.txt, rendered with Jinja2.

Jinja2 rather than SendGrid's dynamic templates: the same files serve email and SMS (Twilio
has no equivalent), live and change with the code that fills them, and render the same on a
laptop (the sink records what would be delivered) as in production. Plain text, so no
autoescaping; an unknown value is an error, never a blank in a customer's message. An
email template's first line is `Subject: …`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from paywall.portal_links import card_link
from paywall.settings import get_settings

TEMPLATES_DIR = Path(__file__).parent / "templates"
_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    undefined=StrictUndefined,
    autoescape=False,  # plain text: email text/plain and SMS bodies
    keep_trailing_newline=True,
)
SUBJECT = "Subject: "
# Notices that ask the customer to act on their card carry a link into the portal. Made
# when the notice is rendered, never stored: the link expires, the notice may wait.
CARD_LINKED = frozenset({"payment_failed", "dunning"})


@dataclass(frozen=True)
class Message:
    subject: str  # empty for SMS
    body: str


def render(template: str, channel: str, values: dict[str, Any]) -> Message:
    raw = _ENV.get_template(f"{template}.{channel}.txt").render(values)
    first, _, rest = raw.partition("\n")
    if first.startswith(SUBJECT):
        return Message(first.removeprefix(SUBJECT), rest.strip() + "\n")
    return Message("", raw.strip())


def with_links(
    template: str, customer_id: str, tenant_id: str | None, values: dict[str, Any]
) -> dict[str, Any]:
    """`values`, with the portal link the template shows (`card_link`) when it has one."""
    if template not in CARD_LINKED:
        return values
    return {**values, "card_link": card_link(get_settings(), str(customer_id), tenant_id)}

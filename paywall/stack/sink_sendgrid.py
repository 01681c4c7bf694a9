"""SendGrid's v3 mail/send as the sink serves it: the checks SendGrid makes on a body,
with its error messages, and one record per recipient of an accepted message, with the
personalization's substitutions made in its subject and content, as SendGrid delivers it."""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from typing import Any

from paywall.stack.sink_store import Record, now

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def sendgrid_error(message: str, field: str | None = None) -> Record:
    return {"message": message, "field": field, "help": None}


def sendgrid_errors(body: Any) -> list[Record]:
    """The essential checks SendGrid makes on a v3 mail/send body, with SendGrid's messages."""
    if not isinstance(body, dict):
        return [sendgrid_error("Bad Request")]
    errors = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            sendgrid_error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    for i, p in enumerate(personalizations):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(
                sendgrid_error(
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
            continue
        for kind in ("to", "cc", "bcc"):
            for j, addr in enumerate(p.get(kind) or []):
                if not _valid_email(addr):
                    errors.append(
                        sendgrid_error(
                            "Does not contain a valid address.",
                            f"personalizations.{i}.{kind}.{j}.email",
                        )
                    )
    if not _valid_email(body.get("from")):
        errors.append(
            sendgrid_error(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from.email",
            )
        )
    template_id = body.get("template_id")
    every_personalization_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if not (template_id or body.get("subject") or every_personalization_has_subject):
        errors.append(
            sendgrid_error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        )
    content = body.get("content")
    if not template_id and (not isinstance(content, list) or not content):
        errors.append(
            sendgrid_error(
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block.",
                "content",
            )
        )
    for k, block in enumerate(content if isinstance(content, list) else []):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(sendgrid_error("The content type is required.", f"content.{k}.type"))
        elif not isinstance(block.get("value"), str) or not block["value"]:
            errors.append(
                sendgrid_error(
                    "The content value must be a string at least one character in length.",
                    f"content.{k}.value",
                )
            )
    return errors


def _valid_email(addr: Any) -> bool:
    return (
        isinstance(addr, dict)
        and isinstance(addr.get("email"), str)
        and _EMAIL.match(addr["email"]) is not None
    )


def sendgrid_records(body: Record, message_id: str) -> list[Record]:
    content = {c["type"]: c["value"] for c in body.get("content") or []}
    message = {
        "provider": "sendgrid",
        "message_id": message_id,
        "from": body["from"]["email"],
        "from_name": body["from"].get("name"),
        "template_id": body.get("template_id"),
        "categories": body.get("categories") or [],
        "received_at": now().isoformat(),
    }
    records: list[Record] = []
    for p in body["personalizations"]:
        subs = _obj(p.get("substitutions"))
        per_personalization = {
            "subject": _substitute(p.get("subject") or body.get("subject"), subs),
            "text": _substitute(content.get("text/plain"), subs),
            "html": _substitute(content.get("text/html"), subs),
            "dynamic_template_data": p.get("dynamic_template_data"),
            # SendGrid merges them the same way: the personalization's value wins.
            "custom_args": {**_obj(body.get("custom_args")), **_obj(p.get("custom_args"))},
        }
        for kind in ("to", "cc", "bcc"):
            records.extend(
                {
                    "id": uuid.uuid4().hex,
                    **message,
                    **per_personalization,
                    "to": addr["email"],
                    "to_name": addr.get("name"),
                    "recipient_type": kind,
                }
                for addr in p.get(kind) or []
            )
    return records


def _substitute(text: str | None, substitutions: Record) -> str | None:
    if text is None:
        return None
    for tag, value in substitutions.items():
        text = text.replace(tag, str(value))
    return text


def _obj(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


def sendgrid_message_id() -> str:
    # Same look as SendGrid's ids: 22 characters of URL-safe base64.
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")

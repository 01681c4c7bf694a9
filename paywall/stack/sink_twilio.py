"""Twilio's 2010-04-01 Messages API as the sink serves it: the first problem Twilio would
report, the record of an accepted message, and the Message resource Twilio renders."""

from __future__ import annotations

import base64
import binascii
import email.utils
import math
import re
import secrets
import uuid
from datetime import datetime

from paywall.stack.sink_store import Record, now

TWILIO_API_VERSION = "2010-04-01"
# E.164, plus the channel prefixes Twilio accepts on the same endpoint.
_PHONE = re.compile(r"^(?:whatsapp:|messenger:)?\+?[1-9]\d{1,14}$")
TWILIO_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
TWILIO_MESSAGE = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)
_TWILIO_BODY_LIMIT = 1600


def twilio_error(code: int, message: str, status: int) -> Record:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def twilio_errors(form: dict[str, list[str]]) -> Record | None:
    """Twilio reports only the first problem it finds, so this returns one error or None."""
    to = form.get("To", [""])[0]
    body = form.get("Body", [""])[0]
    if not to:
        return twilio_error(21604, "A 'To' phone number is required.", 400)
    if not _PHONE.match(to):
        return twilio_error(21211, f"Invalid 'To' Phone Number: {to}", 400)
    if not form.get("From", [""])[0] and not form.get("MessagingServiceSid", [""])[0]:
        return twilio_error(21603, "A 'From' phone number is required.", 400)
    if not body and not form.get("MediaUrl"):
        return twilio_error(21602, "Message body is required.", 400)
    if len(body) > _TWILIO_BODY_LIMIT:
        return twilio_error(
            21617, "The concatenated message body exceeds the 1600 character limit.", 400
        )
    return None


def twilio_record(account_sid: str, form: dict[str, list[str]]) -> Record:
    return {
        "id": uuid.uuid4().hex,
        "provider": "twilio",
        "message_id": "SM" + secrets.token_hex(16),
        "account_sid": account_sid,
        "to": form["To"][0],
        "from": form.get("From", [None])[0],
        "messaging_service_sid": form.get("MessagingServiceSid", [None])[0],
        "body": form.get("Body", [""])[0],
        "media_urls": form.get("MediaUrl", []),
        "status_callback": form.get("StatusCallback", [None])[0],
        "status": "queued",
        "received_at": now().isoformat(),
    }


def twilio_resource(record: Record) -> Record:
    """The Message resource as Twilio's 2010-04-01 API renders it."""
    uri = f"/{TWILIO_API_VERSION}/Accounts/{record['account_sid']}/Messages/{record['message_id']}"
    created = email.utils.format_datetime(datetime.fromisoformat(record["received_at"]))
    body = record["body"]
    return {
        "account_sid": record["account_sid"],
        "api_version": TWILIO_API_VERSION,
        "body": body,
        "date_created": created,
        "date_sent": None,
        "date_updated": created,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": record["from"],
        "messaging_service_sid": record["messaging_service_sid"],
        "num_media": str(len(record["media_urls"])),
        # A single GSM-7 SMS holds 160 characters, each part of a longer one 153.
        "num_segments": str(1 if len(body) <= 160 else math.ceil(len(body) / 153)),
        "price": None,
        "price_unit": "USD",
        "sid": record["message_id"],
        "status": record["status"],
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": record["to"],
        "uri": f"{uri}.json",
    }


def basic_auth_user(header: str | None) -> str | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user if user and password else None

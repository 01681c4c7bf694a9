"""The one notification toolkit, used by the real-time consumer (streaming/consumers/
notification.py) and the daily batches (assets/notifications/):

senders.py     the real SendGrid and Twilio SDKs, from the sender identity in settings
templates.py   every notice's text, rendered with Jinja2 from templates/
ledger.py      notification.sends, the one dedupe table: a notice is sent once per key,
               whichever path gets to it first

In `streaming` because the notification schema belongs to the notification consumer, the
service that owns it; the batches sit above streaming and share its tables through this
module. The kernel stays free of any one domain's rules.
"""

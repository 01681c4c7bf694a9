"""A partner's webhook receiver, the smallest correct one (the README's walk-through runs it).

    .venv/bin/python streaming/webhooks/receiver.py --port 8123 --secret whsec_...

It verifies each request's Standard Webhooks signature on the raw body with the
`standardwebhooks` library (which also refuses timestamps over 5 minutes old), answers
204 to a good one and 400 to anything else, prints the event's type and id, and exits
after the first verified webhook (1 when none came within --timeout seconds). A real receiver
answers 2xx fast, does the work later, and dedupes by `webhook-id` (the event id, the same
on every retry and replay).
"""

from __future__ import annotations

import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--secret", required=True, help="the endpoint's whsec_… secret")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    hook = Webhook(args.secret)
    verified: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                payload = hook.verify(body, {k.lower(): v for k, v in self.headers.items()})
            except WebhookVerificationError:
                self.send_response(400)
                self.end_headers()
                return
            self.send_response(204)
            self.end_headers()
            verified.append(payload)
            threading.Thread(target=self.server.shutdown, daemon=True).start()

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", args.port), Handler)
    timer = threading.Timer(args.timeout, server.shutdown)
    timer.start()
    server.serve_forever()
    timer.cancel()
    if not verified:
        print(f"no verified webhook within {args.timeout:.0f}s", file=sys.stderr)
        return 1
    event = verified[0]
    print(f"webhook received and verified: {event['type']} {event['id']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The webhooks service: partners' endpoints, replays, the delivery log and GET /v1/events."""

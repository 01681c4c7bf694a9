"""The event bus: contracts, topics, outbox relay, consumers and the streaming lake job."""

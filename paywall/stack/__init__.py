"""The local stack of real servers on loopback (PostgreSQL, Redis, Kafka, S3, Stripe, sink)."""

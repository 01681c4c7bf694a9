"""Kafka consumers, each its own consumer group: notification and audit."""

"""Events: the daily check that every event the outboxes published reached the audit log."""

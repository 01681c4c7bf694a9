"""Notification batches: trial-ending reminders, dunning notices, monthly receipts."""

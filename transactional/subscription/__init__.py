"""Subscription service: plans, subscriptions and their lifecycle."""

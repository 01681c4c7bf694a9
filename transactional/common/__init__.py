"""What every service shares: app factory, problems, outbox, auth checks, HTTP clients."""

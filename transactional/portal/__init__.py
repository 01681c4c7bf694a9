"""The customer portal: server-rendered self-service pages behind the customer\x27s own login."""

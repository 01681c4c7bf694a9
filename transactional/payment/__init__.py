"""The payment service: Stripe accounts, charges, refunds and Stripe webhooks."""

"""Registration service: the signup saga across customer, auth, payment and subscription."""

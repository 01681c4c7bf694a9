"""Outbound webhooks: the events partners see, their deliveries, and the delivery worker.

The `webhooks` schema belongs to the webhooks service (transactional/webhooks manages the
endpoints); its event plumbing lives here, below the services, beside the other consumers.
"""

"""The canonical event types of contract v1."""

EVENT_TYPES = (
    "customer.created",
    "customer.updated",
    "subscription.started",
    "subscription.changed",
    "subscription.cancelled",
    "subscription.reactivated",
    "event.voided",
)

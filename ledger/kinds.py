"""The canonical event types of contract v1.1, and the fields that place an event.

Which customer, subscription or voided event an event is about is read only from the
fields its type defines: any other field is an extra, kept for the audit trail, whatever
its name (a customer event may well carry a `subscription_id` of the billing system's).
"""

EVENT_TYPES = (
    "customer.created",
    "customer.updated",
    "subscription.started",
    "subscription.changed",
    "subscription.cancelled",
    "subscription.reactivated",
    "subscription.snapshot",
    "event.voided",
)
VOID = "event.voided"  # the only type without a customer_id: its target's stream is its own
SUBSCRIPTION_TYPES = frozenset(t for t in EVENT_TYPES if t.startswith("subscription."))
SNAPSHOT = "subscription.snapshot"  # sets every term like a start; active from its `status`
# the types that set every term (a term left out takes its default)
WHOLE = frozenset(("subscription.started", "subscription.reactivated", SNAPSHOT))
PRICED = frozenset((*WHOLE, "subscription.changed"))  # the types that carry terms

"""The canonical event types of contract v1.1, and the fields that place an event.

Which customer, subscription or voided event an event is about is read only from the
fields its type defines: any other field is an extra, kept for the audit trail, whatever
its name (a customer event may well carry a `subscription_id` of the billing system's).
"""

CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
STARTED = "subscription.started"
CHANGED = "subscription.changed"
CANCELLED = "subscription.cancelled"
REACTIVATED = "subscription.reactivated"
SNAPSHOT = "subscription.snapshot"  # sets every term like a start; active from its `status`
VOID = "event.voided"  # the only type without a customer_id: its target's stream is its own

EVENT_TYPES = (CUSTOMER_CREATED, CUSTOMER_UPDATED, STARTED, CHANGED, CANCELLED, REACTIVATED,
               SNAPSHOT, VOID)
SUBSCRIPTION_TYPES = frozenset(t for t in EVENT_TYPES if t.startswith("subscription."))
# the types that set every term (a term left out takes its default)
WHOLE = frozenset((STARTED, REACTIVATED, SNAPSHOT))
PRICED = frozenset((*WHOLE, CHANGED))  # the types that carry terms

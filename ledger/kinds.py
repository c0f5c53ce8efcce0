"""The canonical event types of contract v1.1, the fields that place an event, and the
billing intervals.

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
VOID = "event.voided"  # no customer_id of its own: its target's stream is its own
# contract v2: an exchange rate, about no customer; each is a stream of its own (its void
# joins it), so rates never contend with each other or with customers' streams
FX_RATE = "fx.rate"
UNOWNED = frozenset((VOID, FX_RATE))  # the types with no customer_id field

EVENT_TYPES = (CUSTOMER_CREATED, CUSTOMER_UPDATED, STARTED, CHANGED, CANCELLED, REACTIVATED,
               SNAPSHOT, VOID, FX_RATE)
SUBSCRIPTION_TYPES = frozenset(t for t in EVENT_TYPES if t.startswith("subscription."))
# the types that set every term (a term left out takes its default)
WHOLE = frozenset((STARTED, REACTIVATED, SNAPSHOT))
PRICED = frozenset((*WHOLE, CHANGED))  # the types that carry terms

# The billing intervals (the contract's `interval`) and how many of each make a year: the
# contract's F (intervals per month) in twelfths, so MRR = amount x quantity x PER_YEAR /
# (12 x interval_count), and any mix of intervals sums exactly per year.
PER_YEAR = {"month": 12, "year": 1, "week": 52, "day": 365}

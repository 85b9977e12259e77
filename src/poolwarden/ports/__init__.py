"""The ports: the values and the small Protocols between the services and the adapters.

``ports.rows`` holds the values that cross them, ``ports.stores`` the Protocols; both are
re-exported here. Adapters implement the Protocols; services depend only on them.
"""

from poolwarden.ports.resolver import DnsTemporaryError, Resolver, SpfEvaluator
from poolwarden.ports.rows import (
    AddResult,
    AlertRow,
    AuditRow,
    Checkpoint,
    CounterRow,
    DecisionRow,
    DmarcReportRow,
    FeedbackRow,
    ListingChange,
    Lookup,
    StoredRows,
    TokenRow,
    UserRow,
)
from poolwarden.ports.stores import (
    AccessStore,
    AlertSource,
    AlertStore,
    AsyncResolver,
    AuthStore,
    DecisionStore,
    DmarcStore,
    EventStore,
    FeedbackStore,
    IngestStore,
    ListingStore,
    ReactionStore,
    StandingStore,
    Store,
    WarmupStore,
)

__all__ = [
    "AccessStore",
    "AddResult",
    "AlertRow",
    "AlertSource",
    "AlertStore",
    "AsyncResolver",
    "AuditRow",
    "AuthStore",
    "Checkpoint",
    "CounterRow",
    "DecisionRow",
    "DecisionStore",
    "DmarcReportRow",
    "DmarcStore",
    "DnsTemporaryError",
    "EventStore",
    "FeedbackRow",
    "FeedbackStore",
    "IngestStore",
    "ListingChange",
    "ListingStore",
    "Lookup",
    "ReactionStore",
    "Resolver",
    "SpfEvaluator",
    "StandingStore",
    "Store",
    "StoredRows",
    "TokenRow",
    "UserRow",
    "WarmupStore",
]

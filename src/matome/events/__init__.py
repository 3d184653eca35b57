"""matome's domain events, one module per aggregate (see :mod:`matome.events.base`)."""

from matome.events import bill, catalog, ledger, line, passport, subscription
from matome.events.base import EVENT_TOPICS, DomainEvent

__all__ = [
    "EVENT_TOPICS",
    "DomainEvent",
    "bill",
    "catalog",
    "ledger",
    "line",
    "passport",
    "subscription",
]

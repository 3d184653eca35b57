"""Aggregates: immutable states rebuilt from their own streams by pure projector functions."""

from matome.aggregates.catalog import Provider, project_provider, provider_id
from matome.aggregates.ledger import CALENDAR_ID, Calendar, KeyRecord, key_id
from matome.aggregates.line import AccessLine, line_id, project_line
from matome.aggregates.passport import Holding, Passport, passport_id_stream, project_passport
from matome.aggregates.subscription import Subscription, project_subscription, subscription_id

__all__ = [
    "CALENDAR_ID",
    "AccessLine",
    "Calendar",
    "Holding",
    "KeyRecord",
    "Passport",
    "Provider",
    "Subscription",
    "key_id",
    "line_id",
    "passport_id_stream",
    "project_line",
    "project_passport",
    "project_provider",
    "project_subscription",
    "provider_id",
    "subscription_id",
]

"""Events of engine-wide records: the billing calendar and idempotency keys."""

from __future__ import annotations

from typing import Any

import attrs

from matome.events.base import DomainEvent, topic
from matome.values import YearMonth

__all__ = ["KeyBound", "MonthsClosed"]


@topic("matome.calendar.MonthsClosed")
@attrs.frozen(kw_only=True)
class MonthsClosed(DomainEvent):
    """``issue_bills`` closed every month up to and including ``through`` (§7).

    **Decision:** closing a month also closes the months before it.  Otherwise a command dated
    in an earlier, still-open month could start a monthly subscription that is charged in the
    closed month too, and so change a bill already issued.
    """

    through: YearMonth


@topic("matome.idempotency.KeyBound")
@attrs.frozen(kw_only=True)
class KeyBound(DomainEvent):
    """An accepted command bound its idempotency key.

    ``digest`` is SHA-256 over the command's canonical JSON with secrets left out; ``secrets``
    holds salted hashes of the secret fields so that a retry must present the same secrets;
    ``result`` is the first result, answered again to a retry.
    """

    key: str
    command: str
    digest: str
    secrets: dict[str, str]
    result: dict[str, Any]

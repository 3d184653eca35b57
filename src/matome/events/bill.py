"""Events of issued bills: one stream per (line, month); an issued bill never changes."""

from __future__ import annotations

from typing import Any

import attrs

from matome.events.base import DomainEvent, topic
from matome.values import CustomerId, YearMonth

__all__ = ["BillIssued"]


@topic("matome.bill.BillIssued")
@attrs.frozen(kw_only=True)
class BillIssued(DomainEvent):
    """The bill of one line for one closed month, as issued (§7).

    ``document`` is the contract's bill document with status ``issued``; ``digest`` is the
    SHA-256 of its canonical JSON, so a stored bill can be checked against its content.
    """

    customer_id: CustomerId
    month: YearMonth
    document: dict[str, Any]
    digest: str

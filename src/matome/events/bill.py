"""Events of issued bills: one stream per (line, month); an issued bill never changes."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from matome.documents import Bill
from matome.events.base import DomainEvent, topic
from matome.values import CustomerId, YearMonth

__all__ = ["BillIssued"]


@topic("matome.bill.BillIssued")
@attrs.frozen(kw_only=True)
class BillIssued(DomainEvent):
    """The bill of one line for one closed month, as issued (§7).

    ``bill`` is the typed bill document with status ``issued``; ``digest`` is the SHA-256 of
    its canonical JSON, so a stored bill can be checked against its content.

    Version 2 (matome 0.2): the bill is a typed :class:`~matome.documents.Bill`, stored under
    ``bill``; version 1 stored the same JSON document, untyped, under ``document``.
    """

    class_version: ClassVar[int] = 2

    customer_id: CustomerId
    month: YearMonth
    bill: Bill
    digest: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        # The v1 document is the contract's bill JSON: the typed bill has the same shape.
        state["bill"] = state.pop("document")

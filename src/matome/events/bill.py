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
    its canonical JSON, so a stored bill can be checked against its content.  ``sources``
    names exactly the events it was computed from (``<stream>@<version>``: the purchases,
    cancellations and refunds of its charges, the billing account in force, the providers of
    its rows) and ``events_digest`` is the SHA-256 of their chain hashes, so ``matome verify``
    can prove the history behind an issued bill is the history that was billed.

    Version 2 (matome 0.2): the bill is a typed :class:`~matome.documents.Bill`, stored under
    ``bill``; version 1 stored the same JSON document, untyped, under ``document``.
    Version 3 (matome 0.2): ``sources`` and ``events_digest`` (empty for bills issued before).
    """

    class_version: ClassVar[int] = 3

    customer_id: CustomerId
    month: YearMonth
    bill: Bill
    digest: str
    sources: tuple[str, ...] = ()
    events_digest: str = ""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        # The v1 document is the contract's bill JSON: the typed bill has the same shape.
        state["bill"] = state.pop("document")

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["sources"] = []
        state["events_digest"] = ""

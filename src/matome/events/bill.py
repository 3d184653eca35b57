"""Events of issued bills: one stream per (line, month); an issued bill never changes."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from matome.events.base import DomainEvent, topic
from matome.values import CustomerId, YearMonth, canonical_json

__all__ = ["BillIssued"]


@topic("matome.bill.BillIssued")
@attrs.frozen(kw_only=True)
class BillIssued(DomainEvent):
    """The bill of one line for one closed month, as issued (§7).

    ``document`` is the bill document (status ``issued``) as its canonical JSON text, and
    ``digest`` the SHA-256 of exactly those UTF-8 bytes, so ``matome verify`` checks the stored
    bill itself, not a re-serialisation of it: a later change of the document's shape cannot
    make an old bill look broken.  :func:`matome.wire.issued_bill` reads the typed bill from
    it (the event holds no document type: events sit below the documents).  ``sources`` names
    exactly the events it was computed from (``<stream>@<version>``: the purchases,
    cancellations and refunds of its charges, the billing account in force, the providers of
    its rows) and ``events_digest`` is the SHA-256 of their chain hashes, so ``matome verify``
    can prove the history behind an issued bill is the history that was billed.

    Version 2 (matome 0.2): the bill is a typed :class:`~matome.documents.Bill`, stored under
    ``bill``; version 1 stored the same JSON document, untyped, under ``document``.
    Version 3 (matome 0.2): ``sources`` and ``events_digest`` (empty for bills issued before).
    Version 4: ``document``, the canonical JSON text, replaces the typed ``bill``.  An older
    bill's stored JSON becomes that text (canonical form of the stored value), which is the
    text its digest was computed over: the digest of v1–v3 was the SHA-256 of the canonical
    JSON of the bill as serialised when issued, and that serialisation is what was stored.
    """

    class_version: ClassVar[int] = 4

    customer_id: CustomerId
    month: YearMonth
    document: str
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

    @staticmethod
    def upcast_v3_v4(state: dict[str, Any]) -> None:
        # The bill as stored (the converter's JSON of the typed bill when it was issued) in
        # canonical form: exactly the text whose SHA-256 is its recorded digest.  Not read
        # back through today's Bill type, whose serialisation may since have changed.
        state["document"] = canonical_json(state.pop("bill"))

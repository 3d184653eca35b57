"""The documents of the contract (INTERCHANGE.md, "Documents out"), built from the views.

Charges are derived from the subscription rows with the same rule functions the engine uses
(:mod:`matome.charging`), so a bill and the spend check can never disagree.  Every charge keeps
its provenance: ``sources`` names the events it came from as ``<receipt>@<version>`` (the
version of the event in that purchase's own stream — stable on every store).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any

import attrs

from matome.charging import charged_in
from matome.errors import InvalidInput, UnknownLine
from matome.policy import Policy
from matome.projections.fees import DEFAULT_SCHEDULE, FeePeriod, fee_for
from matome.projections.runner import Projection, utc_text
from matome.values import TOKYO, PassportId, YearMonth, tokyo_date
from matome.wire import dumps

__all__ = ["LABEL", "Documents", "bill_digest"]

#: The bill row label of DOMAIN.md §7.
LABEL = "フレッツ・まとめて支払い料金"

_SUB_COLUMNS = (
    "receipt, customer_id, passport_id, provider, service, service_name, pricing, price, "
    "purchased_at, purchased_month, cancelled_at, cancel_version"
)


def _parse_utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@attrs.frozen
class _Sub:
    receipt: str
    customer_id: str
    passport_id: str
    provider: str
    service: str
    service_name: str
    pricing: str
    price: int
    purchased_at: datetime
    purchased_month: str
    cancelled_at: datetime | None
    cancel_version: int | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> _Sub:
        purchased_at = _parse_utc(row[8])
        assert purchased_at is not None
        return cls(
            receipt=row[0],
            customer_id=row[1],
            passport_id=row[2],
            provider=row[3],
            service=row[4],
            service_name=row[5],
            pricing=row[6],
            price=int(row[7]),
            purchased_at=purchased_at,
            purchased_month=row[9],
            cancelled_at=_parse_utc(row[10]),
            cancel_version=row[11],
        )

    @property
    def started_on(self) -> str:
        return tokyo_date(self.purchased_at).isoformat()


def bill_digest(document: dict[str, Any]) -> str:
    """SHA-256 of a bill document's canonical JSON."""
    return hashlib.sha256(dumps(document).encode()).hexdigest()


class Documents:
    """Queries of the contract over one projection."""

    def __init__(
        self,
        projection: Projection,
        policy: Policy,
        schedule: Sequence[FeePeriod] = DEFAULT_SCHEDULE,
    ) -> None:
        self.projection = projection
        self.policy = policy
        self.schedule = tuple(schedule)

    # -----------------------------------------------------------------------------------------
    # Charges

    def _subs(self, where: str, params: tuple[Any, ...]) -> list[_Sub]:
        rows = self.projection.query(
            f"SELECT {_SUB_COLUMNS} FROM mv_subs WHERE {where} ORDER BY purchased_at, receipt",
            params,
        )
        return [_Sub.from_row(r) for r in rows]

    def _month_subs(self, month: YearMonth, customer_id: str | None) -> list[_Sub]:
        m = str(month)
        where = (
            "purchased_month <= ? AND ((pricing = 'monthly' AND "
            "(cancelled_month IS NULL OR cancelled_month >= ?)) OR purchased_month = ?)"
        )
        params: tuple[Any, ...] = (m, m, m)
        if customer_id is not None:
            where = "customer_id = ? AND " + where
            params = (customer_id, *params)
        return self._subs(where, params)

    def _refunds(self, month: YearMonth, customer_id: str | None) -> list[tuple[_Sub, Any]]:
        sql = (
            f"SELECT {', '.join('s.' + c.strip() for c in _SUB_COLUMNS.split(','))}, "
            "r.version, r.at, r.amount, r.reason FROM mv_refunds r "
            "JOIN mv_subs s ON s.receipt = r.receipt WHERE r.month = ?"
        )
        params: tuple[Any, ...] = (str(month),)
        if customer_id is not None:
            sql += " AND s.customer_id = ?"
            params = (*params, customer_id)
        rows = self.projection.query(sql + " ORDER BY r.at, s.receipt, r.version", params)
        return [(_Sub.from_row(r[:12]), r[12:]) for r in rows]

    def charges(self, month: YearMonth, customer_id: str | None = None) -> list[dict[str, Any]]:
        """The charges of ``month`` (DOMAIN.md §4), of one line or of every line.

        Each is a contract ``charges`` entry plus ``customer_id``, ``kind`` (``charge`` or
        ``refund``), ``service_name`` and ``sources`` (provenance).
        """
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, str, str, str]] = set()
        for sub in self._month_subs(month, customer_id):
            if sub.pricing == "monthly":
                if not charged_in(sub.purchased_at, sub.cancelled_at, month):
                    continue
                if self.policy.monthly_once_per_month:
                    # §4 patterns 4–5: once per (Passport ID, service, month); the earliest
                    # subscription of the month carries the charge.
                    key = (sub.customer_id, sub.passport_id, sub.provider, sub.service)
                    if key in seen:
                        continue
                    seen.add(key)
            elif sub.purchased_month != str(month):
                continue
            sources = [f"{sub.receipt}@1"]
            if sub.cancel_version is not None and sub.cancelled_at is not None:
                sources.append(f"{sub.receipt}@{sub.cancel_version}")
            out.append(self._charge(sub, sub.price, "charge", sources))
        for sub, (version, _at, amount, reason) in self._refunds(month, customer_id):
            entry = self._charge(sub, -int(amount), "refund", [f"{sub.receipt}@{version}"])
            entry["reason"] = reason
            out.append(entry)
        out.sort(
            key=lambda c: (
                c["customer_id"],
                c["provider"],
                c["started_on"],
                c["receipt"],
                c["kind"],
                c["sources"],
            )
        )
        return out

    @staticmethod
    def _charge(sub: _Sub, amount: int, kind: str, sources: list[str]) -> dict[str, Any]:
        return {
            "receipt": sub.receipt,
            "customer_id": sub.customer_id,
            "passport_id": sub.passport_id,
            "provider": sub.provider,
            "service": sub.service,
            "service_name": sub.service_name,
            "pricing": sub.pricing,
            "unit_price": amount,
            "quantity": 1,
            "amount": amount,
            "started_on": sub.started_on,
            "kind": kind,
            "sources": sources,
        }

    # -----------------------------------------------------------------------------------------
    # Lines and billing accounts

    def _line(self, customer_id: str) -> Any:
        rows = self.projection.query(
            "SELECT customer_id, operator, kind, opened_at, predecessor, successor, ended_at "
            "FROM mv_lines WHERE customer_id = ?",
            (customer_id,),
        )
        if not rows:
            raise UnknownLine(f"no access line {customer_id}")
        return rows[0]

    def billing_account(self, customer_id: str, month: YearMonth) -> dict[str, Any]:
        """The billing account in force at the end of ``month`` (Decision of §7)."""
        rows = self.projection.query(
            "SELECT billing FROM mv_billing WHERE customer_id = ? AND at < ? "
            "ORDER BY at DESC, version DESC LIMIT 1",
            (customer_id, utc_text(month.end())),
        )
        if not rows:  # the line opened after the month: its first account
            rows = self.projection.query(
                "SELECT billing FROM mv_billing WHERE customer_id = ? ORDER BY version LIMIT 1",
                (customer_id,),
            )
        account: dict[str, Any] = json.loads(rows[0][0])
        return account

    def issue_date(self, customer_id: str, month: YearMonth) -> date:
        """When month M's bill is issued: the 22nd of M+1 with the phone bill, the 17th of
        M+1 with a "00" customer number; consolidated lines follow the representative (§7)."""
        account = self.billing_account(customer_id, month)
        seen = {customer_id}
        while account["method"] == "consolidated":
            representative = account["representative"]
            if representative in seen:
                break  # a cycle of representatives: fall back to the phone-bill schedule
            seen.add(representative)
            account = self.billing_account(representative, month)
        day = 17 if account["method"] == "customer_number" else 22
        following = month.next()
        return date(following.year, following.month, day)

    def closed_through(self) -> YearMonth | None:
        rows = self.projection.query("SELECT closed_through FROM mv_calendar WHERE id = 1")
        return YearMonth.parse(rows[0][0]) if rows else None

    # -----------------------------------------------------------------------------------------
    # Documents

    def bill(self, customer_id: str, month: YearMonth) -> dict[str, Any]:
        """The bill of one line for one month (status ``issued`` once the month is closed)."""
        self._line(customer_id)
        issued = self.projection.query(
            "SELECT document FROM mv_bills WHERE customer_id = ? AND month = ?",
            (customer_id, str(month)),
        )
        if issued:
            document: dict[str, Any] = json.loads(issued[0][0])
            return document
        closed = self.closed_through()
        status = "issued" if closed is not None and month <= closed else "preview"
        return self.compose_bill(customer_id, month, self.charges(month, customer_id), status)

    def compose_bill(
        self, customer_id: str, month: YearMonth, charges: list[dict[str, Any]], status: str
    ) -> dict[str, Any]:
        providers = self._provider_names()
        totals: dict[str, int] = defaultdict(int)
        for charge in charges:
            totals[charge["provider"]] += charge["amount"]
        rows = [
            {
                "provider": code,
                "provider_name": providers.get(code, code),
                "label": LABEL,
                "amount": amount,
            }
            for code, amount in sorted(totals.items())
        ]
        return {
            "customer_id": customer_id,
            "month": str(month),
            "billing_account": self.billing_account(customer_id, month),
            "issue_date": self.issue_date(customer_id, month).isoformat(),
            "status": status,
            "rows": rows,
            "subtotal": sum(r["amount"] for r in rows),
            "charges": [{k: v for k, v in c.items() if k != "customer_id"} for c in charges],
        }

    def _provider_names(self) -> dict[str, str]:
        return {
            r[0]: r[1] for r in self.projection.query("SELECT provider, name FROM mv_providers")
        }

    def statement(
        self,
        customer_id: str,
        month: YearMonth,
        passport_id: str | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> dict[str, Any]:
        """The usage statement [ご利用明細] (§7): the month's charges, optionally of one ID."""
        if type(page) is not int or page < 1:
            raise InvalidInput(f"page must be a positive integer, got {page!r}")
        if type(per_page) is not int or not 1 <= per_page <= 500:
            raise InvalidInput(f"per_page must be 1–500, got {per_page!r}")
        if passport_id is not None:
            PassportId(passport_id)
        charges = self.bill(customer_id, month)["charges"]
        providers = self._provider_names()
        rows = [
            {
                "receipt": c["receipt"],
                "passport_id": c["passport_id"],
                "provider": c["provider"],
                "provider_name": providers.get(c["provider"], c["provider"]),
                "service_name": c.get("service_name", c["service"]),
                "unit_price": c["unit_price"],
                "quantity": c["quantity"],
                "amount": c["amount"],
                "started_on": c["started_on"],
                "kind": c.get("kind", "charge"),
            }
            for c in charges
            if passport_id is None or c["passport_id"] == passport_id
        ]
        start = (page - 1) * per_page
        document: dict[str, Any] = {
            "customer_id": customer_id,
            "month": str(month),
            "total": len(rows),
            "page": page,
            "per_page": per_page,
            "rows": rows[start : start + per_page],
        }
        if passport_id is not None:
            document["passport_id"] = passport_id
        return document

    def provider_contacts(self, customer_id: str) -> list[dict[str, str]]:
        """Providers the line has bought from, with their contacts [お問合せ先一覧] (§7)."""
        self._line(customer_id)
        rows = self.projection.query(
            "SELECT p.provider, p.name, p.contact FROM mv_providers p WHERE p.provider IN "
            "(SELECT DISTINCT provider FROM mv_subs WHERE customer_id = ?) ORDER BY p.provider",
            (customer_id,),
        )
        return [{"provider": r[0], "name": r[1], "contact": r[2]} for r in rows]

    def provider_totals(self, month: YearMonth) -> list[dict[str, Any]]:
        """Per provider: lines billed and amount, across every line, for ``month``."""
        amounts: dict[str, int] = defaultdict(int)
        lines: dict[str, set[str]] = defaultdict(set)
        for charge in self.charges(month):
            amounts[charge["provider"]] += charge["amount"]
            lines[charge["provider"]].add(charge["customer_id"])
        return [
            {"provider": code, "lines": len(lines[code]), "amount": amounts[code]}
            for code in sorted(amounts)
        ]

    def settlement(self, month: YearMonth) -> list[dict[str, Any]]:
        """Per provider: gross, lines billed, average per line, fee and net (§8).

        ``average_per_line`` is a decimal string with two places, rounded down (money is never
        a float); the fee is computed from the exact average.
        """
        out = []
        for total in self.provider_totals(month):
            gross, lines = total["amount"], total["lines"]
            fee, average = fee_for(self.schedule, month, gross, lines)
            out.append(
                {
                    "provider": total["provider"],
                    "gross": gross,
                    "lines": lines,
                    "average_per_line": _two_places(average),
                    "fee": fee,
                    "net": gross - fee,
                }
            )
        return out

    def continuity(self, customer_id: str | None = None) -> list[dict[str, Any]]:
        """The line-move continuity table (§6): every line change applied (of one line)."""
        if customer_id is not None:
            self._line(customer_id)
        sql = (
            "SELECT customer_id, at, change, new_customer_id, kept, cancelled, deleted "
            "FROM mv_continuity"
        )
        params: tuple[Any, ...] = ()
        if customer_id is not None:
            sql += " WHERE customer_id = ?"
            params = (customer_id,)
        rows = self.projection.query(sql + " ORDER BY at, customer_id, version", params)
        out = []
        for r in rows:
            at = _parse_utc(r[1])
            assert at is not None
            out.append(
                {
                    "customer_id": r[0],
                    "at": at.astimezone(TOKYO).isoformat(),
                    "change": r[2],
                    "new_customer_id": r[3],
                    "kept": bool(r[4]),
                    "cancelled": json.loads(r[5]),
                    "deleted": json.loads(r[6]),
                }
            )
        return out

    def first_charge_month(self) -> YearMonth | None:
        rows = self.projection.query("SELECT MIN(purchased_month) FROM mv_subs")
        return YearMonth.parse(rows[0][0]) if rows and rows[0][0] else None

    def issued_bills(self, month: YearMonth) -> set[str]:
        rows = self.projection.query(
            "SELECT customer_id FROM mv_bills WHERE month = ?", (str(month),)
        )
        return {r[0] for r in rows}


def _two_places(value: Fraction) -> str:
    """``value`` as a decimal string with two places, truncated toward zero (never a float)."""
    cents = abs(value.numerator) * 100 // value.denominator
    sign = "-" if value < 0 and cents else ""
    return f"{sign}{cents // 100}.{cents % 100:02d}"

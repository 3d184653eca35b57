"""The documents of the contract, queried from the views (docs/contract.md, "Documents out").

This module only gathers facts from the view tables; what is charged is decided by
:mod:`matome.charging`, and the documents are composed by :mod:`matome.documents`, so a bill,
the spend check and an audit can never disagree.  Every charge keeps its provenance:
``sources`` names the events it came from as ``<receipt>@<version>`` (the version of the event
in that purchase's own stream — stable on every store).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import attrs

from matome import charging
from matome.documents import (
    AccountEntry,
    Bill,
    BillStatus,
    Charge,
    ChargeKind,
    Contact,
    ContinuityRow,
    LineCharge,
    ProviderTotal,
    SettlementLine,
    Statement,
    account_in_force,
    check_page,
    compose_bill,
    compose_provider_totals,
    compose_settlement,
    compose_settlement_from_totals,
    compose_statement,
    issue_date,
    sort_charges,
)
from matome.errors import UnknownLine
from matome.fees import DEFAULT_SCHEDULE, Fee, FeePeriod, fee_for
from matome.policy import Policy
from matome.projections.runner import Projection
from matome.values import (
    TOKYO,
    BillingAccount,
    ChangeKind,
    CustomerId,
    Operator,
    PassportId,
    Pricing,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
    billing_from_json,
    tokyo_date,
)
from matome.wire import dumps, from_json, to_json

__all__ = ["Documents", "bill_digest"]

_SUB_COLUMNS = (
    "s.receipt, s.customer_id, s.passport_id, s.provider, s.service, s.service_name, "
    "s.pricing, s.price, s.purchased_at, s.purchased_month, s.cancelled_at, s.cancel_version, "
    "s.quantity, l.operator, s.period_ends_at"
)
#: A purchase with its line's operator (settlement is per operator, §8).
_SUBS = "mv_subs s JOIN mv_lines l ON l.customer_id = s.customer_id"
_N_SUB_COLUMNS = 15
#: Keys per ``IN (...)`` query (below every SQL engine's limit on parameters).
_IN_CHUNK = 500


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


@attrs.frozen
class _Sub:
    """A purchase as the views hold it: what the charging rules read (``Chargeable``)."""

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
    quantity: int
    operator: str
    #: When its service period ends (§11): ``cancelled_at`` holds it already for a monthly
    #: subscription not cancelled earlier; kept apart for the documents to show.
    period_ends_at: datetime | None = None

    @property
    def amount(self) -> int:
        return self.price * self.quantity

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> _Sub:
        return cls(
            receipt=row[0],
            customer_id=row[1],
            passport_id=row[2],
            provider=row[3],
            service=row[4],
            service_name=row[5],
            pricing=row[6],
            price=int(row[7]),
            purchased_at=_parse_utc(row[8]),
            purchased_month=row[9],
            cancelled_at=None if row[10] is None else _parse_utc(row[10]),
            cancel_version=row[11],
            quantity=int(row[12]),
            operator=row[13],
            period_ends_at=None if row[14] is None else _parse_utc(row[14]),
        )

    def charge(
        self, unit_price: int, quantity: int, kind: ChargeKind, sources: list[str]
    ) -> LineCharge:
        return LineCharge(
            customer_id=CustomerId(self.customer_id),
            operator=Operator(self.operator),
            charge=Charge(
                receipt=self.receipt,
                passport_id=PassportId(self.passport_id),
                provider=ProviderCode(self.provider),
                service=ServiceCode(self.service),
                service_name=self.service_name,
                pricing=Pricing(self.pricing),
                unit_price=Yen(unit_price),
                quantity=quantity,
                amount=Yen(unit_price * quantity),
                started_on=tokyo_date(self.purchased_at),
                kind=kind,
                sources=tuple(sources),
                ends_on=None if self.period_ends_at is None else tokyo_date(self.period_ends_at),
            ),
        )


def _cancelled_in(cancelled_at: datetime | None, month: YearMonth) -> bool:
    return cancelled_at is not None and YearMonth.of(cancelled_at) == month


def bill_digest(bill: Bill) -> str:
    """SHA-256 of a bill's canonical JSON (sorted keys, no insignificant white space)."""
    return hashlib.sha256(dumps(to_json(bill)).encode()).hexdigest()


class Documents:
    """Queries of the contract over one projection."""

    def __init__(
        self,
        projection: Projection,
        policy: Policy,
        schedule: Sequence[FeePeriod] | Mapping[Operator, Sequence[FeePeriod]] = DEFAULT_SCHEDULE,
    ) -> None:
        self.projection = projection
        self.policy = policy
        #: Fee schedules by operator; East's is the one the sources give, used for West too
        #: unless West has one of its own (§8).
        self.schedules: dict[Operator, tuple[FeePeriod, ...]] = (
            {op: tuple(periods) for op, periods in schedule.items()}
            if isinstance(schedule, Mapping)
            else {Operator.EAST: tuple(schedule)}
        )
        self.schedules.setdefault(Operator.EAST, DEFAULT_SCHEDULE)

    # -----------------------------------------------------------------------------------------
    # Charges

    def _subs(self, where: str, params: tuple[Any, ...]) -> list[_Sub]:
        rows = self.projection.query(
            f"SELECT {_SUB_COLUMNS} FROM {_SUBS} WHERE {where} ORDER BY s.purchased_at, s.receipt",
            params,
        )
        return [_Sub.from_row(r) for r in rows]

    def _month_subs(self, month: YearMonth, customer_id: str | None) -> list[_Sub]:
        # Only narrows the rows read (monthly subscriptions not cancelled before the month and
        # the month's purchases); matome.charging decides which of them are charged.
        m = str(month)
        where = (
            "s.purchased_month <= ? AND ((s.pricing = 'monthly' AND "
            "(s.cancelled_month IS NULL OR s.cancelled_month >= ?)) OR s.purchased_month = ?)"
        )
        params: tuple[Any, ...] = (m, m, m)
        if customer_id is not None:
            where = "s.customer_id = ? AND " + where
            params = (customer_id, *params)
        return self._subs(where, params)

    def _refunds(self, month: YearMonth, customer_id: str | None) -> list[tuple[_Sub, Any]]:
        sql = (
            f"SELECT {_SUB_COLUMNS}, r.version, r.at, r.amount, r.reason FROM mv_refunds r "
            "JOIN mv_subs s ON s.receipt = r.receipt "
            "JOIN mv_lines l ON l.customer_id = s.customer_id WHERE r.month = ?"
        )
        params: tuple[Any, ...] = (str(month),)
        if customer_id is not None:
            sql += " AND s.customer_id = ?"
            params = (*params, customer_id)
        rows = self.projection.query(sql + " ORDER BY r.at, s.receipt, r.version", params)
        return [(_Sub.from_row(r[:_N_SUB_COLUMNS]), r[_N_SUB_COLUMNS:]) for r in rows]

    def charges(self, month: YearMonth, customer_id: str | None = None) -> list[LineCharge]:
        """The charges of ``month`` (rules §4), of one line or of every line, sorted."""
        out: list[LineCharge] = []
        subs = self._month_subs(month, customer_id)
        once = self.policy.monthly_once_per_month
        for sub in charging.charged_purchases(subs, month, once_per_month=once):
            sources = [f"{sub.receipt}@1"]
            if sub.cancel_version is not None and _cancelled_in(sub.cancelled_at, month):
                # The cancellation is a source of the charge of its own month only: earlier
                # months' charges never change, so issued bills keep their sources.
                sources.append(f"{sub.receipt}@{sub.cancel_version}")
            out.append(sub.charge(sub.price, sub.quantity, ChargeKind.CHARGE, sources))
        for sub, (version, _at, amount, reason) in self._refunds(month, customer_id):
            refund = sub.charge(-int(amount), 1, ChargeKind.REFUND, [f"{sub.receipt}@{version}"])
            out.append(attrs.evolve(refund, charge=attrs.evolve(refund.charge, reason=reason)))
        return sort_charges(out)

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

    def billing_history(self, customer_id: CustomerId) -> list[AccountEntry]:
        """The line's billing accounts: (business time, line stream version, account)."""
        rows = self.projection.query(
            "SELECT at, version, billing FROM mv_billing WHERE customer_id = ?",
            (customer_id.value,),
        )
        return [(_parse_utc(at), int(v), billing_from_json(json.loads(b))) for at, v, b in rows]

    def billing_histories(
        self, customer_ids: Sequence[CustomerId]
    ) -> dict[CustomerId, list[AccountEntry]]:
        """:meth:`billing_history` of many lines, read a few hundred lines per query (the
        billing run: one round trip per bill is what a PostgreSQL store cannot afford)."""
        out: dict[CustomerId, list[AccountEntry]] = {cid: [] for cid in customer_ids}
        by_text = {cid.value: cid for cid in out}
        ids = list(by_text)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = self.projection.query(
                "SELECT customer_id, at, version, billing FROM mv_billing "
                f"WHERE customer_id IN ({', '.join('?' * len(chunk))})",
                tuple(chunk),
            )
            for cid, at, v, b in rows:
                out[by_text[cid]].append((_parse_utc(at), int(v), billing_from_json(json.loads(b))))
        return out

    def billing_account(self, customer_id: CustomerId, month: YearMonth) -> BillingAccount:
        """The billing account in force at the end of ``month`` (Decision of §7)."""
        return account_in_force(self.billing_history(customer_id), month)

    def closed_through(self) -> YearMonth | None:
        rows = self.projection.query("SELECT closed_through FROM mv_calendar WHERE id = 1")
        return YearMonth.parse(rows[0][0]) if rows and rows[0][0] else None

    def billed_through(self) -> YearMonth | None:
        """The last month every bill of which is issued (the billing run completed it)."""
        rows = self.projection.query("SELECT billed_through FROM mv_calendar WHERE id = 1")
        return YearMonth.parse(rows[0][0]) if rows and rows[0][0] else None

    def _issued_totals(self, month: YearMonth) -> list[tuple[ProviderCode, Operator, int, int]]:
        """Per provider and operator: amount and lines, from the month's issued bills."""
        rows = self.projection.query(
            "SELECT provider, operator, amount, lines FROM mv_provider_months WHERE month = ?",
            (str(month),),
        )
        return [(ProviderCode(p), Operator(o), int(a), int(n)) for p, o, a, n in rows]

    def _settled_from_bills(self, month: YearMonth) -> bool:
        billed = self.billed_through()
        return billed is not None and month <= billed

    # -----------------------------------------------------------------------------------------
    # Documents

    def bill(self, customer_id: str, month: YearMonth) -> Bill:
        """The bill of one line for one month: ``issued`` once its ``BillIssued`` is recorded,
        else a ``preview``.

        A closed month is not enough: a billing run cut short has closed the month and issued
        only some of its bills, and the others must not read as issued before they are.  A
        line with nothing to bill in a closed month gets no ``BillIssued`` (the run records
        none) and can gain no charge there: its empty bill is final, and reads as issued."""
        self._line(customer_id)
        issued = self.issued_bill(customer_id, month)
        if issued is not None:
            return issued
        charges = [c.charge for c in self.charges(month, customer_id)]
        closed = self.closed_through()
        final = not charges and closed is not None and month <= closed
        status = BillStatus.ISSUED if final else BillStatus.PREVIEW
        return self.compose_bill(CustomerId(customer_id), month, charges, status)

    def issued_bill(self, customer_id: str, month: YearMonth) -> Bill | None:
        """The bill as issued by the billing run, if it was."""
        rows = self.projection.query(
            "SELECT document FROM mv_bills WHERE customer_id = ? AND month = ?",
            (customer_id, str(month)),
        )
        return from_json(json.loads(rows[0][0]), Bill) if rows else None

    def compose_bill(
        self,
        customer_id: CustomerId,
        month: YearMonth,
        charges: Sequence[Charge],
        status: BillStatus,
        *,
        histories: Mapping[CustomerId, Sequence[AccountEntry]] | None = None,
        provider_names: Mapping[ProviderCode, str] | None = None,
    ) -> Bill:
        """The bill of ``charges``; ``histories`` (:meth:`billing_histories`) and
        ``provider_names``, when given, are used instead of reading them (many bills)."""

        def account_of(cid: CustomerId, m: YearMonth) -> BillingAccount:
            if histories is not None and cid in histories:
                return account_in_force(histories[cid], m)
            return self.billing_account(cid, m)

        return compose_bill(
            customer_id=customer_id,
            month=month,
            billing_account=account_of(customer_id, month),
            issue_date=issue_date(customer_id, month, account_of),
            status=status,
            charges=charges,
            provider_names=self.provider_names() if provider_names is None else provider_names,
        )

    def provider_names(self) -> dict[ProviderCode, str]:
        return {
            ProviderCode(r[0]): r[1]
            for r in self.projection.query("SELECT provider, name FROM mv_providers")
        }

    def statement(
        self,
        customer_id: str,
        month: YearMonth,
        passport_id: str | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> Statement:
        """The usage statement [ご利用明細] (§7): the month's charges, optionally of one ID."""
        check_page(page, per_page)
        pid = None if passport_id is None else PassportId(passport_id)
        bill = self.bill(customer_id, month)
        return compose_statement(bill, self.provider_names(), pid, page, per_page)

    def provider_contacts(self, customer_id: str) -> list[Contact]:
        """Providers the line has bought from, with their contacts [お問合せ先一覧] (§7)."""
        self._line(customer_id)
        rows = self.projection.query(
            "SELECT p.provider, p.name, p.contact FROM mv_providers p WHERE p.provider IN "
            "(SELECT DISTINCT provider FROM mv_subs WHERE customer_id = ?) ORDER BY p.provider",
            (customer_id,),
        )
        return [Contact(provider=ProviderCode(r[0]), name=r[1], contact=r[2]) for r in rows]

    def provider_totals(self, month: YearMonth) -> list[ProviderTotal]:
        """Per provider: lines billed and amount, across every line, for ``month``.

        A month whose bills are all issued is read from the totals kept with them, not
        recomputed from every charge of every line.
        """
        if not self._settled_from_bills(month):
            return compose_provider_totals(self.charges(month))
        amounts: dict[ProviderCode, int] = {}
        lines: dict[ProviderCode, int] = {}
        for provider, _, amount, count in self._issued_totals(month):
            amounts[provider] = amounts.get(provider, 0) + amount
            lines[provider] = lines.get(provider, 0) + count
        return [
            ProviderTotal(provider=p, lines=lines[p], amount=Yen(amounts[p]))
            for p in sorted(amounts)
        ]

    def settlement(self, month: YearMonth) -> list[SettlementLine]:
        """Per provider and operator: gross, lines, average per line, fee, tax, net (§8)."""
        flat = {op: self.flat_fee(op, month) for op in Operator}

        def fee_of(operator: Operator, gross: int, lines: int) -> Fee:
            return fee_for(self.schedule_of(operator), month, gross, lines, flat[operator])

        if self._settled_from_bills(month):
            return compose_settlement_from_totals(self._issued_totals(month), fee_of)
        return compose_settlement(self.charges(month), month, fee_of)

    def schedule_of(self, operator: Operator) -> Sequence[FeePeriod]:
        """The fee schedule of ``operator``'s lines: its own if configured, else East's (§8)."""
        return self.schedules.get(operator) or self.schedules[Operator.EAST]

    def flat_fee(self, operator: Operator, month: YearMonth) -> Fraction | None:
        """The 2012 flat fee in force for ``operator`` in ``month`` (``set_fee``): the
        operator's own, else East's — West uses East's schedule unless it has its own (§8)."""
        for op in (operator, Operator.EAST):
            rows = self.projection.query(
                "SELECT flat_fee FROM mv_fees WHERE operator = ? AND effective_from <= ? "
                "ORDER BY effective_from DESC, version DESC LIMIT 1",
                (op.value, str(month)),
            )
            if rows:
                return Fraction(int(rows[0][0]))
        return None

    def continuity(self, customer_id: str | None = None) -> list[ContinuityRow]:
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
        return [
            ContinuityRow(
                customer_id=CustomerId(r[0]),
                at=_parse_utc(r[1]).astimezone(TOKYO),
                change=ChangeKind(r[2]),
                new_customer_id=None if r[3] is None else CustomerId(r[3]),
                kept=bool(r[4]),
                cancelled=tuple(json.loads(r[5])),
                deleted=tuple(PassportId(p) for p in json.loads(r[6])),
            )
            for r in rows
        ]

    def first_charge_month(self) -> YearMonth | None:
        rows = self.projection.query("SELECT MIN(purchased_month) FROM mv_subs")
        return YearMonth.parse(rows[0][0]) if rows and rows[0][0] else None

    def issued_bills(self, month: YearMonth) -> set[str]:
        rows = self.projection.query(
            "SELECT customer_id FROM mv_bills WHERE month = ?", (str(month),)
        )
        return {r[0] for r in rows}

"""The documents of the contract, queried from the views (docs/contract.md, "Documents out").

This module only gathers facts from the view tables; what is charged is decided by
:mod:`matome.charging`, and the documents are composed by :mod:`matome.documents`, so a bill,
the spend check and an audit can never disagree.  Every charge keeps its provenance:
``sources`` names the events it came from as ``<receipt>@<version>`` (the version of the event
in that purchase's own stream — stable on every store).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from matome.documents import (
    AccountEntry,
    Bill,
    BillStatus,
    Charge,
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
)
from matome.errors import UnknownLine
from matome.fees import DEFAULT_SCHEDULE, Fee, FeePeriod, fee_for
from matome.policy import Policy
from matome.projections.bills import Purchase, account_entry, account_of, line_bill, month_charges
from matome.projections.runner import Projection
from matome.projections.views import (
    BILLING,
    CALENDAR,
    CONTINUITY,
    LINES,
    PROVIDER_MONTHS,
    PROVIDERS,
    REFUNDS,
    SUBS,
    CalendarRow,
    LineRow,
    RefundRow,
    parse_utc,
)
from matome.values import (
    TOKYO,
    BillingAccount,
    ChangeKind,
    CustomerId,
    Operator,
    PassportId,
    ProviderCode,
    YearMonth,
    Yen,
)
from matome.wire import bill_digest, from_json

__all__ = ["Documents", "LinesFacts", "bill_digest"]

#: A purchase with its line's operator (settlement is per operator, §8).
_SUB_COLUMNS = f"{SUBS.select_columns('s')}, l.operator"
_SUBS = "mv_subs s JOIN mv_lines l ON l.customer_id = s.customer_id"
_N_SUB = len(SUBS.columns)
#: ``s.purchased_at`` and ``s.receipt`` by position in a select of :data:`_SUB_COLUMNS` (a
#: compound select is ordered by its result columns).
_ORDER_AT = SUBS.column_names.index("purchased_at") + 1
_ORDER_RECEIPT = SUBS.column_names.index("receipt") + 1
#: Keys per ``IN (...)`` query (below every SQL engine's limit on parameters).
_IN_CHUNK = 500


def _purchase(row: Sequence[Any]) -> Purchase:
    return Purchase.of(SUBS.read(row[:_N_SUB]), row[_N_SUB])


class LinesFacts:
    """The facts of a few lines' bills of one month (the billing run reads them a chunk of
    lines at a time: memory bounded by the chunk, not by the month), with the chain hash of
    each event a charge or an account came from, read in the same queries (``hashes``:
    ``<stream>@<version>`` → hash; an event the chain table has no row for is absent)."""

    def __init__(self) -> None:
        self.purchases_by_line: dict[str, list[Purchase]] = {}
        self.refunds_by_line: dict[str, list[tuple[Purchase, RefundRow]]] = {}
        self.histories: dict[CustomerId, list[AccountEntry]] = {}
        self.hashes: dict[str, str] = {}
        #: Each purchase's stream id by receipt, as the views hold it (the billing run names
        #: a charge's source events by stream without deriving each uuid5 again).
        self.streams: dict[str, str] = {}

    def purchases(self, month: YearMonth, customer_id: str | None) -> list[Purchase]:
        """One line's purchases that may be charged in ``month`` (:class:`ChargeFacts`)."""
        if customer_id is None:
            raise ValueError("the facts of a chunk of lines are read line by line")
        return self.purchases_by_line.get(customer_id, [])

    def refunds(
        self, month: YearMonth, customer_id: str | None
    ) -> list[tuple[Purchase, RefundRow]]:
        """One line's refunds recorded in ``month`` (:class:`ChargeFacts`)."""
        if customer_id is None:
            raise ValueError("the facts of a chunk of lines are read line by line")
        return self.refunds_by_line.get(customer_id, [])


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

    def _subs(self, where: str, params: tuple[Any, ...]) -> list[Purchase]:
        rows = self.projection.query(
            f"SELECT {_SUB_COLUMNS} FROM {_SUBS} WHERE {where} ORDER BY s.purchased_at, s.receipt",
            params,
        )
        return [_purchase(r) for r in rows]

    def purchases(self, month: YearMonth, customer_id: str | None) -> list[Purchase]:
        """The purchases that may be charged in ``month`` (:class:`BillFacts`)."""
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

    def refunds(
        self, month: YearMonth, customer_id: str | None
    ) -> list[tuple[Purchase, RefundRow]]:
        """The refunds recorded in ``month``, with their purchases (:class:`BillFacts`)."""
        sql = (
            f"SELECT {_SUB_COLUMNS}, {REFUNDS.select_columns('r')} FROM mv_refunds r "
            "JOIN mv_subs s ON s.receipt = r.receipt "
            "JOIN mv_lines l ON l.customer_id = s.customer_id WHERE r.month = ?"
        )
        params: tuple[Any, ...] = (str(month),)
        if customer_id is not None:
            sql += " AND s.customer_id = ?"
            params = (*params, customer_id)
        rows = self.projection.query(sql + " ORDER BY r.at, s.receipt, r.version", params)
        return [(_purchase(r), REFUNDS.read(r[_N_SUB + 1 :])) for r in rows]

    def charges(self, month: YearMonth, customer_id: str | None = None) -> list[LineCharge]:
        """The charges of ``month`` (rules §4), of one line or of every line, sorted."""
        return month_charges(self, month, customer_id, self.policy)

    # -----------------------------------------------------------------------------------------
    # Lines and billing accounts

    def _line(self, customer_id: str) -> LineRow:
        rows = self.projection.query(
            f"SELECT {LINES.select_columns()} FROM mv_lines WHERE customer_id = ?",
            (customer_id,),
        )
        if not rows:
            raise UnknownLine(f"no access line {customer_id}")
        return LINES.read(rows[0])

    def billing_history(self, customer_id: CustomerId) -> list[AccountEntry]:
        """The line's billing accounts: (business time, line stream version, account)."""
        rows = self.projection.query(
            f"SELECT {BILLING.select_columns()} FROM mv_billing WHERE customer_id = ?",
            (customer_id.value,),
        )
        return [account_entry(BILLING.read(r)) for r in rows]

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
                f"SELECT {BILLING.select_columns()} FROM mv_billing "
                f"WHERE customer_id IN ({', '.join('?' * len(chunk))})",
                tuple(chunk),
            )
            for values in rows:
                row = BILLING.read(values)
                out[by_text[row.customer_id]].append(account_entry(row))
        return out

    def billing_account(self, customer_id: CustomerId, month: YearMonth) -> BillingAccount:
        """The billing account in force at the end of ``month`` (Decision of §7)."""
        return account_in_force(self.billing_history(customer_id), month)

    def closed_through(self) -> YearMonth | None:
        through = self._calendar().closed_through
        return None if through is None else YearMonth.parse(through)

    def billed_through(self) -> YearMonth | None:
        """The last month every bill of which is issued (the billing run completed it)."""
        through = self._calendar().billed_through
        return None if through is None else YearMonth.parse(through)

    def _calendar(self) -> CalendarRow:
        rows = self.projection.query(
            f"SELECT {CALENDAR.select_columns()} FROM mv_calendar WHERE id = 1"
        )
        return CALENDAR.read(rows[0]) if rows else CalendarRow(1, None, None)

    def _issued_totals(self, month: YearMonth) -> list[tuple[ProviderCode, Operator, int, int]]:
        """Per provider and operator: amount and lines, from the month's issued bills."""
        rows = self.projection.query(
            f"SELECT {PROVIDER_MONTHS.select_columns()} FROM mv_provider_months WHERE month = ?",
            (str(month),),
        )
        return [
            (ProviderCode(r.provider), Operator(r.operator), int(r.amount), int(r.lines))
            for r in map(PROVIDER_MONTHS.read, rows)
        ]

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
        return line_bill(self, CustomerId(customer_id), month, self.policy, issued=False)

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

        accounts = account_of(self, customer_id)

        def account(cid: CustomerId, m: YearMonth) -> BillingAccount:
            if histories is not None and cid in histories:
                return account_in_force(histories[cid], m)
            return accounts(cid, m)

        return compose_bill(
            customer_id=customer_id,
            month=month,
            billing_account=account(customer_id, month),
            issue_date=issue_date(customer_id, month, account),
            status=status,
            charges=charges,
            provider_names=self.provider_names() if provider_names is None else provider_names,
        )

    def provider_names(self) -> dict[ProviderCode, str]:
        return {
            ProviderCode(r.provider): r.name
            for r in map(
                PROVIDERS.read,
                self.projection.query(f"SELECT {PROVIDERS.select_columns()} FROM mv_providers"),
            )
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
            f"SELECT {PROVIDERS.select_columns('p')} FROM mv_providers p WHERE p.provider IN "
            "(SELECT DISTINCT provider FROM mv_subs WHERE customer_id = ?) ORDER BY p.provider",
            (customer_id,),
        )
        return [
            Contact(provider=ProviderCode(r.provider), name=r.name, contact=r.contact)
            for r in map(PROVIDERS.read, rows)
        ]

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
        sql = f"SELECT {CONTINUITY.select_columns()} FROM mv_continuity"
        params: tuple[Any, ...] = ()
        if customer_id is not None:
            sql += " WHERE customer_id = ?"
            params = (customer_id,)
        rows = self.projection.query(sql + " ORDER BY at, customer_id, version", params)
        return [
            ContinuityRow(
                customer_id=CustomerId(r.customer_id),
                at=parse_utc(r.at).astimezone(TOKYO),
                change=ChangeKind(r.change),
                new_customer_id=None
                if r.new_customer_id is None
                else CustomerId(r.new_customer_id),
                kept=bool(r.kept),
                cancelled=tuple(json.loads(r.cancelled)),
                deleted=tuple(PassportId(p) for p in json.loads(r.deleted)),
            )
            for r in map(CONTINUITY.read, rows)
        ]

    def line_ids(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` customer IDs of lines after ``after``, in order (the billing run
        walks the lines a chunk at a time)."""
        rows = self.projection.query(
            "SELECT customer_id FROM mv_lines WHERE customer_id > ? ORDER BY customer_id LIMIT ?",
            (after, limit),
        )
        return [str(r[0]) for r in rows]

    def lines_facts(
        self,
        month: YearMonth,
        customer_ids: Sequence[str],
        *,
        chain_table: str | None,
        span: tuple[str, str] | None = None,
    ) -> LinesFacts:
        """The facts of the bills of ``customer_ids`` for ``month`` (:class:`LinesFacts`):
        their purchases that may be charged, their refunds of the month and their billing
        accounts, each with the chain hash of its event when ``chain_table`` (the store's
        table of chain hashes, in the views' database) is given.

        ``span``: the first and last customer ID (in the views' order, :meth:`line_ids`) of a
        run of lines that holds ``customer_ids``: the rows are then read by that range of the
        indexes — a range scan whatever the store's size, where a long ``IN (...)`` list may
        be planned as a scan of the whole table (PostgreSQL does) — and those of other lines
        left out."""
        out = LinesFacts()
        ids = list(dict.fromkeys(customer_ids))
        wanted = set(ids)
        if span is not None:
            return self._lines_facts(out, month, [span], wanted, chain_table, ranged=True)
        parts = [tuple(ids[i : i + _IN_CHUNK]) for i in range(0, len(ids), _IN_CHUNK)]
        return self._lines_facts(out, month, parts, wanted, chain_table, ranged=False)

    def _lines_facts(
        self,
        out: LinesFacts,
        month: YearMonth,
        parts: Sequence[Sequence[str]],
        wanted: set[str],
        chain_table: str | None,
        *,
        ranged: bool,
    ) -> LinesFacts:
        chained = chain_table is not None
        key = (
            "CAST({} AS uuid)"
            if self.projection.store.dialect == "postgres"
            else ("replace({}, '-', '')")
        )

        def join(alias: str, stream: str, version: str) -> str:
            if not chained:
                return ""
            return (
                f" LEFT JOIN {chain_table} {alias} ON {alias}.originator_id = "
                f"{key.format(stream)} AND {alias}.originator_version = {version}"
            )

        hashes = ", c1.hash, c2.hash" if chained else ""
        refund_hash = ", c1.hash" if chained else ""
        billing_hash = ", l.stream, c1.hash" if chained else ""
        m = str(month)
        n_refund = len(REFUNDS.columns)
        for chunk in parts:
            # By range, the joined lines by the same range too: otherwise PostgreSQL hashes
            # every line of the store for each chunk.
            lines_too = " AND l.customer_id BETWEEN ? AND ?" if ranged else ""
            twice = (*chunk, *chunk) if ranged else tuple(chunk)

            def among(column: str) -> str:
                if ranged:
                    return f"{column} BETWEEN ? AND ?"
                return f"{column} IN ({', '.join('?' * len(chunk))})"  # noqa: B023

            # Two selects, each a seek of its own index (mv_subs_month, mv_subs_open), so that
            # only the purchases that may be charged are read — not every purchase of the
            # lines' history, which grew the cost of a bill with the months of history: the
            # month's purchases, and the monthly subscriptions bought before it and not
            # cancelled before it.  Sorted as one.
            select = (
                f"SELECT {_SUB_COLUMNS}{hashes} FROM {_SUBS}"
                f"{join('c1', 's.stream', '1')}{join('c2', 's.stream', 's.cancel_version')} "
            )
            rows = self.projection.query(
                f"{select}WHERE s.purchased_month = ? AND {among('s.customer_id')}{lines_too} "
                f"UNION ALL {select}WHERE s.pricing = 'monthly' AND "
                f"{among('s.customer_id')}{lines_too} AND (s.cancelled_month IS NULL OR "
                "s.cancelled_month >= ?) AND s.purchased_month < ? "
                f"ORDER BY {_ORDER_AT}, {_ORDER_RECEIPT}",
                (m, *twice, *twice, m, m),
            )
            for r in rows:
                p = _purchase(r)
                if p.row.customer_id not in wanted:
                    continue
                out.purchases_by_line.setdefault(p.row.customer_id, []).append(p)
                out.streams[p.row.receipt] = p.row.stream
                if chained:
                    stream = p.row.stream
                    if r[_N_SUB + 1] is not None:
                        out.hashes[f"{stream}@1"] = r[_N_SUB + 1]
                    if r[_N_SUB + 2] is not None:
                        out.hashes[f"{stream}@{p.row.cancel_version}"] = r[_N_SUB + 2]
            rows = self.projection.query(
                f"SELECT {_SUB_COLUMNS}, {REFUNDS.select_columns('r')}{refund_hash} "
                "FROM mv_refunds r JOIN mv_subs s ON s.receipt = r.receipt "
                f"JOIN mv_lines l ON l.customer_id = s.customer_id"
                f"{join('c1', 's.stream', 'r.version')} "
                f"WHERE r.month = ? AND {among('s.customer_id')}{lines_too} "
                "ORDER BY r.at, s.receipt, r.version",
                (m, *twice),
            )
            for r in rows:
                p = _purchase(r)
                if p.row.customer_id not in wanted:
                    continue
                refund = REFUNDS.read(r[_N_SUB + 1 : _N_SUB + 1 + n_refund])
                out.refunds_by_line.setdefault(p.row.customer_id, []).append((p, refund))
                out.streams[p.row.receipt] = p.row.stream
                found = r[_N_SUB + 1 + n_refund] if chained else None
                if found is not None:
                    out.hashes[f"{p.row.stream}@{refund.version}"] = found
            lines = " LEFT JOIN mv_lines l ON l.customer_id = b.customer_id" if chained else ""
            params = tuple(chunk)
            if chained and ranged:
                lines += " AND l.customer_id BETWEEN ? AND ?"
                params = twice
            rows = self.projection.query(
                f"SELECT {BILLING.select_columns('b')}{billing_hash} FROM mv_billing b{lines}"
                f"{join('c1', 'l.stream', 'b.version')} WHERE {among('b.customer_id')}",
                params,
            )
            n_billing = len(BILLING.columns)
            for r in rows:
                row = BILLING.read(r[:n_billing])
                if row.customer_id not in wanted:
                    continue
                out.histories.setdefault(CustomerId(row.customer_id), []).append(account_entry(row))
                if chained and r[n_billing + 1] is not None:
                    out.hashes[f"{r[n_billing]}@{row.version}"] = r[n_billing + 1]
        return out

    def first_charge_month(self) -> YearMonth | None:
        rows = self.projection.query("SELECT MIN(purchased_month) FROM mv_subs")
        return YearMonth.parse(rows[0][0]) if rows and rows[0][0] else None

    def issued_bills(
        self,
        month: YearMonth,
        customer_ids: Sequence[str] | None = None,
        *,
        span: tuple[str, str] | None = None,
    ) -> set[str]:
        """The lines whose bill of ``month`` is issued (of ``customer_ids`` only, if given;
        ``span``: their first and last, read by that range as :meth:`lines_facts` does)."""
        if span is not None:
            rows = self.projection.query(
                "SELECT customer_id FROM mv_bills WHERE customer_id BETWEEN ? AND ? AND month = ?",
                (*span, str(month)),
            )
            wanted = None if customer_ids is None else set(customer_ids)
            return {r[0] for r in rows if wanted is None or r[0] in wanted}
        if customer_ids is None:
            rows = self.projection.query(
                "SELECT customer_id FROM mv_bills WHERE month = ?", (str(month),)
            )
            return {r[0] for r in rows}
        out: set[str] = set()
        ids = list(customer_ids)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = self.projection.query(
                "SELECT customer_id FROM mv_bills WHERE month = ? "
                f"AND customer_id IN ({', '.join('?' * len(chunk))})",
                (str(month), *chunk),
            )
            out |= {r[0] for r in rows}
        return out

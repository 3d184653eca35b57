"""The documents of the interchange contract (docs/contract.md, "Documents out") as typed values.

Each document is a frozen attrs class built by a pure ``compose_*`` function from facts the
caller gathered (from the views, or from the events of one line).  Only the one cattrs
converter (:mod:`matome.wire`) turns them into the contract's JSON (:func:`matome.wire.to_json`),
so a document's shape is written once: its class, in the private module this one re-exports
(:mod:`matome._document_types`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from fractions import Fraction

from matome._document_types import (
    LABEL,
    Audit,
    AuditEvent,
    Bill,
    BillRow,
    BillStatus,
    Break,
    BreakKind,
    Charge,
    ChargeKind,
    Contact,
    ContinuityRow,
    Difference,
    Explanation,
    LaterEvent,
    LineCharge,
    LineMark,
    MonthMark,
    PassportStatus,
    ProviderTotal,
    SealCheck,
    SettlementLine,
    SettlementStatus,
    Statement,
    StatementRow,
    Timeline,
    TimelineRow,
    UsageStatus,
    Verification,
)
from matome.errors import FeeNotConfigured, InvalidInput
from matome.fees import Fee
from matome.values import (
    BillingAccount,
    Consolidated,
    CustomerId,
    CustomerNumber,
    Operator,
    PassportId,
    ProviderCode,
    YearMonth,
    Yen,
)

__all__ = [
    "LABEL",
    "Audit",
    "AuditEvent",
    "Bill",
    "BillRow",
    "BillStatus",
    "Break",
    "BreakKind",
    "Charge",
    "ChargeKind",
    "Contact",
    "ContinuityRow",
    "Difference",
    "Explanation",
    "LaterEvent",
    "LineCharge",
    "LineMark",
    "MonthMark",
    "PassportStatus",
    "ProviderTotal",
    "SealCheck",
    "SettlementLine",
    "SettlementStatus",
    "Statement",
    "StatementRow",
    "Timeline",
    "TimelineRow",
    "UsageStatus",
    "Verification",
    "account_in_force",
    "bill_status",
    "check_page",
    "compose_bill",
    "compose_provider_totals",
    "compose_settlement",
    "compose_settlement_from_totals",
    "compose_statement",
    "compose_usage_status",
    "entry_in_force",
    "issue_date",
    "sort_charges",
]


# ---------------------------------------------------------------------------------------------
# Composition


def sort_charges(charges: Iterable[LineCharge]) -> list[LineCharge]:
    """The order charges are listed in: by line, provider, start date, receipt, kind, sources."""
    return sorted(
        charges,
        key=lambda c: (
            c.customer_id.value,
            c.charge.provider.value,
            c.charge.started_on,
            c.charge.receipt,
            c.charge.kind.value,
            c.charge.sources,
        ),
    )


AccountEntry = tuple[datetime, int, BillingAccount]


def entry_in_force(history: Sequence[AccountEntry], month: YearMonth) -> AccountEntry:
    """The entry of the line's account history in force at the end of ``month``.

    ``history`` is the line's accounts as ``(business time, stream version, account)``; a line
    opened after the month is billed to its first account.
    """
    if not history:
        raise ValueError("a line always has a billing account")
    end = month.end()
    before = [h for h in history if h[0] < end]
    if not before:
        return min(history, key=lambda h: h[1])
    return max(before, key=lambda h: (h[0], h[1]))


def account_in_force(history: Sequence[AccountEntry], month: YearMonth) -> BillingAccount:
    """The billing account in force at the end of ``month`` (Decision of §7)."""
    return entry_in_force(history, month)[2]


def issue_date(
    customer_id: CustomerId,
    month: YearMonth,
    account_of: Callable[[CustomerId, YearMonth], BillingAccount],
) -> date:
    """When month M's bill is issued (§7): the 22nd of M+1 with the phone bill, the 17th of
    M+1 with a "00" customer number; a consolidated line follows its representative (a cycle
    of representatives falls back to the phone-bill schedule)."""
    account = account_of(customer_id, month)
    seen = {customer_id}
    while isinstance(account, Consolidated):
        representative = account.representative
        if representative in seen:
            break
        seen.add(representative)
        account = account_of(representative, month)
    day = 17 if isinstance(account, CustomerNumber) else 22
    following = month.next()
    return date(following.year, following.month, day)


def bill_status(
    month: YearMonth,
    closed_through: YearMonth | None,
    *,
    issued: bool = False,
    charged: bool = False,
) -> BillStatus:
    """A bill's status (§7): ``issued`` once its ``BillIssued`` is recorded; a line with
    nothing ``charged`` in a closed month gets no ``BillIssued`` (the billing run records
    none) and can gain no charge there, so its empty bill is final and reads as issued; any
    other bill is a ``preview``.  A closed month alone is not enough: a billing run cut short
    has closed the month and issued only some of its bills.

    With neither ``issued`` nor ``charged`` it says whether the month is final at all (a
    settlement is a preview until its month is closed)."""
    if issued:
        return BillStatus.ISSUED
    closed = closed_through is not None and month <= closed_through
    return BillStatus.ISSUED if closed and not charged else BillStatus.PREVIEW


def compose_bill(
    *,
    customer_id: CustomerId,
    month: YearMonth,
    billing_account: BillingAccount,
    issue_date: date,
    status: BillStatus,
    charges: Sequence[Charge],
    provider_names: Mapping[ProviderCode, str],
) -> Bill:
    """One row per provider with the sum of its charges, rows sorted by provider code, and the
    subtotal the sum of the rows (§7; the guide's A 525 / B 600 example)."""
    totals: dict[ProviderCode, int] = defaultdict(int)
    for charge in charges:
        totals[charge.provider] += charge.amount.amount
    rows = tuple(
        BillRow(
            provider=code,
            provider_name=provider_names.get(code, code.value),
            label=LABEL,
            amount=Yen(amount),
        )
        for code, amount in sorted(totals.items())
    )
    return Bill(
        customer_id=customer_id,
        month=month,
        billing_account=billing_account,
        issue_date=issue_date,
        status=status,
        rows=rows,
        subtotal=Yen(sum(r.amount.amount for r in rows)),
        charges=tuple(charges),
    )


def check_page(page: int, per_page: int) -> None:
    """A statement page is a positive number; a page holds 1–500 rows."""
    if type(page) is not int or page < 1:
        raise InvalidInput(f"page must be a positive integer, got {page!r}")
    if type(per_page) is not int or not 1 <= per_page <= 500:
        raise InvalidInput(f"per_page must be 1–500, got {per_page!r}")


def compose_statement(
    bill: Bill,
    provider_names: Mapping[ProviderCode, str],
    passport_id: PassportId | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Statement:
    """The usage statement [ご利用明細] (§7): the bill's charges, optionally of one ID, paged."""
    check_page(page, per_page)
    rows = [
        StatementRow(
            receipt=c.receipt,
            passport_id=c.passport_id,
            provider=c.provider,
            provider_name=provider_names.get(c.provider, c.provider.value),
            service_name=c.service_name,
            unit_price=c.unit_price,
            quantity=c.quantity,
            amount=c.amount,
            started_on=c.started_on,
            kind=c.kind,
            ends_on=c.ends_on,
        )
        for c in bill.charges
        if passport_id is None or c.passport_id == passport_id
    ]
    start = (page - 1) * per_page
    return Statement(
        customer_id=bill.customer_id,
        month=bill.month,
        total=len(rows),
        page=page,
        per_page=per_page,
        rows=tuple(rows[start : start + per_page]),
        passport_id=passport_id,
    )


def compose_provider_totals(charges: Iterable[LineCharge]) -> list[ProviderTotal]:
    """Per provider: the lines billed for it and the amount, across every line."""
    amounts: dict[ProviderCode, int] = defaultdict(int)
    lines: dict[ProviderCode, set[CustomerId]] = defaultdict(set)
    for c in charges:
        amounts[c.charge.provider] += c.charge.amount.amount
        lines[c.charge.provider].add(c.customer_id)
    return [
        ProviderTotal(provider=code, lines=len(lines[code]), amount=Yen(amounts[code]))
        for code in sorted(amounts)
    ]


def compose_settlement(
    charges: Iterable[LineCharge],
    month: YearMonth,
    fee_of: Callable[[Operator, int, int], Fee],
) -> list[SettlementLine]:
    """Per provider and operator (East and West lines settle apart): gross, lines billed,
    average per line, fee, tax and net (§8), sorted by provider then operator.

    ``fee_of(operator, gross, lines)`` is the fee schedule in force for ``month``
    (:func:`matome.fees.fee_for`); it raises ``FeeNotConfigured`` for a tier without an amount.
    ``average_per_line`` is a decimal string with two places, rounded down (never a float).
    """
    amounts: dict[tuple[ProviderCode, Operator], int] = defaultdict(int)
    lines: dict[tuple[ProviderCode, Operator], set[CustomerId]] = defaultdict(set)
    for c in charges:
        key = (c.charge.provider, c.operator)
        amounts[key] += c.charge.amount.amount
        lines[key].add(c.customer_id)
    return compose_settlement_from_totals(
        [(p, o, amounts[p, o], len(lines[p, o])) for p, o in amounts], fee_of
    )


def compose_settlement_from_totals(
    totals: Iterable[tuple[ProviderCode, Operator, int, int]],
    fee_of: Callable[[Operator, int, int], Fee],
) -> list[SettlementLine]:
    """The settlement from each (provider, operator)'s gross and lines billed (§8)."""
    out = []
    for provider, operator, gross, count in sorted(totals, key=lambda t: (t[0].value, t[1].value)):
        average = Fraction(gross, count) if count else Fraction(0)
        try:
            fee = fee_of(operator, gross, count)
        except FeeNotConfigured:
            out.append(
                SettlementLine(
                    provider=provider,
                    operator=operator,
                    gross=Yen(gross),
                    lines=count,
                    average_per_line=_two_places(average),
                    fee=None,
                    tax=None,
                    net=None,
                    status=SettlementStatus.FEE_NOT_CONFIGURED,
                )
            )
            continue
        out.append(
            SettlementLine(
                provider=provider,
                operator=operator,
                gross=Yen(gross),
                lines=count,
                average_per_line=_two_places(fee.average),
                fee=Yen(fee.fee),
                tax=Yen(fee.tax),
                net=Yen(gross - fee.fee - fee.tax),
                status=SettlementStatus.SETTLED,
            )
        )
    return out


def _two_places(value: Fraction) -> str:
    """``value`` as a decimal string with two places, truncated toward zero (never a float)."""
    cents = abs(value.numerator) * 100 // value.denominator
    sign = "-" if value < 0 and cents else ""
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def compose_usage_status(
    customer_id: CustomerId,
    regulated: bool,
    passports: Mapping[PassportId, tuple[Yen, bool, bool]],
) -> UsageStatus:
    """The line's Passport IDs as the service page lists them (rules §2).

    ``passports`` maps each current ID to (limit, locked, line authentication).  Each is listed
    with its status — ``regulated`` [規制中] while the line is regulated, else ``locked`` after
    ten wrong passwords (§10), else ``in_use`` [利用中] — its limit and its line-authentication
    setting; deleted IDs are gone from the list, and a line with no IDs shows ``not_used``
    [未利用].  (Registration takes effect at once in matome, so ``registering`` [登録中] is
    never shown.)
    """
    listed = tuple(
        PassportStatus(
            passport_id=pid,
            status="regulated" if regulated else "locked" if locked else "in_use",
            limit=limit,
            line_auth=line_auth,
        )
        for pid, (limit, locked, line_auth) in sorted(passports.items())
    )
    line_status = "not_used" if not listed else "regulated" if regulated else "in_use"
    return UsageStatus(customer_id=customer_id, status=line_status, passports=listed)

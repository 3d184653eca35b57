"""The reference model's state: plain records, its constants and time helpers, and the
collector of refusals (see :mod:`matome.testing.model`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from matome.errors import ERROR_PRECEDENCE
from matome.testing._model_secrets import HashedSecret
from matome.values import (
    BillingAccount,
    ChangeKind,
    Goods,
    LineKind,
    Operator,
    YearMonth,
)

#: Namespace of derived receipt numbers (docs/design.md, "Receipt numbers are derived").
RECEIPT_NAMESPACE = uuid.UUID("5f6c1a8e-3c0b-4f55-9a57-6d6174f6d65e")

_RANK: dict[str, int] = {
    code: rank for rank, codes in enumerate(ERROR_PRECEDENCE) for code in codes
}

#: §1 line kinds: NTT West offers two, NTT East all five.
_WEST_KINDS = {LineKind.HIKARI_NEXT, LineKind.HIKARI_LIGHT}
#: §6: a menu change goes between these two (an item change never does).
_MENU_KINDS = {LineKind.HIKARI_NEXT, LineKind.HIKARI_LIGHT}
#: §9: the kinds of line on which line authentication exists.
_LINE_AUTH_KINDS = {LineKind.HIKARI_NEXT, LineKind.HIKARI_LIGHT, LineKind.HIKARI_LIGHT_PLUS}
#: §6 / design: changes that end the line record for good.
_TERMINAL = {ChangeKind.CANCELLATION, ChangeKind.AREA_MOVE, ChangeKind.COLLABO_CONVERSION}


#: Business months and days are Tokyo's (§4): the model converts times itself, so that it does
#: not share the engine's conversion.
_JST = timezone(timedelta(hours=9))


def _tokyo_day(at: datetime) -> date:
    return at.astimezone(_JST).date()


def _month(at: datetime) -> YearMonth:
    day = _tokyo_day(at)
    return YearMonth(day.year, day.month)


def _first_instant(month: YearMonth) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=_JST)


def receipt_number(passport_id: str, n: int) -> str:
    """The receipt number of the ``n``-th accepted purchase (from 1) of a Passport ID."""
    return "R" + uuid.uuid5(RECEIPT_NAMESPACE, f"receipt:{passport_id}#{n}").hex[:20].upper()


@dataclass(frozen=True)
class ModelResult:
    """The model's answer to one command: accepted (``code`` None) or refused with ``code``."""

    ok: bool
    code: str | None
    data: dict[str, Any]
    message: str = ""


# ---------------------------------------------------------------------------------------------
# State: plain records


@dataclass
class Line:
    """An access line (§1) and the collect-on-behalf settings hung off it."""

    customer_id: str
    operator: Operator
    kind: LineKind
    access_key: str | HashedSecret  # a migration's hash (contract 3)
    cap: int
    billing: BillingAccount
    last_at: datetime
    regulated: bool = False
    ended: bool = False
    passports: list[str] = field(default_factory=list)  # IDs not deleted


@dataclass
class Passport:
    """A Passport ID (§2); kept after deletion so that its ID is never reused (design.md)."""

    passport_id: str
    customer_id: str
    password: str | HashedSecret  # a migration's hash (contract 3)
    limit: int
    line_auth: bool
    last_at: datetime
    deleted: bool = False
    deleted_at: datetime | None = None
    failures: int = 0  # consecutive wrong passwords (§10)
    purchases: int = 0
    passwords_set: int = 0  # new passwords since registration (a key forgets the old ones)
    erased: bool = False  # its personal data were erased


@dataclass
class Sub:
    """One purchase [申込] of one service by one Passport ID, with what happened to it since."""

    seq: int
    receipt: str
    passport_id: str
    customer_id: str
    provider: str
    service: str
    monthly: bool
    price: int  # the unit price
    quantity: int
    bought_at: datetime
    last_at: datetime
    cancelled_at: datetime | None = None
    refunds: list[tuple[datetime, int]] = field(default_factory=list)
    #: docs/rules.md §11: when the service period the listing set ends (None: no period).
    period_end: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        """A monthly subscription not cancelled and whose service period has not ended by
        ``at`` (only those can be cancelled, §4, §11)."""
        if not self.monthly or self.cancelled_at is not None:
            return False
        return self.period_end is None or at < self.period_end

    def ended_at(self) -> datetime | None:
        """§11: a monthly subscription ends at its cancellation, or at its period's end if
        that comes first (the period end is a cancellation on the 1st)."""
        ends = [t for t in (self.cancelled_at, self.period_end) if t is not None]
        return min(ends) if self.monthly and ends else None

    @property
    def amount(self) -> int:
        """What one charge of this purchase is: unit price × quantity (§4)."""
        return self.price * self.quantity

    def first_month(self) -> YearMonth:
        return _month(self.bought_at)

    def last_month(self) -> YearMonth | None:
        """The last month a monthly subscription is charged; None while it is active (§4).

        Charged through the month of cancellation, except when cancelled on the 1st (Tokyo) of a
        month: then that month is not charged, unless the purchase was made that same day.
        """
        ended = self.ended_at()
        if ended is None:
            return None
        day = _tokyo_day(ended)
        month = _month(ended)
        if day.day == 1 and day != _tokyo_day(self.bought_at):
            return month.previous()
        return month

    def charged_in(self, month: YearMonth) -> bool:
        """Whether this purchase (before the once-per-month rule) is charged in ``month``."""
        if not self.monthly:
            return self.first_month() == month
        last = self.last_month()
        return self.first_month() <= month and (last is None or month <= last)


@dataclass
class Service:
    name: str
    monthly: bool
    price: int
    listed_at: datetime
    period_months: int | None = None  # §11, monthly-flat: billing months from the purchase
    period_days: int | None = None  # §11, per-purchase: days of access (no charge effect)


@dataclass
class Provider:
    goods: Goods
    registered_at: datetime
    services: dict[str, Service] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Collecting refusals


class _Checks:
    """The refusals that apply to one command; the contract reports the first by precedence."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.found: list[tuple[str, str]] = []
        #: The Passport ID whose password was wrong: counted only if that is the answer (§10).
        self.wrong_password: Passport | None = None

    def add(self, code: str, why: str) -> None:
        self.found.append((code, why))

    def check(self, ok: bool, code: str, why: str) -> None:
        if not ok:
            self.add(code, why)

    def in_time(self, last_at: datetime, what: str) -> None:
        """design.md: business time is chronological per line, Passport ID and subscription."""
        self.check(
            last_at <= self.at, "invalid_input", f"{what} has a later event; time order broken"
        )

    def first(self) -> tuple[str, str] | None:
        if not self.found:
            return None
        return min(self.found, key=lambda f: _RANK.get(f[0], len(ERROR_PRECEDENCE)))


#: What a handler answers when all checks pass: a function that applies the command.
Commit = Callable[[], dict[str, Any]]


def _period_end(bought_at: datetime, service: Service) -> datetime | None:
    """docs/rules.md §11: ``period_months: N`` ends at 00:00 Tokyo on the 1st of the month after
    the N-th billing month (the purchase month is the first); ``period_days: D``, D days after
    the purchase."""
    if service.period_days is not None:
        return bought_at + timedelta(days=service.period_days)
    if service.period_months is None:
        return None
    day = _tokyo_day(bought_at)
    months = day.year * 12 + day.month - 1 + service.period_months
    return datetime(months // 12, months % 12 + 1, 1, tzinfo=_JST)


def _charge(s: Sub, amount: int, kind: str) -> dict[str, Any]:
    return {
        "receipt": s.receipt,
        "passport_id": s.passport_id,
        "provider": s.provider,
        "service": s.service,
        "unit_price": s.price,
        "quantity": s.quantity,
        "amount": amount,
        "kind": kind,
    }

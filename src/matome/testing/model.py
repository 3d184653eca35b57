"""A reference model of matome's business rules (contract 2, and contract 3 when its policy's
``contract`` says so), written apart from the engine.

Contract 3 (docs/rules.md §11) adds consent to the terms on ``register_passport``
(``consent_required``) and the shape of a new password (8–12 letters and digits, not digits
only, not the current one — compared only for the holder of the right access key):
``invalid_input``.

The model answers two questions for a history of commands, and nothing else:

* is each command accepted or refused, and with which error code (docs/contract.md, "Results" and
  its order of precedence), and
* what is each line charged in each month (rules §4 and §7, the bill's rows and subtotal).

It is deliberately plain: a few dataclasses in dicts, no events, no projections, no storage,
secrets kept in clear text.  Charges are never stored; a bill is recomputed from the
purchases, cancellations and refunds each time it is asked for.  Where the rules are silent the
model follows docs/design.md.

A refusal is found by *collecting* every refusal that applies to a command and reporting the
first in the contract's order (:data:`matome.errors.ERROR_PRECEDENCE`), so the model does not
depend on the order in which the checks happen to be written.

Credentials (rules §2 "Who may do what", §9, §10):

* The line holder's commands (``register_passport``, ``change_passport_limit``,
  ``change_passport_details``, ``delete_passport``, ``set_notification``) carry the access key
  of the line (for an ID: of the ID's line).  A wrong one is ``wrong_access_key``; it is not
  counted and binds no idempotency key.  ``register_passport`` with ``via_provider`` needs no
  key on an NTT East line from the cut-off (the provider registers on the customer's
  behalf); elsewhere a missing key is ``wrong_access_key``.  A key given is checked.  A line
  that continues under a new customer ID keeps its key.
* The Passport ID holder's commands (``purchase``, ``cancel``) carry the ID's password (for a
  cancel: of the ID that bought the receipt).  A locked ID is ``locked_out`` and its password
  is not checked; a wrong password is ``wrong_password`` and is counted — only when it is the
  refusal reported.  ``lockout_after`` wrong passwords in a row lock the ID; an accepted
  purchase or cancel, a new password (``change_passport_details``) or an operator's
  ``reset_password`` clear the count (and so the lock).
* Line authentication (§9): an ID with it on, on a Hikari Next / Light / Light Plus line, buys
  only with ``presented_line`` equal to its line's customer ID (``line_auth_failed``, ranked
  before the password and counting nothing).  The notification setting plays no part; on a
  line of another kind (after an item change) no line check is made.  Switching it on for an
  ID on another kind of line is ``invalid_input``.
* Idempotency: a key is bound by an accepted command and by a refusal that counted a wrong
  password (the first result is then that refusal).  Under a used key (contract 3, "no
  password oracle") a command that presents a credential has it checked first, against the
  ID's or line's current one, before anything else: line authentication, ``locked_out``, a
  wrong password (counted — except the very body that counted it, answered again), a wrong
  access key.  Then the same body (every field equal, secrets by value, ``at`` as an
  instant; a password credential only while the ID's password has not changed since) answers
  the first result — unless that was a refusal, which no longer holds — and another body is
  ``idempotency_conflict``.  A command without a credential (or naming no ID or line at
  all) gets the first result for the same body, else ``idempotency_conflict`` as one more
  refusal ranked with the others (contract 2).  Once an ID's personal data are erased, the
  personal fields of a body naming it (e-mail, applicant) compare only as "given or not".

Readings the model takes where neither document spells the detail out:

* Time order (design.md): a line, a Passport ID (also a deleted one) and a subscription each
  remember the business time of the latest thing that happened to it; a command dated before
  that, on anything it decides against, is ``invalid_input``.  A purchase decides against its ID
  and the ID's line; the line holder's commands on an ID against the ID and its line (they read
  the line's access key) — the line of a deleted ID too; a cancel against the subscription and
  its ID; a refund against the subscription; ``reset_password`` and ``erase_personal_data``
  against the ID; a cancel-all (regulation, deletion, a line change that ends the service)
  against every ID concerned and their active subscriptions.
  Refused commands and no-ops (regulating a regulated line, lifting an unregulated one) leave
  no time behind, except a counted wrong password.
* Refunds (§4): refunds of one purchase add up to at most what was charged for it so far —
  a per-purchase item its unit price × quantity; a monthly subscription its price for each
  month from its purchase month through the refund's month (and not after its last charged
  month) in which it carries the charge (a same-month re-purchase under the once-per-month
  policy does not carry its first month).
* ``set_fee`` is refused with ``month_closed`` when ``effective_from`` is a closed month;
  otherwise accepted (the model does not settle).  ``erase_personal_data`` is accepted for
  any ID ever registered, also a deleted one (the model keeps no personal data).
* A purchase may carry the client's own reference (``ref``, unique: ``duplicate``), by which
  a cancel or refund may name it (``purchase_ref``) instead of its receipt.
* Providers and services exist from their business time on; a consolidated-billing
  representative is checked as currently recorded.
* :meth:`ReferenceModel.months` runs from the month of the earliest business time of any
  command given to :meth:`~ReferenceModel.apply` (accepted or not) through the latest.

The model must not import the engine or its internals (aggregates, charging, projections,
events, wire).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import attrs

from matome import commands as cmd
from matome.errors import ERROR_PRECEDENCE, UnknownLine
from matome.policy import DEFAULT_POLICY, Policy
from matome.values import (
    AccessKey,
    BillingAccount,
    ChangeKind,
    Consolidated,
    CustomerId,
    Goods,
    LiftChannel,
    LineKind,
    Operator,
    Password,
    Pricing,
    YearMonth,
)

__all__ = ["ModelResult", "ReferenceModel", "receipt_number"]

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
    access_key: str
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
    password: str
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


class ReferenceModel:
    """Replays commands one at a time; answers results and bills (see the module docstring)."""

    def __init__(self, policy: Policy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self._lines: dict[str, Line] = {}
        self._passports: dict[str, Passport] = {}
        self._subs: dict[str, Sub] = {}
        self._providers: dict[str, Provider] = {}
        #: A used key: the body, its first result, and — for a password credential — how
        #: many new passwords the ID had then.
        self._keys: dict[str, tuple[cmd.Command[Any], ModelResult, int | None]] = {}
        self._refs: dict[str, str] = {}  # a client's purchase reference -> its receipt
        self._closed: YearMonth | None = None
        self._first: YearMonth | None = None
        self._last: YearMonth | None = None

    # -----------------------------------------------------------------------------------------
    # Queries

    def lines(self) -> list[str]:
        """Every customer ID ever opened (also continuations and ended lines), sorted."""
        return sorted(self._lines)

    def months(self) -> list[YearMonth]:
        """The months from the first command's business time through the latest seen."""
        if self._first is None or self._last is None:
            return []
        out: list[YearMonth] = []
        month = self._first
        while month <= self._last:
            out.append(month)
            month = month.next()
        return out

    def closed_through(self) -> YearMonth | None:
        """The latest closed month (closing a month closes all months before it, design.md)."""
        return self._closed

    def failures(self, passport_id: str) -> int:
        """The consecutive wrong passwords of a Passport ID (0 for an unknown one)."""
        p = self._passports.get(passport_id)
        return 0 if p is None else p.failures

    def locked(self, passport_id: str) -> bool:
        """Whether a Passport ID is locked out (§10)."""
        return self.failures(passport_id) >= self.policy.lockout_after

    def bill(self, customer_id: str, month: YearMonth) -> dict[str, Any]:
        """The bill of one line for one month (§7, docs/contract.md "Bill of one line").

        One row per provider with any charge that month, amount = sum of its charges; rows
        sorted by provider code; subtotal = sum of rows.  Every line ever opened has bills,
        also after its service ended.
        """
        if customer_id not in self._lines:
            raise UnknownLine(f"no access line {customer_id}")
        subs = [s for s in self._subs.values() if s.customer_id == customer_id]
        charges = self._charges(subs, month, refunds=True)
        rows: dict[str, int] = {}
        for charge in charges:
            rows[charge["provider"]] = rows.get(charge["provider"], 0) + charge["amount"]
        return {
            "customer_id": customer_id,
            "month": str(month),
            "rows": [{"provider": p, "amount": a} for p, a in sorted(rows.items())],
            "subtotal": sum(rows.values()),
            "charges": charges,
        }

    def _charges(
        self, subs: Iterable[Sub], month: YearMonth, *, refunds: bool
    ) -> list[dict[str, Any]]:
        """§4: what ``subs`` charge in ``month`` (refunds negative, in the month recorded).

        A monthly service is charged at most once per (Passport ID, service, month) when the
        policy says so (patterns 4 and 5); the earliest purchase carries the charge.
        """
        out: list[dict[str, Any]] = []
        carried: set[tuple[str, str, str]] = set()
        for s in sorted(subs, key=lambda s: s.seq):
            if s.charged_in(month):
                once = (s.passport_id, s.provider, s.service)
                if not (s.monthly and self.policy.monthly_once_per_month and once in carried):
                    carried.add(once)
                    out.append(_charge(s, s.amount, "charge"))
            if refunds:
                out.extend(
                    _charge(s, -amount, "refund") for at, amount in s.refunds if _month(at) == month
                )
        return out

    def _spend(self, passport_id: str, month: YearMonth) -> int:
        """§3: what the ID is charged in ``month``; refunds do not give limit back."""
        subs = [s for s in self._subs.values() if s.passport_id == passport_id]
        return sum(c["amount"] for c in self._charges(subs, month, refunds=False))

    def _charged_so_far(self, s: Sub, month: YearMonth) -> int:
        """§4: what ``s`` has been charged from its purchase month through ``month``."""
        if not s.monthly:
            return s.amount
        same_id = [x for x in self._subs.values() if x.passport_id == s.passport_id]
        last = s.last_month()
        end = month if last is None else min(month, last)
        total = 0
        m = s.first_month()
        while m <= end:
            charges = self._charges(same_id, m, refunds=False)
            total += sum(c["amount"] for c in charges if c["receipt"] == s.receipt)
            m = m.next()
        return total

    # -----------------------------------------------------------------------------------------
    # Commands

    def apply(self, command: cmd.Command[Any]) -> ModelResult:
        """Decide one (already validated) command and apply it if accepted."""
        month = _month(command.at)
        self._first = month if self._first is None else min(self._first, month)
        self._last = month if self._last is None else max(self._last, month)

        checks = _Checks(command.at)
        if command.key is not None and command.key in self._keys:
            again = self._under_key(command, checks)
            if again is not None:
                return again
        # §7 / design.md: issue_bills is exempt from month_closed.
        if (
            not isinstance(command, cmd.IssueBills)
            and self._closed is not None
            and month <= self._closed
        ):
            checks.add("month_closed", f"{month} is closed")

        commit = self._decide(command, checks)
        refusal = checks.first()
        if refusal is not None:
            code, why = refusal
            refused = ModelResult(False, code, {}, why)
            if code == "wrong_password" and checks.wrong_password is not None:
                # §10: the one refusal that leaves something behind, and binds its key.
                self._count_wrong_password(checks.wrong_password, command.at)
                if command.key is not None and command.key not in self._keys:
                    self._keys[command.key] = (command, refused, self._passwords_set(command))
            return refused
        assert commit is not None, "a handler passed every check without a commit"
        result = ModelResult(True, None, commit())
        if command.key is not None:
            self._keys[command.key] = (command, result, self._passwords_set(command))
        return result

    def _count_wrong_password(self, passport: Passport, at: datetime) -> None:
        """§10 / design.md: ``lockout_after`` wrong passwords in a row lock the ID.  A wrong
        password does not move the ID's business time (else one wrong password dated far
        ahead would freeze the ID)."""
        passport.failures += 1

    # Idempotency keys (contract 3: no password oracle) ------------------------------------------

    def _password_holder(self, c: cmd.Command[Any]) -> Passport | None:
        """The ID whose password ``c`` presents (for a cancel: the ID that bought it)."""
        if isinstance(c, cmd.Cancel):
            receipt = c.receipt if c.receipt is not None else self._refs.get(c.purchase_ref or "")
            s = None if receipt is None else self._subs.get(receipt)
            return None if s is None else self._passports.get(s.passport_id)
        return self._passports.get(c.passport_id.value)  # type: ignore[attr-defined]  # a purchase

    def _passwords_set(self, c: cmd.Command[Any]) -> int | None:
        if c.CREDENTIAL != "password":
            return None
        p = self._password_holder(c)
        return None if p is None else p.passwords_set

    def _same_body(
        self, first: cmd.Command[Any], c: cmd.Command[Any], passwords_set: int | None
    ) -> bool:
        if type(first) is not type(c):
            return False
        if passwords_set is not None:
            p = self._password_holder(c)
            if p is None or p.passwords_set != passwords_set:
                return False  # the key's hash of the password went with it
        pid = getattr(c, "passport_id", None)
        named = None if pid is None else self._passports.get(pid.value)
        erased = named is not None and named.erased
        for f in (a.name for a in attrs.fields(type(c)) if a.name != "key"):
            mine, theirs = getattr(first, f), getattr(c, f)
            if erased and f in c.PERSONAL:
                if (mine is None) != (theirs is None):
                    return False
            elif mine != theirs:
                return False
        return True

    def _under_key(self, c: cmd.Command[Any], k: _Checks) -> ModelResult | None:
        """A command under a used key: its credential first, then the key's answer; ``None``
        when another body is one more refusal among the others (no credential checked)."""
        assert c.key is not None
        first, result, passwords_set = self._keys[c.key]
        conflict = ModelResult(False, "idempotency_conflict", {}, f"key {c.key!r} is used")
        secret = None if c.CREDENTIAL is None else getattr(c, c.CREDENTIAL)
        opened: bool | None = None
        if secret is not None and c.CREDENTIAL == "password":
            p = self._password_holder(c)
            if p is not None:
                line = self._lines[p.customer_id]
                if (
                    isinstance(c, cmd.Purchase)
                    and p.line_auth
                    and line.kind in _LINE_AUTH_KINDS
                    and (c.presented_line is None or c.presented_line.value != line.customer_id)
                ):
                    return ModelResult(False, "line_auth_failed", {}, "line authentication")
                if p.failures >= self.policy.lockout_after:
                    return ModelResult(False, "locked_out", {}, f"{p.passport_id} is locked")
                opened = secret.reveal() == p.password
                if not opened:
                    if result.code == "wrong_password" and self._same_body(first, c, passwords_set):
                        return result  # the body that counted it: not counted twice
                    self._count_wrong_password(p, c.at)
                    return ModelResult(False, "wrong_password", {}, f"wrong password for {p}")
        elif secret is not None:
            holder = self._key_holder(c)
            if holder is not None:
                opened = secret.reveal() == holder.access_key
                if not opened:
                    return ModelResult(False, "wrong_access_key", {}, "wrong access key")
        if opened:
            if not result.ok or not self._same_body(first, c, passwords_set):
                return conflict  # a refusal bound by a secret that now opens holds no more
            return result
        if self._same_body(first, c, passwords_set) and secret is None:
            return result
        k.add("idempotency_conflict", f"key {c.key!r} was used for another body")
        return None

    def _key_holder(self, c: cmd.Command[Any]) -> Line | None:
        """The line whose access key ``c`` presents (for an ID: the ID's line)."""
        if isinstance(c, cmd.RegisterPassport | cmd.SetNotification):
            return self._lines.get(c.customer_id.value)
        p = self._passports.get(c.passport_id.value)  # type: ignore[attr-defined]  # an ID command
        return None if p is None else self._lines.get(p.customer_id)

    def _decide(self, c: cmd.Command[Any], k: _Checks) -> Commit | None:
        match c:
            case cmd.OpenLine():
                return self._open_line(c, k)
            case cmd.ChangeLineLimit():
                return self._change_line_limit(c, k)
            case cmd.ChangeBilling():
                return self._change_billing(c, k)
            case cmd.ChangeLine():
                return self._change_line(c, k)
            case cmd.RegulateLine():
                return self._regulate(c, k)
            case cmd.LiftRegulation():
                return self._lift(c, k)
            case cmd.SetNotification():
                return self._set_notification(c, k)
            case cmd.RegisterProvider():
                return self._register_provider(c, k)
            case cmd.ListService():
                return self._list_service(c, k)
            case cmd.RegisterPassport():
                return self._register_passport(c, k)
            case cmd.ChangePassportLimit():
                return self._change_passport_limit(c, k)
            case cmd.ChangePassportDetails():
                return self._change_passport_details(c, k)
            case cmd.DeletePassport():
                return self._delete_passport(c, k)
            case cmd.ResetPassword():
                return self._reset_password(c, k)
            case cmd.ErasePersonalData():
                return self._erase_personal_data(c, k)
            case cmd.Purchase():
                return self._purchase(c, k)
            case cmd.Cancel():
                return self._cancel(c, k)
            case cmd.Refund():
                return self._refund(c, k)
            case cmd.SetFee():
                return self._set_fee(c, k)
            case cmd.IssueBills():
                return self._issue_bills(c, k)
        raise TypeError(f"the model does not know {type(c).__name__}")

    # Lookups that add the contract's unknown_* refusals ---------------------------------------

    def _line(self, customer_id: CustomerId, k: _Checks) -> Line | None:
        """The line, if it exists and its service has not ended for good (else unknown_line)."""
        line = self._lines.get(customer_id.value)
        if line is not None:
            k.in_time(line.last_at, f"line {customer_id}")
        if line is None or line.ended:
            k.add("unknown_line", f"no access line {customer_id}")
            return None
        return line

    def _passport(self, passport_id: str, k: _Checks) -> Passport | None:
        """The Passport ID if not deleted (else unknown_passport); time order counts either way."""
        p = self._passports.get(passport_id)
        if p is not None:
            k.in_time(p.last_at, f"Passport ID {passport_id}")
        if p is None or p.deleted:
            k.add("unknown_passport", f"no Passport ID {passport_id}")
            return None
        return p

    def _passport_and_line(
        self, passport_id: str, k: _Checks
    ) -> tuple[Passport | None, Line | None]:
        """The Passport ID (see :meth:`_passport`) and its line.  A command on an ID decides
        against the ID's line too — also when the ID was deleted (time order; its refusal is
        unknown_passport then)."""
        p = self._passport(passport_id, k)
        known = self._passports.get(passport_id)
        line = None if known is None else self._line(CustomerId(known.customer_id), k)
        return p, None if p is None else line

    def _provider(self, code: str, k: _Checks) -> Provider | None:
        """A provider registered at or before the command's business time."""
        p = self._providers.get(code)
        if p is None or p.registered_at > k.at:
            k.add("unknown_provider", f"no provider {code}")
            return None
        return p

    def _service(
        self, provider: str, service: str, k: _Checks
    ) -> tuple[Provider | None, Service | None]:
        """The provider and its service, both as of the command's business time."""
        p = self._provider(provider, k)
        s = None if p is None else p.services.get(service)
        if p is not None and (s is None or s.listed_at > k.at):
            k.add("unknown_service", f"{provider} lists no {service}")
            return p, None
        return p, s

    def _check_billing(self, billing: BillingAccount, k: _Checks) -> None:
        """design.md: a consolidated line's representative exists and is not consolidated.

        (A line naming itself is refused when the command is built, as invalid_input.)
        """
        if not isinstance(billing, Consolidated):
            return
        rep_id = billing.representative.value
        rep = self._lines.get(rep_id)
        if rep is None or rep.ended:
            k.add("unknown_line", f"no representative line {rep_id}")
        elif isinstance(rep.billing, Consolidated):
            k.add("invalid_input", f"representative {rep_id} is consolidated itself")

    # Credentials (§2, §9, §10) ------------------------------------------------------------------

    def _access_key(self, line: Line, given: AccessKey | None, k: _Checks) -> None:
        """The line holder's credential: the line's access key (a missing one is not checked;
        only ``register_passport`` with ``via_provider`` may leave it out)."""
        if given is not None and given.reveal() != line.access_key:
            k.add("wrong_access_key", f"wrong access key for line {line.customer_id}")

    def _password(self, p: Passport, given: Password, k: _Checks) -> None:
        """The Passport ID holder's credential; a locked ID's password is not even checked."""
        if p.failures >= self.policy.lockout_after:
            k.add("locked_out", f"{p.passport_id} is locked after too many wrong passwords")
        elif given.reveal() != p.password:
            k.add("wrong_password", f"wrong password for {p.passport_id}")
            k.wrong_password = p

    def _new_password(self, given: Password | None, current: str | None, k: _Checks) -> None:
        """docs/rules.md §10/§11, contract 3: a new password is 8–12 letters and digits, not
        digits only, not the current one."""
        if given is None or self.policy.contract < 3:
            return
        new = given.reveal()
        k.check(8 <= len(new) <= 12, "invalid_input", "a new password is 8–12 characters")
        k.check(not new.isdigit(), "invalid_input", "a new password is not digits only")
        k.check(new != current, "invalid_input", "a new password is not the current one")

    def _line_auth_allowed(self, line: Line, on: bool | None, k: _Checks) -> None:
        """§9: line authentication exists on Hikari Next / Light / Light Plus lines only."""
        if on and line.kind not in _LINE_AUTH_KINDS:
            k.add("invalid_input", f"no line authentication on a {line.kind.value} line")

    def _holdings(self, passport: Passport, k: _Checks, at: datetime) -> list[Sub]:
        """The active monthly subscriptions of an ID, for a cancel-all.

        A cancel-all decides against the ID and each of those subscriptions: none of them may
        have a later event (design.md, time order).
        """
        k.in_time(passport.last_at, f"Passport ID {passport.passport_id}")
        subs = [s for s in self._subs.values() if s.passport_id == passport.passport_id]
        active = sorted((s for s in subs if s.active_at(at)), key=lambda s: s.receipt)
        for s in active:
            k.in_time(s.last_at, f"receipt {s.receipt}")
        return active

    def _cancel_subs(self, passport: Passport, subs: list[Sub], at: datetime) -> list[str]:
        for s in subs:
            s.cancelled_at = at
            s.last_at = at
        if subs:
            passport.last_at = at
        return [s.receipt for s in subs]

    # Lines (§1, §3, §5, §6, §9) ---------------------------------------------------------------

    def _open_line(self, c: cmd.OpenLine, k: _Checks) -> Commit | None:
        cid = c.customer_id.value
        if c.operator is Operator.WEST and not cid.startswith("CAF"):
            k.add("invalid_input", "NTT West customer IDs are CAF + 10 digits")
        if c.operator is Operator.WEST and c.kind not in _WEST_KINDS:
            k.add("invalid_input", f"NTT West does not offer {c.kind.value}")
        old = self._lines.get(cid)
        if old is not None:
            k.in_time(old.last_at, f"line {cid}")
            k.add("duplicate", f"line {cid} exists")
        self._check_billing(c.billing, k)

        def commit() -> dict[str, Any]:
            self._lines[cid] = Line(
                cid,
                c.operator,
                c.kind,
                c.access_key.reveal(),
                c.line_limit.amount,
                c.billing,
                c.at,
            )
            return {"customer_id": cid}

        return commit

    def _limit_sum(self, line: Line, without: str | None = None) -> int:
        return sum(self._passports[p].limit for p in line.passports if p != without)

    def _held_of_cap(self, line: Line, at: datetime, k: _Checks) -> dict[str, int]:
        """§3 (design.md "Usage limits"): what each ID holds of the line's cap in the month of
        ``at`` — a current ID its limit, or its spend that month if more; an ID deleted from
        the line that month its spend.  Each is decided against (time order)."""
        month = _month(at)
        held: dict[str, int] = {}
        for p in self._passports.values():
            current = p.passport_id in line.passports
            gone_this_month = (
                p.customer_id == line.customer_id
                and p.deleted_at is not None
                and _month(p.deleted_at) == month
            )
            if not current and not gone_this_month:
                continue
            k.in_time(p.last_at, f"Passport ID {p.passport_id}")
            spent = self._spend(p.passport_id, month)
            held[p.passport_id] = max(p.limit, spent) if current else spent
        return held

    @staticmethod
    def _within_cap(
        held: dict[str, int], changed: str | None, share: int, cap: int, k: _Checks
    ) -> None:
        """A change may not take the shares of the cap above it — unless it does not raise
        them (the cap may have been lowered below the month's spend)."""
        total = sum(v for pid, v in held.items() if pid != changed) + share
        k.check(
            total <= cap or total <= sum(held.values()),
            "limit_sum_exceeded",
            f"the IDs would hold {total} of the line's cap {cap} this month",
        )

    def _change_line_limit(self, c: cmd.ChangeLineLimit, k: _Checks) -> Commit | None:
        line = self._line(c.customer_id, k)
        if line is None:
            return None
        k.check(
            self._limit_sum(line) <= c.line_limit.amount,
            "limit_sum_exceeded",
            "the IDs' limits add up to more than the new cap",
        )

        def commit() -> dict[str, Any]:
            line.cap = c.line_limit.amount
            line.last_at = c.at
            return {}

        return commit

    def _change_billing(self, c: cmd.ChangeBilling, k: _Checks) -> Commit | None:
        line = self._line(c.customer_id, k)
        self._check_billing(c.billing, k)
        if line is None:
            return None

        def commit() -> dict[str, Any]:
            line.billing = c.billing
            line.last_at = c.at
            return {}

        return commit

    def _change_line(self, c: cmd.ChangeLine, k: _Checks) -> Commit | None:
        """§6 continuity table, as decided in design.md "Line changes"."""
        new_cid = c.new_customer_id.value if c.new_customer_id is not None else None
        if new_cid is not None and c.change in _TERMINAL | {ChangeKind.RENAME}:
            k.add("invalid_input", f"a {c.change.value} takes no new customer ID")
        if c.new_kind is not None and c.change not in (
            ChangeKind.MENU_CHANGE,
            ChangeKind.ITEM_CHANGE,
        ):
            k.add("invalid_input", f"a {c.change.value} takes no new kind")
        if c.change is ChangeKind.MENU_CHANGE and c.new_kind is None:
            k.add("invalid_input", "a menu change needs the new kind")
        line = self._line(c.customer_id, k)
        renumbered = new_cid is not None and new_cid != c.customer_id.value
        if renumbered and new_cid in self._lines:
            k.add("duplicate", f"line {new_cid} exists")
        if line is None:
            return None
        if line.operator is Operator.WEST and new_cid is not None and not new_cid.startswith("CAF"):
            k.add("invalid_input", "NTT West customer IDs are CAF + 10 digits")
        if c.new_kind is not None and line.operator is Operator.WEST:
            k.check(c.new_kind in _WEST_KINDS, "invalid_input", "NTT West lacks that kind")
        if c.change is ChangeKind.MENU_CHANGE and not (
            line.kind in _MENU_KINDS and c.new_kind in _MENU_KINDS and c.new_kind != line.kind
        ):
            k.add("invalid_input", "a menu change goes between Hikari Next and Hikari Light")
        if (
            c.change is ChangeKind.ITEM_CHANGE
            and c.new_kind is not None
            and {line.kind, c.new_kind} == _MENU_KINDS
        ):
            k.add("invalid_input", "Hikari Next ⇄ Hikari Light is a menu change, not an item one")

        kept = c.change is ChangeKind.RENAME or (
            c.change in (ChangeKind.RELOCATION, ChangeKind.ITEM_CHANGE) and not renumbered
        )
        ends_record = c.change in _TERMINAL or renumbered
        affected: list[tuple[Passport, list[Sub]]] = []
        if not kept:
            for pid in sorted(line.passports):
                p = self._passports[pid]
                affected.append((p, self._holdings(p, k, c.at)))

        def commit() -> dict[str, Any]:
            cancelled: list[str] = []
            deleted: list[str] = []
            for p, subs in affected:
                cancelled += self._cancel_subs(p, subs, c.at)
                p.deleted = True
                p.deleted_at = p.last_at = c.at
                deleted.append(p.passport_id)
            line.last_at = c.at
            if not kept:
                line.passports = []
                line.regulated = False  # the customer starts afresh (design.md)
            if c.new_kind is not None:
                line.kind = c.new_kind
            if ends_record:
                line.ended = True
            if renumbered:
                assert new_cid is not None
                # The line carries on, with its access key, under its new customer ID.
                self._lines[new_cid] = Line(
                    new_cid, line.operator, line.kind, line.access_key, line.cap, line.billing, c.at
                )
            return {
                "kept": kept,
                "new_customer_id": new_cid if renumbered else None,
                "cancelled": sorted(cancelled),
                "deleted": deleted,
            }

        return commit

    def _regulate(self, c: cmd.RegulateLine, k: _Checks) -> Commit | None:
        """§5: regulation cancels every subscription of every ID on the line at its instant."""
        line = self._line(c.customer_id, k)
        if line is None:
            return None
        if line.regulated:
            return lambda: {"regulated": True, "cancelled": []}  # accepted, changes nothing
        affected = [
            (self._passports[p], self._holdings(self._passports[p], k, c.at))
            for p in line.passports
        ]

        def commit() -> dict[str, Any]:
            cancelled: list[str] = []
            for p, subs in affected:
                cancelled += self._cancel_subs(p, subs, c.at)
            line.regulated = True
            line.last_at = c.at
            return {"regulated": True, "cancelled": sorted(cancelled)}

        return commit

    def _lift(self, c: cmd.LiftRegulation, k: _Checks) -> Commit | None:
        """§5: lifting needs a written application; it revives nothing."""
        line = self._line(c.customer_id, k)
        k.check(c.channel is not LiftChannel.ONLINE, "not_allowed_online", "lift in writing")
        if line is None:
            return None

        def commit() -> dict[str, Any]:
            if line.regulated:
                line.regulated = False
                line.last_at = c.at
            return {"regulated": False}

        return commit

    def _set_notification(self, c: cmd.SetNotification, k: _Checks) -> Commit | None:
        """§9: per provider, with the customer's explicit consent and the line's access key.

        The setting only decides what a provider learns; no rule of the model reads it.
        """
        line = self._line(c.customer_id, k)
        self._provider(c.provider.value, k)
        k.check(c.consent, "consent_required", "notification settings need consent")
        if line is None:
            return None
        self._access_key(line, c.access_key, k)

        def commit() -> dict[str, Any]:
            line.last_at = c.at
            return {}

        return commit

    # Catalog ----------------------------------------------------------------------------------

    def _register_provider(self, c: cmd.RegisterProvider, k: _Checks) -> Commit | None:
        code = c.provider.value
        k.check(code not in self._providers, "duplicate", f"provider {code} exists")

        def commit() -> dict[str, Any]:
            self._providers[code] = Provider(c.goods, c.at)
            return {}

        return commit

    def _list_service(self, c: cmd.ListService, k: _Checks) -> Commit | None:
        """design.md: services are listed once; a price change is a new service code."""
        p = self._provider(c.provider.value, k)
        if p is None:
            return None
        code = c.service.value
        k.check(code not in p.services, "duplicate", f"{c.provider} lists {code} already")

        def commit() -> dict[str, Any]:
            monthly = c.pricing is Pricing.MONTHLY
            p.services[code] = Service(
                c.name, monthly, c.price.amount, c.at, c.period_months, c.period_days
            )
            return {}

        return commit

    # Passport IDs (§2, §3, §10) -----------------------------------------------------------------

    def _register_passport(self, c: cmd.RegisterPassport, k: _Checks) -> Commit | None:
        pid = c.passport_id.value
        line = self._line(c.customer_id, k)
        if c.via_provider is not None:
            self._provider(c.via_provider.value, k)
        old = self._passports.get(pid)
        if old is not None:  # IDs are never reused, even after deletion (design.md)
            k.in_time(old.last_at, f"Passport ID {pid}")
            k.add("duplicate", f"Passport ID {pid} exists or existed")
        limit = c.limit.amount
        k.check(
            limit <= self.policy.registration_max_limit.amount,
            "registration_limit_exceeded",
            "the limit at registration is at most 5,000 yen",
        )
        if self.policy.contract >= 3:
            # docs/rules.md §11: no consent to the terms, no Passport ID (seed 000).
            k.check(c.terms_consent is True, "consent_required", "no consent to the terms")
        self._new_password(c.password, None, k)
        if line is None:
            return None
        on_behalf = (
            c.via_provider is not None
            and line.operator is Operator.EAST
            and c.at >= self.policy.registration_cutoff
        )
        if c.access_key is None and not on_behalf:
            # design.md: only an NTT East provider, from the cut-off, registers without it.
            k.add("wrong_access_key", f"registering on {line.customer_id} needs its access key")
        self._access_key(line, c.access_key, k)
        self._line_auth_allowed(line, c.line_auth, k)
        k.check(not line.regulated, "line_regulated", "no new ID on a regulated line")
        by_provider_east = c.via_provider is not None and line.operator is Operator.EAST
        k.check(
            c.at < self.policy.registration_cutoff or by_provider_east,
            "registration_closed",
            "self-service registration ended on 2024-12-01",
        )
        k.check(
            len(line.passports) < self.policy.max_passports,
            "too_many_passports",
            "a line holds at most 5 IDs",
        )
        self._within_cap(self._held_of_cap(line, c.at, k), None, limit, line.cap, k)

        def commit() -> dict[str, Any]:
            self._passports[pid] = Passport(
                pid, line.customer_id, c.password.reveal(), limit, c.line_auth, c.at
            )
            line.passports.append(pid)
            line.last_at = c.at
            return {"passport_id": pid, "status": "in_use"}

        return commit

    def _change_passport_limit(self, c: cmd.ChangePassportLimit, k: _Checks) -> Commit | None:
        """§3: any limit, as long as the sum stays within the cap (design.md: no 5,000 max)."""
        p, line = self._passport_and_line(c.passport_id.value, k)
        if p is None or line is None:
            return None
        self._access_key(line, c.access_key, k)
        share = max(c.limit.amount, self._spend(p.passport_id, _month(c.at)))
        self._within_cap(self._held_of_cap(line, c.at, k), p.passport_id, share, line.cap, k)

        def commit() -> dict[str, Any]:
            p.limit = c.limit.amount
            p.last_at = line.last_at = c.at
            return {}

        return commit

    def _change_passport_details(self, c: cmd.ChangePassportDetails, k: _Checks) -> Commit | None:
        """§2: view-only from the cut-off; a new password unlocks a locked ID (§10)."""
        p, line = self._passport_and_line(c.passport_id.value, k)
        k.check(
            c.at < self.policy.registration_cutoff,
            "registration_closed",
            "registration details are view-only from 2024-12-01",
        )
        if p is None or line is None:
            return None
        self._access_key(line, c.access_key, k)
        self._line_auth_allowed(line, c.line_auth, k)
        # The current password is compared only for the holder of the right access key.
        right_key = c.access_key.reveal() == line.access_key
        self._new_password(c.password, p.password if right_key else None, k)

        def commit() -> dict[str, Any]:
            if c.password is not None:
                p.password = c.password.reveal()
                p.passwords_set += 1
                p.failures = 0
            if c.line_auth is not None:
                p.line_auth = c.line_auth
            p.last_at = c.at
            return {}

        return commit

    def _delete_passport(self, c: cmd.DeletePassport, k: _Checks) -> Commit | None:
        """§2: deleting an ID cancels its monthly subscriptions at the deletion instant."""
        p, line = self._passport_and_line(c.passport_id.value, k)
        if p is None or line is None:
            return None
        self._access_key(line, c.access_key, k)
        subs = self._holdings(p, k, c.at)

        def commit() -> dict[str, Any]:
            cancelled = self._cancel_subs(p, subs, c.at)
            p.deleted = True
            p.deleted_at = p.last_at = line.last_at = c.at
            line.passports.remove(p.passport_id)
            return {"cancelled": sorted(cancelled)}

        return commit

    def _reset_password(self, c: cmd.ResetPassword, k: _Checks) -> Commit | None:
        """§10: the operator's recovery (after the cut-off too): a new password, no lock."""
        p = self._passport(c.passport_id.value, k)
        if p is None:
            return None
        self._new_password(c.password, p.password, k)

        def commit() -> dict[str, Any]:
            p.password = c.password.reveal()
            p.passwords_set += 1
            p.failures = 0
            p.last_at = c.at
            return {}

        return commit

    def _erase_personal_data(self, c: cmd.ErasePersonalData, k: _Checks) -> Commit | None:
        """Erasure of the applicant's personal data on request — also of a deleted ID (its
        history stays); the model keeps no personal data, so only the answer matters."""
        p = self._passports.get(c.passport_id.value)
        if p is None:
            k.add("unknown_passport", f"no Passport ID {c.passport_id}")
            return None
        k.in_time(p.last_at, f"Passport ID {p.passport_id}")

        def commit() -> dict[str, Any]:
            p.last_at = c.at
            p.erased = True
            return {}

        return commit

    # Purchases, cancellations, refunds (§3, §4, §9, §10) -------------------------------------

    def _purchase(self, c: cmd.Purchase, k: _Checks) -> Commit | None:
        if c.ref is not None and c.ref in self._refs:
            k.add("duplicate", f"reference {c.ref!r} names a purchase already")
        p, line = self._passport_and_line(c.passport_id.value, k)
        provider_code, service_code = c.provider.value, c.service.value
        provider, service = self._service(provider_code, service_code, k)
        if p is None or line is None:
            return None
        if p.line_auth and line.kind in _LINE_AUTH_KINDS:
            k.check(
                c.presented_line is not None and c.presented_line.value == line.customer_id,
                "line_auth_failed",
                "line authentication: the purchase must come over the owning line",
            )
        self._password(p, c.password, k)
        if service is not None and service.monthly:
            k.check(c.quantity == 1, "invalid_input", "a monthly service is bought once")
            k.check(
                not any(
                    s.active_at(c.at) and (s.provider, s.service) == (provider_code, service_code)
                    for s in self._subs.values()
                    if s.passport_id == p.passport_id
                ),
                "duplicate",
                "the ID holds this monthly service already",
            )
        k.check(not line.regulated, "line_regulated", "no purchase on a regulated line")
        if provider is not None and provider.goods is Goods.PHYSICAL:
            k.check(
                line.operator is Operator.WEST or c.at >= self.policy.physical_goods_from,
                "goods_not_offered",
                "physical goods: NTT East lines from 2012-06-05 only",
            )
        if service is None:
            return None

        month = _month(c.at)
        spend = self._spend(p.passport_id, month)
        already = any(
            s.passport_id == p.passport_id
            and (s.provider, s.service) == (provider_code, service_code)
            and s.monthly
            and s.charged_in(month)
            for s in self._subs.values()
        )
        # Patterns 4 and 5: re-buying a monthly service already charged this month adds nothing.
        free = service.monthly and already and self.policy.monthly_once_per_month
        adds = 0 if free else service.price * c.quantity
        k.check(spend + adds <= p.limit, "limit_exceeded", f"spent {spend}, adds {adds}")

        def commit() -> dict[str, Any]:
            p.purchases += 1
            p.failures = 0
            p.last_at = c.at
            receipt = receipt_number(p.passport_id, p.purchases)
            if c.ref is not None:
                self._refs[c.ref] = receipt
            self._subs[receipt] = Sub(
                seq=len(self._subs),
                receipt=receipt,
                passport_id=p.passport_id,
                customer_id=line.customer_id,
                provider=provider_code,
                service=service_code,
                monthly=service.monthly,
                price=service.price,
                quantity=c.quantity,
                bought_at=c.at,
                last_at=c.at,
                period_end=_period_end(c.at, service),
            )
            return {
                "receipt": receipt,
                "price": service.price,
                "quantity": c.quantity,
                "charged": adds,
            }

        return commit

    def _named(self, c: cmd.Cancel | cmd.Refund, k: _Checks) -> Sub | None:
        """The purchase a cancel or refund names: by receipt, or by the client's reference
        given with the purchase (else unknown_receipt)."""
        receipt = c.receipt if c.receipt is not None else self._refs.get(c.purchase_ref or "")
        s = None if receipt is None else self._subs.get(receipt)
        if s is None:
            k.add("unknown_receipt", f"no purchase {c.receipt or c.purchase_ref}")
        return s

    def _cancel(self, c: cmd.Cancel, k: _Checks) -> Commit | None:
        """§4: only an active monthly subscription can be cancelled, by its ID's holder."""
        s = self._named(c, k)
        if s is None:
            return None
        k.in_time(s.last_at, f"receipt {s.receipt}")
        p = self._passport(s.passport_id, k)
        if p is None:
            return None
        self._password(p, c.password, k)
        k.check(s.active_at(c.at), "not_cancellable", "not an active monthly subscription")

        def commit() -> dict[str, Any]:
            self._cancel_subs(p, [s], c.at)
            p.failures = 0
            p.last_at = c.at
            last = s.last_month()
            return {"receipt": s.receipt, "last_charged_month": None if last is None else str(last)}

        return commit

    def _refund(self, c: cmd.Refund, k: _Checks) -> Commit | None:
        """§4: refunds add up to at most what was charged so far; charged in the month recorded."""
        s = self._named(c, k)
        if s is None:
            return None
        k.in_time(s.last_at, f"receipt {s.receipt}")
        charged = self._charged_so_far(s, _month(c.at))
        total = sum(a for _, a in s.refunds) + c.amount.amount
        k.check(
            total <= charged,
            "refund_exceeds_charge",
            f"refunds would total {total}, above the {charged} charged so far",
        )

        def commit() -> dict[str, Any]:
            s.refunds.append((c.at, c.amount.amount))
            s.last_at = c.at
            return {"receipt": s.receipt, "refunded_total": total}

        return commit

    # Fees and closing months (§7, §8) ---------------------------------------------------------

    def _set_fee(self, c: cmd.SetFee, k: _Checks) -> Commit | None:
        """§8: a fee may be set for open months only (settlements of closed ones are final)."""
        if self._closed is not None and c.effective_from <= self._closed:
            k.add("month_closed", f"{c.effective_from} is closed")

        def commit() -> dict[str, Any]:
            return {}  # the model does not settle

        return commit

    def _issue_bills(self, c: cmd.IssueBills, k: _Checks) -> Commit | None:
        ended = c.at >= _first_instant(c.month.next())
        k.check(ended, "invalid_input", f"{c.month} has not ended")

        def commit() -> dict[str, Any]:
            if self._closed is not None and c.month <= self._closed:
                return {"month": str(c.month), "closed": []}
            self._closed = c.month
            return {"month": str(c.month), "closed": [str(c.month)]}

        return commit


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

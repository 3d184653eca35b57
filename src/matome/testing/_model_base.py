"""The reference model's shared machinery: its state, the charges of a month, the lookups that
add ``unknown_*`` refusals, the credential checks and the line's cap (see
:mod:`matome.testing.model`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from matome import commands as cmd
from matome.policy import DEFAULT_POLICY, Policy
from matome.testing._model_secrets import HashedSecret
from matome.testing._model_state import (
    _LINE_AUTH_KINDS,
    Line,
    ModelResult,
    Passport,
    Provider,
    Service,
    Sub,
    _charge,
    _Checks,
    _month,
)
from matome.values import (
    AccessKey,
    BillingAccount,
    Consolidated,
    CustomerId,
    Password,
    YearMonth,
)


class _ModelBase:
    """The state and the helpers every group of the model's rules reads."""

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

    def _count_wrong_password(self, passport: Passport, at: datetime) -> None:
        """§10 / design.md: ``lockout_after`` wrong passwords in a row lock the ID.  A wrong
        password does not move the ID's business time (else one wrong password dated far
        ahead would freeze the ID)."""
        passport.failures += 1

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

    def _new_password(
        self, given: Password | None, current: str | HashedSecret | None, k: _Checks
    ) -> None:
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

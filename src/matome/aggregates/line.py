"""The access line [フレッツ・アクセスサービス回線] aggregate (one stream per customer ID)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

from matome import commands as cmd
from matome.aggregates._line_state import (
    AccessLine,
    line_id,
    project_line,
)
from matome.aggregates.base import AggregateState
from matome.aggregates.catalog import Provider, require_provider
from matome.aggregates.decision import Decision
from matome.aggregates.subscription import Holder, Subscription, cancel_holdings
from matome.errors import (
    ConsentRequired,
    DuplicateError,
    InvalidInput,
    LimitSumExceeded,
    NotAllowedOnline,
    UnknownLine,
    UnknownPassport,
    WrongAccessKey,
)
from matome.events import line as ev
from matome.events import passport as passport_ev
from matome.events.subscription import CancelReason
from matome.values import (
    AccessKey,
    BillingAccount,
    ChangeKind,
    Consolidated,
    CustomerId,
    LiftChannel,
    PassportId,
    YearMonth,
    Yen,
    tokyo_date,
)

__all__ = [
    "AccessLine",
    "LineChangeRule",
    "check_access_key",
    "check_billing",
    "decide_change_billing",
    "decide_change_line",
    "decide_change_line_limit",
    "decide_lift_regulation",
    "decide_open_line",
    "decide_regulate_line",
    "decide_set_notification",
    "line_change_rule",
    "line_id",
    "project_line",
    "require_line",
]


# ---------------------------------------------------------------------------------------------
# Rules of the line (rules §1, §3, §5, §6, §9)


def require_line(
    line: AccessLine | None, customer_id: CustomerId, d: Decision
) -> AccessLine | None:
    """``line`` if its collect-on-behalf service goes on, else ``unknown_line``; the command
    decides against it (time order)."""
    d.against(line, f"line {customer_id}")
    if line is None:
        d.refuse(UnknownLine(f"no access line {customer_id}"))
        return None
    if line.ended:
        then = f"; it continues as {line.successor}" if line.successor else ""
        ended = tokyo_date(line.ended_at) if line.ended_at else "?"
        d.refuse(
            UnknownLine(f"line {customer_id} left the collect-on-behalf service on {ended}{then}")
        )
        return None
    return line


def check_access_key(line: AccessLine, access_key: AccessKey, d: Decision) -> bool:
    """The line holder's commands carry the line's access key [アクセスキー] (§2, "Who may do
    what"); a wrong one is ``wrong_access_key`` (not counted: only passwords lock, §10).
    Whether it was right."""
    d.authenticated = line.id
    if not d.check_secret(
        "access_key",
        access_key.reveal(),
        line.access_key_hash,
        on=line,
        rehashed=ev.AccessKeyRehashed,
    ):
        d.refuse(WrongAccessKey(f"wrong access key for line {line.customer_id}"))
        return False
    return True


def check_billing(billing: BillingAccount, representative: AccessLine | None, d: Decision) -> None:
    """A consolidated line's representative [おまとめ請求] exists and is not consolidated itself.

    (A line naming itself is refused when the command is built, as ``invalid_input``.)
    ``representative`` is the line ``billing`` names, loaded by the caller.
    """
    if not isinstance(billing, Consolidated):
        return
    rep_id = billing.representative
    if representative is None or representative.ended:
        d.refuse(UnknownLine(f"no access line {rep_id} to be the billing representative"))
    elif isinstance(representative.billing, Consolidated):
        d.refuse(
            InvalidInput(
                f"representative {rep_id} is itself billed through "
                f"{representative.billing.representative}"
            )
        )


def decide_open_line(
    existing: AccessLine | None,
    representative: AccessLine | None,
    c: cmd.OpenLine,
    d: Decision,
) -> cmd.LineResult | None:
    """Open an access line for the service; its access key is kept only as a hash (§10)."""
    d.against(existing, f"line {c.customer_id}")
    check_billing(c.billing, representative, d)
    d.require(existing is None, lambda: DuplicateError(f"line {c.customer_id} exists already"))
    if d.refused:
        return None
    d.create(
        line_id(c.customer_id),
        ev.LineOpened,
        customer_id=c.customer_id,
        operator=c.operator,
        kind=c.kind,
        access_key_hash=d.new_secret("access_key", c.access_key, c.access_key_hash),
        line_limit=c.line_limit,
        billing=c.billing,
    )
    return cmd.LineResult(customer_id=c.customer_id)


class Spender(AggregateState, Protocol):
    """What the cap's share of an ID needs of it (a :class:`~matome.aggregates.passport.
    Passport`): what it spent in a month, and its stream (decided against)."""

    def spend(self, month: YearMonth, *, once_per_month: bool) -> Yen: ...


def cap_holders(line: AccessLine, month: YearMonth) -> list[PassportId]:
    """The IDs that hold part of the line's cap in ``month``: its current IDs and those
    deleted in that month (see :func:`held_of_cap`)."""
    return sorted({*line.passports, *(p for p, m in line.detached.items() if m == month)})


def held_of_cap(
    line: AccessLine,
    spenders: Mapping[PassportId, Spender | None],
    month: YearMonth,
    d: Decision,
) -> dict[PassportId, Yen]:
    """What each ID holds of the line's cap in ``month`` (§3, Decision): a current ID its
    limit — or what it spent that month, if more (a limit lowered below the spend frees
    nothing spent); an ID deleted that month what it spent (it stays on the month's bill).

    Checking a new limit against the sum of these, not of the limits alone, is what makes
    "the line's cap then holds too" true: moving a limit from an ID that already spent it to
    another ID cannot put more than the cap on one month's bill.  ``spenders`` are the IDs of
    :func:`cap_holders`, each decided against (a purchase meanwhile changes its spend).
    """
    once = d.policy.monthly_once_per_month
    held: dict[PassportId, Yen] = {}
    for pid in cap_holders(line, month):
        spender = spenders.get(pid)
        d.against(spender, f"Passport ID {pid}")
        spent = Yen.ZERO if spender is None else spender.spend(month, once_per_month=once)
        limit = line.passports.get(pid)
        held[pid] = spent if limit is None else max(limit, spent, key=lambda y: y.amount)
    return held


def require_within_cap(
    line: AccessLine,
    held: Mapping[PassportId, Yen],
    changed: PassportId | None,
    new_share: Yen,
    cap: Yen,
    d: Decision,
) -> None:
    """Refuse (``limit_sum_exceeded``) a change that takes the shares of the cap — with
    ``changed``'s replaced by ``new_share`` — above ``cap`` (§3: refused, not clamped).

    A change that does not raise the total is allowed even above the cap: the cap may have
    been lowered below this month's spend, which, like a lowered ID limit, only stops
    further purchases."""
    others = sum(y.amount for pid, y in held.items() if pid != changed)
    total = Yen(others + new_share.amount)
    before = sum(y.amount for y in held.values())
    if total <= cap or total.amount <= before:
        return
    limits = line.limit_sum.amount + (
        new_share.amount - line.passports.get(changed, Yen.ZERO).amount
        if changed is not None and changed in line.passports
        else new_share.amount
    )
    why = (
        f"limits would add up to {Yen(limits)}"
        if total.amount == limits
        else f"limits and what IDs spent this month beyond their limits (or before their "
        f"deletion) would add up to {total}"
    )
    d.refuse(LimitSumExceeded(f"{why}, above the line's cap {cap}"))


def decide_change_line_limit(
    line: AccessLine | None, c: cmd.ChangeLineLimit, d: Decision
) -> cmd.Done | None:
    """§3: the cap may not go below the sum of the line's ID limits (refused, not clamped).
    It may go below what was spent this month: like a lowered ID limit, it only stops
    further purchases (no ID can then take more than the cap leaves, see
    :func:`require_within_cap`)."""
    line = require_line(line, c.customer_id, d)
    if line is None:
        return None
    limit_sum = line.limit_sum
    d.require(
        limit_sum <= c.line_limit,
        lambda: LimitSumExceeded(
            f"the line's Passport IDs have limits adding up to {limit_sum}; "
            f"the cap cannot go below that (asked {c.line_limit})"
        ),
    )
    if d.refused:
        return None
    d.emit(line, ev.LineLimitChanged, line_limit=c.line_limit)
    return cmd.Done()


def decide_change_billing(
    line: AccessLine | None,
    representative: AccessLine | None,
    c: cmd.ChangeBilling,
    d: Decision,
) -> cmd.Done | None:
    """§6: a change of the billing number keeps the service."""
    line = require_line(line, c.customer_id, d)
    check_billing(c.billing, representative, d)
    if line is None or d.refused:
        return None
    d.emit(line, ev.BillingChanged, billing=c.billing, reason=c.reason)
    return cmd.Done()


@attrs.frozen
class LineChangeRule:
    """What a line change does, by the continuity table of rules §6.

    ``kept``: the collect-on-behalf service continues (purchases continue, charges keep being
    billed, regulation is carried over); otherwise every monthly subscription is cancelled and
    every Passport ID deleted at the change's instant.  ``ends_record``: the line record
    itself is finished — a terminal change (cancellation, area move, collabo conversion), or
    the line continues under a new customer ID.
    """

    kept: bool
    ends_record: bool
    renumbered: bool


def line_change_rule(
    change: ChangeKind, customer_id: CustomerId, new_customer_id: CustomerId | None
) -> LineChangeRule:
    """What ``change`` does to this line, by §6's table (:class:`~matome.values.ChangeKind`)."""
    renumbered = new_customer_id is not None and new_customer_id != customer_id
    return LineChangeRule(
        kept=change.keeps_service and not renumbered,
        ends_record=change.ends_line or renumbered,
        renumbered=renumbered,
    )


class Passport(Holder, Protocol):
    """What the line's rules need of its Passport IDs (a
    :class:`~matome.aggregates.passport.Passport`; the line module does not import it, since
    the Passport's own rules build on the line)."""

    @property
    def passport_id(self) -> PassportId: ...

    @property
    def deleted(self) -> bool: ...


def _require_passports(
    line: AccessLine, passports: Mapping[PassportId, Passport | None], d: Decision
) -> list[Passport]:
    """The line's current Passport IDs, each decided against (time order)."""
    out = []
    for pid in sorted(line.passports):
        passport = passports.get(pid)
        d.against(passport, f"Passport ID {pid}")
        if passport is None or passport.deleted:
            d.refuse(UnknownPassport(f"no Passport ID {pid!s}"))
            continue
        out.append(passport)
    return out


def _end_service(
    passports: list[Passport],
    subs: Mapping[str, Subscription | None],
    reason: CancelReason,
    d: Decision,
    *,
    delete: bool,
) -> tuple[list[str], list[PassportId]]:
    cancelled: list[str] = []
    deleted: list[PassportId] = []
    for passport in passports:
        passport, receipts = cancel_holdings(passport, subs, reason, d)
        cancelled += receipts
        if delete and not d.refused:
            d.emit(
                passport,
                passport_ev.PassportDeleted,
                reason=passport_ev.DeletionReason.LINE_CHANGE,
            )
            deleted.append(passport.passport_id)
    return cancelled, deleted


def decide_change_line(
    line: AccessLine | None,
    passports: Mapping[PassportId, Passport | None],
    subs: Mapping[str, Subscription | None],
    successor: AccessLine | None,
    c: cmd.ChangeLine,
    d: Decision,
) -> cmd.LineChangeResult | None:
    """Apply a line change [異動] by the continuity table (§6).

    ``passports`` and ``subs`` are the line's IDs and their active subscriptions (everything a
    change that ends the service would end); ``successor`` is the line already recorded under
    ``new_customer_id``, if any.
    """
    rule = line_change_rule(c.change, c.customer_id, c.new_customer_id)
    line = require_line(line, c.customer_id, d)
    if line is None:
        return None
    ending = [] if rule.kept else _require_passports(line, passports, d)
    if not rule.kept:
        for passport in ending:
            for receipt, holding in passport.holdings.items():
                if holding.active_at(d.at):
                    d.against(subs.get(receipt), f"receipt {receipt}")
    if c.new_customer_id is not None and not line.operator.accepts(c.new_customer_id):
        d.refuse(InvalidInput(f"NTT West customer IDs start with CAF, not {c.new_customer_id}"))
    if (
        c.change is ChangeKind.ITEM_CHANGE
        and c.new_kind is not None
        and line.kind.is_next_or_light
        and c.new_kind.is_next_or_light
        and c.new_kind != line.kind
    ):
        # §6: Hikari Next ⇄ Light is a menu change, never an item change (seed table: ×).
        d.refuse(
            InvalidInput(
                f"an item change never switches {line.kind.value} to {c.new_kind.value}; "
                "that is a menu_change"
            )
        )
    if c.change is ChangeKind.MENU_CHANGE and (
        not line.kind.is_next_or_light
        or c.new_kind is None
        or not c.new_kind.is_next_or_light
        or c.new_kind == line.kind
    ):
        d.refuse(
            InvalidInput(
                f"a menu change goes between hikari_next and hikari_light; the line is "
                f"{line.kind.value}, asked {c.new_kind}"
            )
        )
    if c.new_kind is not None and not c.new_kind.offered_by(line.operator):
        d.refuse(InvalidInput(f"NTT {line.operator.value} does not offer {c.new_kind.value}"))
    if rule.renumbered and successor is not None:
        d.refuse(DuplicateError(f"line {c.new_customer_id} exists already"))
    if d.refused:
        return None
    cancelled, deleted = (
        ([], [])
        if rule.kept
        else _end_service(ending, subs, CancelReason.LINE_CHANGE, d, delete=True)
    )
    new_cid = c.new_customer_id if rule.renumbered else None
    d.emit(
        line,
        ev.LineMoved,
        change=c.change,
        kept=rule.kept,
        ended=rule.ends_record,
        new_customer_id=new_cid,
        new_kind=c.new_kind,
        cancelled=tuple(cancelled),
        deleted=tuple(deleted),
    )
    if new_cid is not None:
        # The line carries on under its new customer ID; the service starts afresh there.
        d.create(
            line_id(new_cid),
            ev.LineOpened,
            customer_id=new_cid,
            operator=line.operator,
            kind=c.new_kind or line.kind,
            access_key_hash=line.access_key_hash,
            line_limit=line.line_limit,
            billing=line.billing,
            predecessor=line.customer_id,
        )
    return cmd.LineChangeResult(
        kept=rule.kept, new_customer_id=new_cid, cancelled=tuple(cancelled), deleted=tuple(deleted)
    )


def decide_regulate_line(
    line: AccessLine | None,
    passports: Mapping[PassportId, Passport | None],
    subs: Mapping[str, Subscription | None],
    c: cmd.RegulateLine,
    d: Decision,
) -> cmd.RegulationResult | None:
    """Regulate the line [利用規制] (§5): every subscription of every ID on it is cancelled at
    the regulation instant; regulating a regulated line is accepted and changes nothing."""
    line = require_line(line, c.customer_id, d)
    if line is None:
        return None
    if line.regulated:
        return cmd.RegulationResult(regulated=True)
    affected = _require_passports(line, passports, d)
    cancelled, _ = _end_service(affected, subs, CancelReason.REGULATION, d, delete=False)
    if d.refused:
        return None
    d.emit(line, ev.Regulated, cancelled=tuple(cancelled))
    return cmd.RegulationResult(regulated=True, cancelled=tuple(cancelled))


def decide_lift_regulation(
    line: AccessLine | None, c: cmd.LiftRegulation, d: Decision
) -> cmd.RegulationResult | None:
    """§5: lifting needs a written application [書面] and revives nothing; lifting a line that
    is not regulated is accepted and changes nothing."""
    line = require_line(line, c.customer_id, d)
    d.require(
        c.channel is not LiftChannel.ONLINE,
        lambda: NotAllowedOnline("lifting a regulation needs a written application [書面]"),
    )
    if line is None or d.refused:
        return None
    if line.regulated:
        d.emit(line, ev.RegulationLifted, channel=c.channel)
    return cmd.RegulationResult(regulated=False)


def decide_set_notification(
    line: AccessLine | None,
    provider: Provider | None,
    c: cmd.SetNotification,
    d: Decision,
) -> cmd.Done | None:
    """Line-information notification [回線情報通知] per provider, with explicit consent (§9);
    the line holder's command, with the line's access key."""
    line = require_line(line, c.customer_id, d)
    if line is not None:
        check_access_key(line, c.access_key, d)
    require_provider(provider, c.provider, d)
    d.require(
        c.consent,
        lambda: ConsentRequired("line-information notification needs the customer's consent"),
    )
    if line is None or d.refused:
        return None
    d.emit(line, ev.NotificationSet, provider=c.provider, notify=c.notify, channel=c.channel)
    return cmd.Done()

"""The access line aggregate's state and its appliers.

Re-exported by :mod:`matome.aggregates.line`, which holds its deciders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

import attrs

from matome.aggregates.base import Appliers, stream_id
from matome.events import line as ev
from matome.events.base import DomainEvent
from matome.values import (
    BillingAccount,
    CustomerId,
    LineKind,
    Operator,
    PassportId,
    ProviderCode,
    YearMonth,
    Yen,
)


def line_id(customer_id: CustomerId) -> UUID:
    return stream_id("line", customer_id.value)


def _frozen(d: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(d))


@attrs.frozen(kw_only=True)
class AccessLine:
    """One access line: cap, billing account, regulation, the IDs it holds and their limits.

    ``passports`` maps each current (not deleted) Passport ID to its monthly limit, so the line
    can guard the sum of limits (§3) and the count of IDs (§1) under optimistic concurrency.
    """

    id: UUID
    version: int
    last_at: datetime
    customer_id: CustomerId
    operator: Operator
    kind: LineKind
    access_key_hash: str
    line_limit: Yen
    billing: BillingAccount
    regulated: bool = False
    #: The line record is finished: a terminal change, or it continues under ``successor``.
    ended: bool = False
    ended_at: datetime | None = None
    successor: CustomerId | None = None
    predecessor: CustomerId | None = None
    passports: Mapping[PassportId, Yen] = attrs.field(factory=lambda: _frozen({}))
    notifications: Mapping[ProviderCode, bool] = attrs.field(factory=lambda: _frozen({}))
    #: The billing month in which each deleted ID left the line: what it spent that month is
    #: on the line's bill and still holds part of the cap until the month ends (§3).
    detached: Mapping[PassportId, YearMonth] = attrs.field(factory=lambda: _frozen({}))

    @property
    def limit_sum(self) -> Yen:
        return Yen(sum(limit.amount for limit in self.passports.values()))


#: The line's appliers, one decorated function per event class.
line_applies = Appliers("AccessLine")


def _step(state: AccessLine, event: DomainEvent, **changes: Any) -> AccessLine:
    return attrs.evolve(state, version=event.originator_version, last_at=event.at, **changes)


@line_applies(ev.LineOpened)
def _opened(_: None, e: ev.LineOpened) -> AccessLine:
    return AccessLine(
        id=e.originator_id,
        version=e.originator_version,
        last_at=e.at,
        customer_id=e.customer_id,
        operator=e.operator,
        kind=e.kind,
        access_key_hash=e.access_key_hash,
        line_limit=e.line_limit,
        billing=e.billing,
        predecessor=e.predecessor,
    )


@line_applies(ev.LineMoved)
def _moved(s: AccessLine, e: ev.LineMoved) -> AccessLine:
    changes: dict[str, Any] = {}
    if e.new_kind is not None:
        changes["kind"] = e.new_kind
    if not e.kept:
        # §6: the service ends: every ID is deleted; the regulation setting is not carried.
        changes["passports"] = _frozen({})
        changes["regulated"] = False
        changes["detached"] = _detached(s, s.passports, e.at)
    if e.ended:
        changes.update(ended=True, ended_at=e.at, successor=e.new_customer_id)
    return _step(s, e, **changes)


def _detached(
    s: AccessLine, pids: Iterable[PassportId], at: datetime
) -> Mapping[PassportId, YearMonth]:
    detached = dict(s.detached)
    for pid in pids:
        detached[pid] = YearMonth.of(at)
    return _frozen(detached)


def _with_passport(s: AccessLine, pid: PassportId, limit: Yen | None) -> Mapping[PassportId, Yen]:
    passports = dict(s.passports)
    if limit is None:
        passports.pop(pid, None)
    else:
        passports[pid] = limit
    return _frozen(passports)


@line_applies(ev.NotificationSet)
def _notification(s: AccessLine, e: ev.NotificationSet) -> AccessLine:
    notifications = dict(s.notifications)
    notifications[e.provider] = e.notify
    return _step(s, e, notifications=_frozen(notifications))


@line_applies(ev.AccessKeyRehashed)
def _rehashed(s: AccessLine, e: ev.AccessKeyRehashed) -> AccessLine:
    # The same key in a newer scheme: the line's business clock does not move (the command
    # that presented the key moves it by its own events, if it has any).
    return attrs.evolve(s, version=e.originator_version, access_key_hash=e.access_key_hash)


@line_applies(ev.LineLimitChanged)
def _line_limit_changed(s: AccessLine, e: ev.LineLimitChanged) -> AccessLine:
    return _step(s, e, line_limit=e.line_limit)


@line_applies(ev.BillingChanged)
def _billing_changed(s: AccessLine, e: ev.BillingChanged) -> AccessLine:
    return _step(s, e, billing=e.billing)


@line_applies(ev.Regulated)
def _regulated(s: AccessLine, e: ev.Regulated) -> AccessLine:
    return _step(s, e, regulated=True)


@line_applies(ev.RegulationLifted)
def _regulation_lifted(s: AccessLine, e: ev.RegulationLifted) -> AccessLine:
    return _step(s, e, regulated=False)


@line_applies(ev.PassportAttached, ev.PassportLimitChanged)
def _passport_limit(s: AccessLine, e: ev.PassportAttached | ev.PassportLimitChanged) -> AccessLine:
    return _step(s, e, passports=_with_passport(s, e.passport_id, e.limit))


@line_applies(ev.PassportDetached)
def _passport_detached(s: AccessLine, e: ev.PassportDetached) -> AccessLine:
    return _step(
        s,
        e,
        passports=_with_passport(s, e.passport_id, None),
        detached=_detached(s, [e.passport_id], e.at),
    )


project_line = line_applies.project

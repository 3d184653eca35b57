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

from matome.aggregates.base import make_projector, stream_id
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


def _step(state: AccessLine, event: DomainEvent, **changes: Any) -> AccessLine:
    return attrs.evolve(state, version=event.originator_version, last_at=event.at, **changes)


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


def _notification(s: AccessLine, e: ev.NotificationSet) -> AccessLine:
    notifications = dict(s.notifications)
    notifications[e.provider] = e.notify
    return _step(s, e, notifications=_frozen(notifications))


def _rehashed(s: AccessLine, e: ev.AccessKeyRehashed) -> AccessLine:
    # The same key in a newer scheme: the line's business clock does not move (the command
    # that presented the key moves it by its own events, if it has any).
    return attrs.evolve(s, version=e.originator_version, access_key_hash=e.access_key_hash)


project_line = make_projector(
    {
        ev.LineOpened: _opened,
        ev.LineLimitChanged: lambda s, e: _step(s, e, line_limit=e.line_limit),
        ev.BillingChanged: lambda s, e: _step(s, e, billing=e.billing),
        ev.LineMoved: _moved,
        ev.Regulated: lambda s, e: _step(s, e, regulated=True),
        ev.RegulationLifted: lambda s, e: _step(s, e, regulated=False),
        ev.NotificationSet: _notification,
        ev.PassportAttached: lambda s, e: _step(
            s, e, passports=_with_passport(s, e.passport_id, e.limit)
        ),
        ev.PassportLimitChanged: lambda s, e: _step(
            s, e, passports=_with_passport(s, e.passport_id, e.limit)
        ),
        ev.PassportDetached: lambda s, e: _step(
            s,
            e,
            passports=_with_passport(s, e.passport_id, None),
            detached=_detached(s, [e.passport_id], e.at),
        ),
    }
)

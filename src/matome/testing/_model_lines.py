"""The reference model's rules for lines and the catalog: opening and changing a line, its
cap, billing, regulation, notification, providers and services (see :mod:`matome.testing.model`)."""

from __future__ import annotations

from typing import Any

from matome import commands as cmd
from matome.testing._model_base import _ModelBase
from matome.testing._model_secrets import kept
from matome.testing._model_state import (
    _MENU_KINDS,
    _TERMINAL,
    _WEST_KINDS,
    Commit,
    Line,
    Passport,
    Provider,
    Service,
    Sub,
    _Checks,
)
from matome.values import (
    ChangeKind,
    LiftChannel,
    Operator,
    Pricing,
)


class _LineRules(_ModelBase):
    """Decides the commands on lines (§1, §3, §5, §6, §9) and on the catalog."""

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
                kept(None if c.access_key is None else c.access_key.reveal(), c.access_key_hash),
                c.line_limit.amount,
                c.billing,
                c.at,
            )
            return {"customer_id": cid}

        return commit

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

"""The reference model's rules for Passport IDs and what they buy: registering, changing and
deleting an ID, purchases, cancellations, refunds, fees and closing months (see
:mod:`matome.testing.model`)."""

from __future__ import annotations

from typing import Any

from matome import commands as cmd
from matome.testing._model_base import _ModelBase
from matome.testing._model_secrets import kept
from matome.testing._model_state import (
    _LINE_AUTH_KINDS,
    Commit,
    Passport,
    Sub,
    _Checks,
    _first_instant,
    _month,
    _period_end,
    receipt_number,
)
from matome.values import (
    Goods,
    Operator,
)


class _HolderRules(_ModelBase):
    """Decides the commands on Passport IDs (§2, §3, §10), purchases (§4, §9) and fees (§7, §8)."""

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
                pid,
                line.customer_id,
                kept(None if c.password is None else c.password.reveal(), c.password_hash),
                limit,
                c.line_auth,
                c.at,
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

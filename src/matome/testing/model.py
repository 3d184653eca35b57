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
events, wire).  Its parts live in private siblings: ``_model_state`` (records, constants,
the collector of refusals), ``_model_base`` (charges, lookups, credentials, the line's cap),
``_model_lines`` (lines and the catalog) and ``_model_holders`` (Passport IDs, purchases, fees).
"""

from __future__ import annotations

from typing import Any

import attrs

from matome import commands as cmd
from matome.errors import UnknownLine
from matome.testing._model_holders import _HolderRules
from matome.testing._model_lines import _LineRules
from matome.testing._model_state import (
    _LINE_AUTH_KINDS,
    Commit,
    Line,
    ModelResult,
    Passport,
    _Checks,
    _month,
    receipt_number,
)

# Public records of the model's state, kept importable from here.
from matome.testing._model_state import RECEIPT_NAMESPACE as RECEIPT_NAMESPACE
from matome.testing._model_state import Provider as Provider
from matome.testing._model_state import Service as Service
from matome.testing._model_state import Sub as Sub
from matome.values import YearMonth

__all__ = ["ModelResult", "ReferenceModel", "receipt_number"]


class ReferenceModel(_LineRules, _HolderRules):
    """Replays commands one at a time; answers results and bills (see the module docstring)."""

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

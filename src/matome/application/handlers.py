"""One handler per command: load what its decider decides against, then decide.

A handler knows *which* states a command needs and where they live (streams named by natural
keys); the decider beside the aggregate knows the *rules*.  Handlers are a few lines each and
hold no rule.  :data:`HANDLERS` is the registry, filled by :func:`handles` on each handler:
adding a command means its command class, its decider, one decorated handler here, and its tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from matome import commands as cmd
from matome.aggregates import catalog, ledger, line, passport, subscription
from matome.aggregates.decision import Decision
from matome.aggregates.line import AccessLine
from matome.aggregates.passport import Passport
from matome.aggregates.subscription import Subscription
from matome.application.uow import UnitOfWork
from matome.values import (
    BillingAccount,
    Consolidated,
    CustomerId,
    Erased,
    PassportId,
    ProviderCode,
    YearMonth,
)

__all__ = [
    "CREDENTIALS",
    "HANDLERS",
    "CredentialCheck",
    "Handler",
    "checks_credential",
    "handles",
    "load_calendar",
    "load_key",
    "personal_data_erased",
]

Handler = Callable[[UnitOfWork, Any, Decision], cmd.Result | None]
#: Checks the credential a command presents against its holder's current one: ``True`` (it
#: opens), ``False`` (refused in the decision: counted if a wrong password), ``None`` (no
#: holder to check it against: the ID or line is unknown, deleted or ended).
CredentialCheck = Callable[[UnitOfWork, Any, Decision], bool | None]

H = TypeVar("H", bound=Handler)
K = TypeVar("K", bound=CredentialCheck)

#: The registry: every command of the contract and its handler (filled by :func:`handles`).
HANDLERS: dict[type[cmd.Command[Any]], Handler] = {}
#: Every command that presents a credential (``Command.CREDENTIAL``) and how it is checked
#: (filled by :func:`checks_credential`).
CREDENTIALS: dict[type[cmd.Command[Any]], CredentialCheck] = {}


def handles(command: type[cmd.Command[Any]]) -> Callable[[H], H]:
    """Register the decorated function as the handler of ``command``: the function and its
    registry entry are one place (a second handler for one command fails at import)."""

    def register(handler: H) -> H:
        if command in HANDLERS:
            raise RuntimeError(f"{command.__name__} has two handlers")
        HANDLERS[command] = handler
        return handler

    return register


def checks_credential(*commands: type[cmd.Command[Any]]) -> Callable[[K], K]:
    """Register the decorated function as how the credential of each of ``commands`` is
    checked alone (contract 3), before an idempotency key's answer."""

    def register(check: K) -> K:
        for command in commands:
            if command in CREDENTIALS:
                raise RuntimeError(f"{command.__name__} has two credential checks")
            CREDENTIALS[command] = check
        return check

    return register


# ---------------------------------------------------------------------------------------------
# Loading by natural key


def load_line(uow: UnitOfWork, customer_id: CustomerId) -> AccessLine | None:
    state: AccessLine | None = uow.load(line.line_id(customer_id), line.project_line)
    return state


def load_passport(uow: UnitOfWork, passport_id: PassportId) -> Passport | None:
    state: Passport | None = uow.load(
        passport.passport_id_stream(passport_id), passport.project_passport
    )
    return state


def load_subscription(uow: UnitOfWork, receipt: str) -> Subscription | None:
    state: Subscription | None = uow.load(
        subscription.subscription_id(receipt), subscription.project_subscription
    )
    return state


def load_provider(uow: UnitOfWork, code: ProviderCode) -> catalog.Provider | None:
    state: catalog.Provider | None = uow.load(catalog.provider_id(code), catalog.project_provider)
    return state


def load_calendar(uow: UnitOfWork) -> ledger.Calendar | None:
    state: ledger.Calendar | None = uow.load(ledger.CALENDAR_ID, ledger.project_calendar)
    return state


def load_key(uow: UnitOfWork, key: str) -> ledger.KeyRecord | None:
    state: ledger.KeyRecord | None = uow.load(ledger.key_id(key), ledger.project_key)
    return state


def personal_data_erased(uow: UnitOfWork, c: Any) -> bool:
    """Whether the personal data of the Passport ID ``c`` names were erased."""
    p = load_passport(uow, c.passport_id)
    return p is not None and isinstance(p.email, Erased)


def load_representative(uow: UnitOfWork, billing: BillingAccount) -> AccessLine | None:
    return load_line(uow, billing.representative) if isinstance(billing, Consolidated) else None


def load_active_subs(uow: UnitOfWork, passports: Iterable[Passport | None]) -> dict[str, Any]:
    """The subscriptions of the active holdings of ``passports`` (what a cascade cancels)."""
    return {
        receipt: load_subscription(uow, receipt)
        for p in passports
        if p is not None
        for receipt, holding in p.holdings.items()
        if holding.active
    }


def load_line_passports(uow: UnitOfWork, state: AccessLine) -> Mapping[PassportId, Any]:
    return {pid: load_passport(uow, pid) for pid in state.passports}


def load_cap_holders(
    uow: UnitOfWork, state: AccessLine | None, at: datetime
) -> Mapping[PassportId, Any]:
    """The IDs holding part of the line's cap in the month of ``at`` (§3)."""
    if state is None:
        return {}
    return {pid: load_passport(uow, pid) for pid in line.cap_holders(state, YearMonth.of(at))}


def _owner(uow: UnitOfWork, p: Passport | None) -> AccessLine | None:
    return None if p is None else load_line(uow, p.customer_id)


# ---------------------------------------------------------------------------------------------
# Handlers


@handles(cmd.OpenLine)
def _open_line(uow: UnitOfWork, c: cmd.OpenLine, d: Decision) -> cmd.Result | None:
    return line.decide_open_line(
        load_line(uow, c.customer_id), load_representative(uow, c.billing), c, d
    )


@handles(cmd.ChangeLineLimit)
def _change_line_limit(uow: UnitOfWork, c: cmd.ChangeLineLimit, d: Decision) -> cmd.Result | None:
    return line.decide_change_line_limit(load_line(uow, c.customer_id), c, d)


@handles(cmd.ChangeBilling)
def _change_billing(uow: UnitOfWork, c: cmd.ChangeBilling, d: Decision) -> cmd.Result | None:
    return line.decide_change_billing(
        load_line(uow, c.customer_id), load_representative(uow, c.billing), c, d
    )


@handles(cmd.ChangeLine)
def _change_line(uow: UnitOfWork, c: cmd.ChangeLine, d: Decision) -> cmd.Result | None:
    state = load_line(uow, c.customer_id)
    rule = line.line_change_rule(c.change, c.customer_id, c.new_customer_id)
    passports = load_line_passports(uow, state) if state is not None and not rule.kept else {}
    successor = (
        load_line(uow, c.new_customer_id)
        if rule.renumbered and c.new_customer_id is not None
        else None
    )
    subs = load_active_subs(uow, passports.values())
    return line.decide_change_line(state, passports, subs, successor, c, d)


@handles(cmd.RegulateLine)
def _regulate_line(uow: UnitOfWork, c: cmd.RegulateLine, d: Decision) -> cmd.Result | None:
    state = load_line(uow, c.customer_id)
    passports = load_line_passports(uow, state) if state is not None and not state.regulated else {}
    subs = load_active_subs(uow, passports.values())
    return line.decide_regulate_line(state, passports, subs, c, d)


@handles(cmd.LiftRegulation)
def _lift_regulation(uow: UnitOfWork, c: cmd.LiftRegulation, d: Decision) -> cmd.Result | None:
    return line.decide_lift_regulation(load_line(uow, c.customer_id), c, d)


@handles(cmd.SetNotification)
def _set_notification(uow: UnitOfWork, c: cmd.SetNotification, d: Decision) -> cmd.Result | None:
    return line.decide_set_notification(
        load_line(uow, c.customer_id), load_provider(uow, c.provider), c, d
    )


@handles(cmd.RegisterProvider)
def _register_provider(uow: UnitOfWork, c: cmd.RegisterProvider, d: Decision) -> cmd.Result | None:
    return catalog.decide_register_provider(load_provider(uow, c.provider), c, d)


@handles(cmd.ListService)
def _list_service(uow: UnitOfWork, c: cmd.ListService, d: Decision) -> cmd.Result | None:
    return catalog.decide_list_service(load_provider(uow, c.provider), c, d)


@handles(cmd.RegisterPassport)
def _register_passport(uow: UnitOfWork, c: cmd.RegisterPassport, d: Decision) -> cmd.Result | None:
    via = None if c.via_provider is None else load_provider(uow, c.via_provider)
    state = load_line(uow, c.customer_id)
    return passport.decide_register_passport(
        state, load_passport(uow, c.passport_id), via, load_cap_holders(uow, state, c.at), c, d
    )


@handles(cmd.ChangePassportLimit)
def _change_passport_limit(
    uow: UnitOfWork, c: cmd.ChangePassportLimit, d: Decision
) -> cmd.Result | None:
    p = load_passport(uow, c.passport_id)
    owner = _owner(uow, p)
    return passport.decide_change_passport_limit(p, owner, load_cap_holders(uow, owner, c.at), c, d)


@handles(cmd.ChangePassportDetails)
def _change_passport_details(
    uow: UnitOfWork, c: cmd.ChangePassportDetails, d: Decision
) -> cmd.Result | None:
    p = load_passport(uow, c.passport_id)
    return passport.decide_change_passport_details(p, _owner(uow, p), c, d)


@handles(cmd.ErasePersonalData)
def _erase_personal_data(
    uow: UnitOfWork, c: cmd.ErasePersonalData, d: Decision
) -> cmd.Result | None:
    return passport.decide_erase_personal_data(load_passport(uow, c.passport_id), c, d)


@handles(cmd.ResetPassword)
def _reset_password(uow: UnitOfWork, c: cmd.ResetPassword, d: Decision) -> cmd.Result | None:
    return passport.decide_reset_password(load_passport(uow, c.passport_id), c, d)


@handles(cmd.DeletePassport)
def _delete_passport(uow: UnitOfWork, c: cmd.DeletePassport, d: Decision) -> cmd.Result | None:
    p = load_passport(uow, c.passport_id)
    owner = _owner(uow, p)
    return passport.decide_delete_passport(p, owner, load_active_subs(uow, [p]), c, d)


def load_reference(uow: UnitOfWork, ref: str) -> subscription.Reference | None:
    state: subscription.Reference | None = uow.load(
        subscription.reference_id(ref), subscription.project_reference
    )
    return state


def load_named_purchase(uow: UnitOfWork, c: cmd.Cancel | cmd.Refund) -> Subscription | None:
    """The subscription a command names by its receipt, or by the client's reference."""
    receipt = c.receipt
    if receipt is None and c.purchase_ref is not None:
        reference = load_reference(uow, c.purchase_ref)
        receipt = None if reference is None else reference.receipt
    return None if receipt is None else load_subscription(uow, receipt)


@handles(cmd.Purchase)
def _purchase(uow: UnitOfWork, c: cmd.Purchase, d: Decision) -> cmd.Result | None:
    p = load_passport(uow, c.passport_id)
    reference = None if c.ref is None else load_reference(uow, c.ref)
    provider = load_provider(uow, c.provider)
    return passport.decide_purchase(p, _owner(uow, p), provider, c, d, reference)


@handles(cmd.Cancel)
def _cancel(uow: UnitOfWork, c: cmd.Cancel, d: Decision) -> cmd.Result | None:
    sub = load_named_purchase(uow, c)
    p = None if sub is None else load_passport(uow, sub.passport_id)
    return passport.decide_cancel(sub, p, c, d)


@handles(cmd.Refund)
def _refund(uow: UnitOfWork, c: cmd.Refund, d: Decision) -> cmd.Result | None:
    sub = load_named_purchase(uow, c)
    p = None if sub is None else load_passport(uow, sub.passport_id)
    return passport.decide_refund(sub, p, c, d)


@handles(cmd.SetFee)
def _set_fee(uow: UnitOfWork, c: cmd.SetFee, d: Decision) -> cmd.Result | None:
    schedule: ledger.FeeSchedule | None = uow.load(ledger.fees_id(c.operator), ledger.project_fees)
    return ledger.decide_set_fee(schedule, load_calendar(uow), c, d)


@handles(cmd.IssueBills)
def _issue_bills(uow: UnitOfWork, c: cmd.IssueBills, d: Decision) -> cmd.Result | None:
    return ledger.decide_issue_bills(load_calendar(uow), c, d)


# ---------------------------------------------------------------------------------------------
# Credentials alone: what a command under a used idempotency key is checked by first
# (contract 3, "Idempotency keys are no password oracle").  The holder is the ID or line the
# handler would check the credential against — also a deleted ID or an ended line, so that a
# retry of the command that deleted or ended it is answered (after its credential, checked
# against the stored one).  ``None`` only when there is no such ID or line at all: the key
# cannot have been bound by that body, and the handler refuses it (``unknown_*``).


def _known_id(uow: UnitOfWork, passport_id: PassportId) -> tuple[Passport, AccessLine] | None:
    p = load_passport(uow, passport_id)
    owner = _owner(uow, p)
    return None if p is None or owner is None else (p, owner)


@checks_credential(cmd.Purchase)
def _purchase_credential(uow: UnitOfWork, c: cmd.Purchase, d: Decision) -> bool | None:
    found = _known_id(uow, c.passport_id)
    return None if found is None else passport.check_purchase_credentials(*found, c, d)


@checks_credential(cmd.Cancel)
def _cancel_credential(uow: UnitOfWork, c: cmd.Cancel, d: Decision) -> bool | None:
    sub = load_named_purchase(uow, c)
    p = None if sub is None else load_passport(uow, sub.passport_id)
    return None if p is None else passport.authenticate(p, c.password, d)


@checks_credential(cmd.ChangePassportLimit, cmd.ChangePassportDetails, cmd.DeletePassport)
def _id_access_key(uow: UnitOfWork, c: Any, d: Decision) -> bool | None:
    found = _known_id(uow, c.passport_id)
    return None if found is None else line.check_access_key(found[1], c.access_key, d)


@checks_credential(cmd.RegisterPassport, cmd.SetNotification)
def _line_access_key(uow: UnitOfWork, c: Any, d: Decision) -> bool | None:
    state = load_line(uow, c.customer_id)
    return None if state is None else line.check_access_key(state, c.access_key, d)

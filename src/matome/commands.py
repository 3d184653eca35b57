"""Commands of the interchange contract (docs/contract.md, "Command log") and their results.

A command object is valid once constructed: every field is converted and checked at the edge,
so that the engine only decides.  The same classes serve the Python API (fields may be given
as plain ``str``/``int`` or as value types) and the JSON command log (:func:`parse_command`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

import attrs
from attrs.converters import optional

from matome import _command_fields as _secret_or_hash
from matome._command_fields import MAX_PERIOD_DAYS as MAX_PERIOD_DAYS
from matome._command_fields import MAX_PERIOD_MONTHS as MAX_PERIOD_MONTHS
from matome._command_fields import (
    _access_key,
    _applicant,
    _at,
    _billing,
    _change_kind,
    _change_reason,
    _customer_id,
    _email,
    _field_names,
    _flag,
    _goods,
    _key,
    _label,
    _lift_channel,
    _line_kind,
    _month,
    _not_own_representative,
    _one_purchase,
    _operator,
    _passport_id,
    _password,
    _period_days,
    _period_months,
    _pricing,
    _provider,
    _quantity,
    _receipt,
    _ref,
    _reset_channel,
    _service,
    _short_label,
    _yen,
)
from matome._command_reading import (
    _contract_2_reading,
    _in_contract_2_words,
    _named,
    _naming_the_field,
)
from matome._command_results import (
    CancelResult,
    DeletionResult,
    Done,
    IssueResult,
    LineChangeResult,
    LineResult,
    PassportResult,
    PurchaseResult,
    RefundResult,
    RegulationResult,
    Result,
)
from matome.errors import InvalidInput
from matome.values import (
    AccessKey,
    Applicant,
    BillingAccount,
    BillingChangeReason,
    ChangeKind,
    Consolidated,
    CustomerId,
    CustomerNumber,
    Email,
    Goods,
    LiftChannel,
    LineKind,
    Operator,
    PassportId,
    Password,
    PhoneBill,
    Pricing,
    ProviderCode,
    ResetChannel,
    ServiceCode,
    YearMonth,
    Yen,
)

__all__ = [
    "BILLING_PROCESS",
    "COMMANDS",
    "CONTRACTS",
    "DEFAULT_CONTRACT",
    "LATEST_CONTRACT",
    "CancelResult",
    "Command",
    "DeletionResult",
    "Done",
    "IssueResult",
    "LineChangeResult",
    "LineResult",
    "PassportResult",
    "PurchaseResult",
    "RefundResult",
    "RegulationResult",
    "Result",
    "admit",
    "check_contract",
    "parse_command",
]

V = TypeVar("V")


# ---------------------------------------------------------------------------------------------
# Commands


R = TypeVar("R", bound=Result)


@attrs.frozen(kw_only=True)
class Command(Generic[R]):
    """Base of every command: business time ``at`` and an optional idempotency ``key``.

    A command class names the type of its result (``class Purchase(Command[PurchaseResult])``),
    so ``Engine.execute(Purchase(...))`` is typed, and a result answered again for a key is
    read back as that type.
    """

    NAME: ClassVar[str] = ""
    #: The result type (from the class's ``Command[...]`` base).
    RESULT: ClassVar[type[Result]] = Result
    #: Fields holding secrets: left out of idempotency digests and never echoed.
    SECRETS: ClassVar[tuple[str, ...]] = ()
    #: Fields holding personal data of the command's ``passport_id`` (e-mail, applicant): an
    #: idempotency key keeps nothing of them that outlives the ID's erasure (contract 3).
    PERSONAL: ClassVar[tuple[str, ...]] = ()
    #: The credential the command is authenticated by, if any (rules §2, "Who may do
    #: what"): ``password`` (the Passport ID holder) or ``access_key`` (the line holder).
    CREDENTIAL: ClassVar[str | None] = None
    #: Never shares a transaction with other commands: a batch records what came before it,
    #: runs it on its own, and goes on (``issue_bills`` is followed by the billing run, which
    #: can take minutes; an erasure rewrites stored events).
    ALONE: ClassVar[bool] = False
    #: May name a closed month (§7: closing a closed month again changes nothing); every
    #: other command dated in a closed month is ``month_closed``.
    MAY_NAME_CLOSED_MONTH: ClassVar[bool] = False
    #: The processes that follow this command's events (:mod:`matome.billing`): the engine
    #: runs them to completion before the command returns, also when it is answered again
    #: for its key, so a process cut short is completed by sending the command again.
    FOLLOWED_BY: ClassVar[tuple[str, ...]] = ()

    at: datetime = attrs.field(converter=_at)
    key: str | None = attrs.field(default=None, converter=_key)


#: The process that issues the bills of the months ``MonthsClosed`` closed (:mod:`matome.billing`).
BILLING_PROCESS = "billing"

#: Every command class, by its contract name (``"purchase"``: :class:`Purchase`).
COMMANDS: dict[str, type[Command[Any]]] = {}
C = TypeVar("C", bound=type[Command[Any]])

#: Field metadata: added by contract 2 (an idempotency digest leaves it out at its default, so
#: a key bound by a contract-1 command still matches the same body).
SINCE_2 = {"since": 2}


#: Field metadata: added by contract 3.  Under contract 2 such a field is an unknown field, as
#: it always was (:func:`admit`), and an idempotency digest leaves it out at its default.
SINCE_3 = {"since": 3}

#: The contracts this build reads (docs/contract.md, "Contract versions").
CONTRACTS = (2, 3)
#: The contract of a log that declares none, and of an engine opened without one: contract 2,
#: forever — an old log keeps its meaning (docs/rules.md §11).
DEFAULT_CONTRACT = 2
#: The newest contract.
LATEST_CONTRACT = 3


def check_contract(contract: object) -> int:
    """``contract`` if this build reads it; anything else is ``invalid_input``."""
    if type(contract) is not int or contract not in CONTRACTS:
        known = ", ".join(map(str, CONTRACTS))
        raise InvalidInput(f"contract {contract!r} is not one this matome reads ({known})")
    return contract


def _command(name: str) -> Callable[[C], C]:
    """Register a command class under its contract name; its result type is read from its
    ``Command[...]`` base."""

    def register(cls: C) -> C:
        cls.NAME = name
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Command:
                (cls.RESULT,) = get_args(base)
        COMMANDS[name] = cls
        return cls

    return register


@_command("open_line")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class OpenLine(Command[LineResult]):
    SECRETS = ("access_key",)
    customer_id: CustomerId = attrs.field(converter=_customer_id)
    operator: Operator = attrs.field(converter=_operator)
    kind: LineKind = attrs.field(converter=_line_kind)
    access_key: AccessKey | None = attrs.field(
        default=None, converter=optional(_access_key), metadata=_secret_or_hash.HASHED_AS_ACCESS_KEY
    )
    line_limit: Yen = attrs.field(converter=_yen)
    billing: BillingAccount = attrs.field(converter=_billing)
    #: Instead of ``access_key``, its PHC hash (contract 3, "Credentials at scale").
    access_key_hash: str | None = attrs.field(
        default=None, converter=optional(_secret_or_hash._phc), metadata=SINCE_3
    )

    def __attrs_post_init__(self) -> None:
        _secret_or_hash.check(self.access_key, self.access_key_hash, "access_key")
        _not_own_representative(self.customer_id, self.billing)
        if not self.operator.accepts(self.customer_id):
            raise InvalidInput(f"NTT West customer IDs start with CAF, not {self.customer_id}")
        if not self.kind.offered_by(self.operator):
            raise InvalidInput(f"NTT {self.operator.value} does not offer {self.kind.value} lines")


@_command("change_line_limit")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class ChangeLineLimit(Command[Done]):
    customer_id: CustomerId = attrs.field(converter=_customer_id)
    line_limit: Yen = attrs.field(converter=_yen)


@_command("change_billing")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class ChangeBilling(Command[Done]):
    customer_id: CustomerId = attrs.field(converter=_customer_id)
    billing: BillingAccount = attrs.field(converter=_billing)
    reason: BillingChangeReason = attrs.field(converter=_change_reason)

    def __attrs_post_init__(self) -> None:
        _not_own_representative(self.customer_id, self.billing)
        # §6: each reason names the kind of account it leads to.
        expected = {
            BillingChangeReason.RENUMBERING: PhoneBill,
            BillingChangeReason.BILLING_PHONE_CHANGE: PhoneBill,
            BillingChangeReason.CUSTOMER_NUMBER: CustomerNumber,
            BillingChangeReason.WIDE_AREA_CONSOLIDATED: Consolidated,
        }[self.reason]
        if not isinstance(self.billing, expected):
            raise InvalidInput(
                f"reason {self.reason.value!r} needs a {expected.method} billing account, "  # type: ignore[attr-defined]
                f"not {self.billing.method}"
            )


@_command("change_line")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class ChangeLine(Command[LineChangeResult]):
    customer_id: CustomerId = attrs.field(converter=_customer_id)
    change: ChangeKind = attrs.field(converter=_change_kind)
    new_customer_id: CustomerId | None = attrs.field(default=None, converter=optional(_customer_id))
    new_kind: LineKind | None = attrs.field(default=None, converter=optional(_line_kind))

    def __attrs_post_init__(self) -> None:
        # §6's table (ChangeKind), as far as it needs no state.
        if self.new_customer_id is not None and not self.change.takes_new_customer_id:
            raise InvalidInput(f"a {self.change.value} takes no new_customer_id")
        if self.new_kind is not None and not self.change.takes_new_kind:
            raise InvalidInput(f"a {self.change.value} takes no new_kind")
        if self.change is ChangeKind.MENU_CHANGE and self.new_kind is None:
            raise InvalidInput("a menu_change needs new_kind (hikari_next ⇄ hikari_light)")


@_command("regulate_line")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class RegulateLine(Command[RegulationResult]):
    customer_id: CustomerId = attrs.field(converter=_customer_id)


@_command("lift_regulation")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class LiftRegulation(Command[RegulationResult]):
    customer_id: CustomerId = attrs.field(converter=_customer_id)
    channel: LiftChannel = attrs.field(converter=_lift_channel)


@_command("set_notification")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class SetNotification(Command[Done]):
    """Set line-information notification [回線情報通知] for one provider, with the customer's
    consent (§9); the line holder's command, with the line's access key."""

    SECRETS = ("access_key",)
    CREDENTIAL = "access_key"
    customer_id: CustomerId = attrs.field(converter=_customer_id)
    access_key: AccessKey = attrs.field(converter=_access_key)
    provider: ProviderCode = attrs.field(converter=_provider)
    notify: bool = attrs.field(converter=_flag)
    consent: bool = attrs.field(converter=_flag)
    channel: str = attrs.field(converter=_short_label)


@_command("register_provider")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class RegisterProvider(Command[Done]):
    provider: ProviderCode = attrs.field(converter=_provider)
    name: str = attrs.field(converter=_label)
    contact: str = attrs.field(converter=_label)
    goods: Goods = attrs.field(converter=_goods)


@_command("list_service")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class ListService(Command[Done]):
    """List a service or item with its pricing type and price; from contract 3 it may carry a
    service period [サービス利用期間] (docs/rules.md §11): ``period_months`` for a monthly-flat
    service (billing months from the purchase month), ``period_days`` for a per-purchase item
    (days of access from the purchase)."""

    provider: ProviderCode = attrs.field(converter=_provider)
    service: ServiceCode = attrs.field(converter=_service)
    name: str = attrs.field(converter=_label)
    pricing: Pricing = attrs.field(converter=_pricing)
    price: Yen = attrs.field(converter=_yen)
    period_months: int | None = attrs.field(
        default=None, converter=optional(_period_months), metadata=SINCE_3
    )
    period_days: int | None = attrs.field(
        default=None, converter=optional(_period_days), metadata=SINCE_3
    )

    def __attrs_post_init__(self) -> None:
        if self.period_months is not None and self.pricing is not Pricing.MONTHLY:
            raise InvalidInput("period_months is for a monthly-flat service; use period_days")
        if self.period_days is not None and self.pricing is not Pricing.PER_PURCHASE:
            raise InvalidInput("period_days is for a per-purchase item; use period_months")


@_command("register_passport")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class RegisterPassport(Command[PassportResult]):
    """Register a Passport ID on a line (§2): the line holder's command, with the line's access
    key — or a provider's on the customer's behalf (``via_provider``, no access key needed)."""

    SECRETS = ("password", "access_key")
    PERSONAL = ("email", "applicant")
    CREDENTIAL = "access_key"
    customer_id: CustomerId = attrs.field(converter=_customer_id)
    passport_id: PassportId = attrs.field(converter=_passport_id)
    password: Password | None = attrs.field(
        default=None, converter=optional(_password), metadata=_secret_or_hash.HASHED_AS_PASSWORD
    )
    email: Email = attrs.field(converter=_email)
    applicant: Applicant = attrs.field(converter=_applicant)
    limit: Yen = attrs.field(converter=_yen)
    line_auth: bool = attrs.field(converter=_flag)
    via_provider: ProviderCode | None = attrs.field(default=None, converter=optional(_provider))
    access_key: AccessKey | None = attrs.field(default=None, converter=optional(_access_key))
    #: Consent to the terms [規約に同意] (contract 3; seed 000): absent or false is
    #: ``consent_required``.
    terms_consent: bool | None = attrs.field(
        default=None, converter=optional(_flag), metadata=SINCE_3
    )
    #: Instead of ``password``, its PHC hash (contract 3, "Credentials at scale").
    password_hash: str | None = attrs.field(
        default=None, converter=optional(_secret_or_hash._phc), metadata=SINCE_3
    )

    def __attrs_post_init__(self) -> None:
        _secret_or_hash.check(self.password, self.password_hash, "password")
        if self.access_key is None and self.via_provider is None:
            raise InvalidInput("register_passport needs the line's access_key (or via_provider)")


@_command("change_passport_limit")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class ChangePassportLimit(Command[Done]):
    """Change a Passport ID's monthly limit (§3): the line holder's command, with the access
    key of the ID's line."""

    SECRETS = ("access_key",)
    CREDENTIAL = "access_key"
    passport_id: PassportId = attrs.field(converter=_passport_id)
    access_key: AccessKey = attrs.field(converter=_access_key)
    limit: Yen = attrs.field(converter=_yen)


@_command("change_passport_details")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class ChangePassportDetails(Command[Done]):
    """Change a Passport ID's password, e-mail and/or line-authentication setting (§2, §9):
    the line holder's command, with the access key of the ID's line; a new password unlocks
    the ID (§10)."""

    SECRETS = ("password", "access_key")
    PERSONAL = ("email",)
    CREDENTIAL = "access_key"
    passport_id: PassportId = attrs.field(converter=_passport_id)
    access_key: AccessKey = attrs.field(converter=_access_key)
    password: Password | None = attrs.field(default=None, converter=optional(_password))
    email: Email | None = attrs.field(default=None, converter=optional(_email))
    line_auth: bool | None = attrs.field(default=None, converter=optional(_flag), metadata=SINCE_2)

    def __attrs_post_init__(self) -> None:
        if self.password is None and self.email is None and self.line_auth is None:
            raise InvalidInput(
                "change_passport_details needs a new password, email or line_auth setting"
            )


@_command("delete_passport")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class DeletePassport(Command[DeletionResult]):
    """Delete a Passport ID, cancelling its monthly subscriptions (§2): the line holder's
    command, with the access key of the ID's line."""

    SECRETS = ("access_key",)
    CREDENTIAL = "access_key"
    passport_id: PassportId = attrs.field(converter=_passport_id)
    access_key: AccessKey = attrs.field(converter=_access_key)


@_command("reset_password")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class ResetPassword(Command[Done]):
    """The operator sets a new password for a Passport ID on a phone or written request
    [電話・書面]: recovery of a locked or forgotten password, allowed after the cut-off too
    (§10)."""

    SECRETS = ("password",)
    passport_id: PassportId = attrs.field(converter=_passport_id)
    password: Password = attrs.field(converter=_password)
    channel: ResetChannel = attrs.field(converter=_reset_channel)


@_command("purchase")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class Purchase(Command[PurchaseResult]):
    """Buy a service or item with a Passport ID and its password (§3, §4, §9, §10); answers
    the receipt number.  ``presented_line`` is the line the purchase came over, as NTT's
    network identifies it (line authentication)."""

    SECRETS = ("password",)
    CREDENTIAL = "password"
    passport_id: PassportId = attrs.field(converter=_passport_id)
    password: Password = attrs.field(converter=_password)
    provider: ProviderCode = attrs.field(converter=_provider)
    service: ServiceCode = attrs.field(converter=_service)
    presented_line: CustomerId | None = attrs.field(default=None, converter=optional(_customer_id))
    quantity: int = attrs.field(default=1, converter=_quantity, metadata=SINCE_2)
    #: The client's reference for this purchase (unique), usable by ``cancel``/``refund``.
    ref: str | None = attrs.field(default=None, converter=optional(_ref), metadata=SINCE_2)


@_command("cancel")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class Cancel(Command[CancelResult]):
    """Cancel an active monthly-flat subscription (§4), with the password of the Passport ID
    that bought it."""

    SECRETS = ("password",)
    CREDENTIAL = "password"
    password: Password = attrs.field(converter=_password)
    receipt: str | None = attrs.field(default=None, converter=optional(_receipt))
    purchase_ref: str | None = attrs.field(default=None, converter=optional(_ref), metadata=SINCE_2)

    def __attrs_post_init__(self) -> None:
        _one_purchase(self)


@_command("refund")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class Refund(Command[RefundResult]):
    """A provider's refund of a purchase, charged negatively in the month it is recorded;
    refunds of one purchase add up to at most what was charged for it so far (§4)."""

    amount: Yen = attrs.field(converter=_yen)
    reason: str = attrs.field(converter=_label)
    receipt: str | None = attrs.field(default=None, converter=optional(_receipt))
    purchase_ref: str | None = attrs.field(default=None, converter=optional(_ref), metadata=SINCE_2)

    def __attrs_post_init__(self) -> None:
        _one_purchase(self)
        if self.amount.amount == 0:
            raise InvalidInput("refund amount must be at least 1 yen")


@_command("erase_personal_data")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class ErasePersonalData(Command[Done]):
    """Erase a Passport ID's applicant name, phone and e-mail — every version of them — on
    request (the operator's command); bills and hash chains stay intact."""

    ALONE = True
    passport_id: PassportId = attrs.field(converter=_passport_id)
    reason: str = attrs.field(converter=_label)


@_command("set_fee")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class SetFee(Command[Done]):
    """Set the flat fee per line (before tax) of the 901–1,500-yen tier of the provider fee
    schedule (§8), for an operator's settlements from ``effective_from`` on."""

    operator: Operator = attrs.field(converter=_operator)
    effective_from: YearMonth = attrs.field(converter=_month)
    flat_fee: Yen = attrs.field(converter=_yen)


@_command("issue_bills")
@attrs.frozen(kw_only=True, field_transformer=_field_names)
class IssueBills(Command[IssueResult]):
    """Close a billing month (and every month before it) once it has ended; the billing run
    then issues every bill of the closed months (§7)."""

    ALONE = True
    MAY_NAME_CLOSED_MONTH = True
    FOLLOWED_BY = (BILLING_PROCESS,)
    month: YearMonth = attrs.field(converter=_month)


# ---------------------------------------------------------------------------------------------
# JSON command log


def parse_command(obj: Mapping[str, Any], contract: int = DEFAULT_CONTRACT) -> Command[Any]:
    """A command from one JSON object of a command log, read under ``contract``; anything off
    is ``invalid_input``.

    Under contract 2 a line means what it always meant: contract 3's fields are unknown fields
    and the values contract 3 widened (passwords of 11–12 characters, phone numbers of 12
    digits) are refused with contract 2's own messages, naming the same field first.
    """
    if not isinstance(obj, Mapping):
        raise InvalidInput("a command must be a JSON object")
    name = obj.get("command")
    if not isinstance(name, str) or name not in COMMANDS:
        raise InvalidInput(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    cls = COMMANDS[name]
    fields = {f.name: f for f in attrs.fields(cls) if f.metadata.get("since", 1) <= contract}
    body = {k: v for k, v in obj.items() if k != "command"}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise InvalidInput(f"{name}: unknown field(s): {', '.join(unknown)}")
    missing = sorted(
        n for n, f in fields.items() if _secret_or_hash.required(f, fields, body) and n not in body
    )
    if missing:
        raise InvalidInput(f"{name}: missing field(s): {', '.join(missing)}")
    try:
        command = cls(**body)
    except (InvalidInput, TypeError, ValueError) as e:  # TypeError: a type it cannot read
        message = e.message if isinstance(e, InvalidInput) else str(e)
        found = _naming_the_field(fields, body, message, contract)
        if contract < 3:
            found = _in_contract_2_words(found)
        raise InvalidInput(f"{name}: {found}") from None
    if contract < 3:
        for key, value in body.items():
            narrowed = _contract_2_reading(key, value)
            if narrowed is not None:
                raise InvalidInput(f"{name}: {_named(key, narrowed)}")
    return command


def admit(command: Command[Any], contract: int) -> None:
    """Refuse (``invalid_input``) a command that ``contract`` does not read: under contract 2,
    a contract-3 field given, or a value only contract 3 accepts — the same refusal
    :func:`parse_command` gives such a line.  The engine admits every command it executes, so
    the Python API and the command log agree."""
    if contract >= 3:
        return
    name = command.NAME
    newer = sorted(
        f.name
        for f in attrs.fields(type(command))
        if f.metadata.get("since", 1) > contract and getattr(command, f.name) != f.default
    )
    if newer:
        raise InvalidInput(f"{name}: unknown field(s): {', '.join(newer)}")
    for f in attrs.fields(type(command)):
        narrowed = _contract_2_reading(f.name, getattr(command, f.name))
        if narrowed is not None:
            raise InvalidInput(f"{name}: {_named(f.name, narrowed)}")

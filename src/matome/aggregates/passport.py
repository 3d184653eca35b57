"""The Passport ID [フレッツ・パスポートID] aggregate (one stream per ID, never reused)."""

from __future__ import annotations

from collections.abc import Mapping

from matome import charging
from matome import commands as cmd
from matome.aggregates._passport_state import (
    Holding,
    Passport,
    passport_id_stream,
    project_passport,
)
from matome.aggregates.catalog import Provider, require_listing, require_provider
from matome.aggregates.decision import Decision
from matome.aggregates.line import (
    AccessLine,
    check_access_key,
    held_of_cap,
    require_line,
    require_within_cap,
)
from matome.aggregates.subscription import (
    Reference,
    Subscription,
    cancel_holdings,
    check_cancellable,
    receipt_number,
    reference_id,
    require_subscription,
    subscription_id,
)
from matome.charging import last_charged_month
from matome.errors import (
    ConsentRequired,
    DuplicateError,
    GoodsNotOffered,
    InvalidInput,
    LimitExceeded,
    LineAuthFailed,
    LineRegulated,
    LockedOut,
    RefundExceedsCharge,
    RegistrationClosed,
    RegistrationLimitExceeded,
    TooManyPassports,
    UnknownPassport,
    WrongAccessKey,
    WrongPassword,
)
from matome.events import line as line_ev
from matome.events import passport as ev
from matome.events import subscription as sub_ev
from matome.values import (
    Goods,
    Operator,
    PassportId,
    Password,
    Pricing,
    YearMonth,
    Yen,
    tokyo_date,
)

__all__ = [
    "Holding",
    "Passport",
    "authenticate",
    "check_purchase_credentials",
    "decide_cancel",
    "decide_change_passport_details",
    "decide_change_passport_limit",
    "decide_delete_passport",
    "decide_erase_personal_data",
    "decide_purchase",
    "decide_refund",
    "decide_register_passport",
    "decide_reset_password",
    "passport_id_stream",
    "project_passport",
    "require_passport",
]


# ---------------------------------------------------------------------------------------------
# Deciders (rules §2, §3, §4, §9, §10)


def require_passport(
    passport: Passport | None, passport_id: PassportId, d: Decision
) -> Passport | None:
    """A current (not deleted) Passport ID, else ``unknown_passport``; the command decides
    against it (time order), also when it was deleted."""
    d.against(passport, f"Passport ID {passport_id}")
    if passport is None or passport.deleted:
        d.refuse(UnknownPassport(f"no Passport ID {passport_id!s}"))
        return None
    return passport


def _passport_and_line(
    passport: Passport | None, line: AccessLine | None, passport_id: PassportId, d: Decision
) -> tuple[Passport | None, AccessLine | None]:
    found = require_passport(passport, passport_id, d)
    if passport is None:
        return None, None
    return found, require_line(line, passport.customer_id, d)


def authenticate(passport: Passport, password: Password, d: Decision) -> bool:
    """The Passport ID holder's password (§10): a locked ID is ``locked_out``; a wrong password
    is ``wrong_password`` and counted — ten in a row lock the ID.  The count is a security
    event, recorded even though the command is refused (only when ``wrong_password`` is the
    refusal reported: a line-authentication failure, ranked first, counts nothing)."""
    policy = d.policy
    d.authenticated = passport.id
    if passport.locked:
        d.refuse(
            LockedOut(
                f"Passport ID {passport.passport_id!s} is locked after {policy.lockout_after} "
                "wrong passwords; the line holder or the operator can set a new password"
            )
        )
        return False
    if d.check_secret(
        "password",
        password.reveal(),
        passport.password_hash,
        on=passport,
        rehashed=ev.PasswordRehashed,
    ):
        return True
    failures = passport.consecutive_failures + 1
    locked = failures >= policy.lockout_after
    d.emit_security(passport, ev.PasswordRejected, consecutive=failures, locked=locked)
    d.refuse(
        WrongPassword(
            f"wrong password for Passport ID {passport.passport_id!s} "
            f"({failures} in a row{'; now locked' if locked else ''})"
        )
    )
    return False


def check_purchase_credentials(
    passport: Passport, line: AccessLine, c: cmd.Purchase, d: Decision
) -> bool:
    """A purchase's credentials: line authentication, then the password (§9, §10); whether
    both passed.  The line check comes first and counts nothing, so nobody on another line
    can lock the ID out."""
    # §9: the line the purchase came over, as NTT's network identifies it, must be the ID's
    # own; the notification setting plays no part (it only informs providers).
    checked = passport.line_auth and line.kind.has_line_auth
    if checked and not d.require(
        c.presented_line == line.customer_id,
        lambda: LineAuthFailed(
            f"Passport ID {c.passport_id!s} may only buy over its own line "
            f"{line.customer_id} (line authentication is on)"
        ),
    ):
        return False
    return authenticate(passport, c.password, d)


def _check_line_auth_setting(line: AccessLine, line_auth: bool | None, d: Decision) -> None:
    # §9: line authentication exists for the Hikari kinds only.
    if line_auth and not line.kind.has_line_auth:
        d.refuse(
            InvalidInput(
                f"line authentication exists for Hikari lines only; line {line.customer_id} "
                f"is {line.kind.value}"
            )
        )


def check_new_password(password: Password | None, current_hash: str | None, d: Decision) -> None:
    """The shape of a new password from contract 3 (docs/rules.md §10, §11; seed 004's settings
    site, applied to Passport IDs as our decision): 8–12 ASCII letters and digits, not digits
    only, not the current one — ``invalid_input`` naming the rule.  Contract 2 accepted any
    password of rules §1 (4–10 characters), and a contract-2 log keeps that meaning."""
    if password is None or d.policy.contract < 3:
        return
    clear = password.reveal()
    if not 8 <= len(clear) <= 12:
        d.refuse(InvalidInput("a new password must be 8–12 ASCII letters and digits"))
    elif clear.isdigit():
        d.refuse(InvalidInput("a new password must not be digits only"))
    elif current_hash is not None and d.credentials.verify(clear, current_hash):
        # Checked last and only for an otherwise valid password: one key derivation more.
        d.refuse(InvalidInput("a new password must not be the current password"))


def decide_register_passport(
    line: AccessLine | None,
    existing: Passport | None,
    via: Provider | None,
    spenders: Mapping[PassportId, Passport | None],
    c: cmd.RegisterPassport,
    d: Decision,
) -> cmd.PassportResult | None:
    """Register a Passport ID on a line (§2): the line holder with the line's access key, or a
    provider on the customer's behalf; not on a regulated line, at most five per line, a limit
    of at most 5,000 yen within the line's cap; from the cut-off only NTT East providers may
    register one on a customer's behalf.

    ``spenders`` are the IDs that hold part of the line's cap this month
    (:func:`~matome.aggregates.line.cap_holders`)."""
    policy = d.policy
    line = require_line(line, c.customer_id, d)
    if c.via_provider is not None:
        require_provider(via, c.via_provider, d)
    if existing is not None:
        # Passport IDs are never reused, even after deletion: an ID names one history.
        d.against(existing, f"Passport ID {c.passport_id}")
        d.refuse(DuplicateError(f"Passport ID {c.passport_id!s} exists already"))
    d.require(
        c.limit <= policy.registration_max_limit,
        lambda: RegistrationLimitExceeded(
            f"the limit at registration is at most {policy.registration_max_limit}, asked {c.limit}"
        ),
    )
    if policy.contract >= 3:
        # Seed 000: customers who do not agree to the terms cannot use the service [規約に同意].
        d.require(
            c.terms_consent is True,
            lambda: ConsentRequired(
                "a Passport ID is registered only with the customer's consent to the terms "
                "(terms_consent: true)"
            ),
        )
    check_new_password(c.password, None, d)
    if line is None:
        return None
    on_behalf = c.via_provider is not None and line.operator is Operator.EAST
    if c.access_key is not None:
        check_access_key(line, c.access_key, d)
    elif not (on_behalf and c.at >= policy.registration_cutoff):
        # §2: only an NTT East provider, from the cut-off, registers without the line holder.
        d.refuse(
            WrongAccessKey(
                f"registering a Passport ID on line {c.customer_id} needs the line's access "
                "key; a provider registers one without it only on NTT East lines from "
                f"{tokyo_date(policy.registration_cutoff)}"
            )
        )
    _check_line_auth_setting(line, c.line_auth, d)
    d.require(
        not line.regulated,
        lambda: LineRegulated(f"line {c.customer_id} is regulated: no new Passport ID"),
    )
    d.require(
        c.at < policy.registration_cutoff or on_behalf,
        lambda: RegistrationClosed(
            "customers can no longer register Passport IDs themselves (from "
            f"{tokyo_date(policy.registration_cutoff)}); NTT East providers may "
            "register one on a customer's behalf"
        ),
    )
    d.require(
        len(line.passports) < policy.max_passports,
        lambda: TooManyPassports(
            f"line {c.customer_id} holds {policy.max_passports} Passport IDs already"
        ),
    )
    held = held_of_cap(line, spenders, YearMonth.of(c.at), d)
    require_within_cap(line, held, None, c.limit, line.line_limit, d)
    if d.refused:
        return None
    d.create(
        passport_id_stream(c.passport_id),
        ev.Registered,
        passport_id=c.passport_id,
        customer_id=c.customer_id,
        password_hash=d.new_secret("password", c.password, c.password_hash),
        email=c.email,
        applicant=c.applicant,
        limit=c.limit,
        line_auth=c.line_auth,
        via_provider=c.via_provider,
    )
    d.emit(line, line_ev.PassportAttached, passport_id=c.passport_id, limit=c.limit)
    return cmd.PassportResult(passport_id=c.passport_id, status="in_use")


def decide_change_passport_limit(
    passport: Passport | None,
    line: AccessLine | None,
    spenders: Mapping[PassportId, Passport | None],
    c: cmd.ChangePassportLimit,
    d: Decision,
) -> cmd.Done | None:
    """§3: any limit that keeps what the line's IDs hold of its cap within it
    (:func:`~matome.aggregates.line.held_of_cap`: limits, or this month's spend where more);
    lowering it below what was spent is allowed (it only stops further purchases, and frees
    nothing spent this month).  The line holder's command, with the line's access key.

    ``spenders`` are the IDs that hold part of the line's cap this month."""
    passport, line = _passport_and_line(passport, line, c.passport_id, d)
    if passport is None or line is None:
        return None
    check_access_key(line, c.access_key, d)
    month = YearMonth.of(c.at)
    held = held_of_cap(line, {**spenders, c.passport_id: passport}, month, d)
    spent = passport.spend(month, once_per_month=d.policy.monthly_once_per_month)
    new_share = max(c.limit, spent, key=lambda y: y.amount)
    require_within_cap(line, held, c.passport_id, new_share, line.line_limit, d)
    if d.refused:
        return None
    d.emit(passport, ev.LimitChanged, limit=c.limit)
    d.emit(line, line_ev.PassportLimitChanged, passport_id=c.passport_id, limit=c.limit)
    return cmd.Done()


def decide_change_passport_details(
    passport: Passport | None,
    line: AccessLine | None,
    c: cmd.ChangePassportDetails,
    d: Decision,
) -> cmd.Done | None:
    """§2: password, e-mail and line authentication may change (purchases are unaffected; a
    new password unlocks, §10) — until the cut-off, after which registration details are
    view-only.  The line holder's command, with the line's access key."""
    policy = d.policy
    passport, line = _passport_and_line(passport, line, c.passport_id, d)
    if passport is None or line is None:
        return None
    check_access_key(line, c.access_key, d)
    _check_line_auth_setting(line, c.line_auth, d)
    # "Not the current one" is compared only for the line holder: invalid_input ranks before
    # wrong_access_key, so without a right key it would tell anyone whether a guess is the
    # current password.
    key_ok = not any(isinstance(e, WrongAccessKey) for e in d.refusals)
    check_new_password(c.password, passport.password_hash if key_ok else None, d)
    d.require(
        c.at < policy.registration_cutoff,
        lambda: RegistrationClosed(
            f"registration details are view-only from {tokyo_date(policy.registration_cutoff)}"
        ),
    )
    if d.refused:
        return None
    d.emit(
        passport,
        ev.DetailsChanged,
        password_hash=None
        if c.password is None
        else d.hash_secret("password", c.password.reveal()),
        email=c.email,
        line_auth=c.line_auth,
    )
    return cmd.Done()


def decide_reset_password(
    passport: Passport | None, c: cmd.ResetPassword, d: Decision
) -> cmd.Done | None:
    """The operator's recovery of a locked or forgotten password, on a phone or written
    request [電話・書面] (§10): allowed after the cut-off too — the cut-off froze self-service,
    not recovery.  It unlocks the ID and clears the count of wrong passwords."""
    passport = require_passport(passport, c.passport_id, d)
    if passport is None:
        return None
    check_new_password(c.password, passport.password_hash, d)
    if d.refused:
        return None
    d.emit(
        passport,
        ev.PasswordReset,
        password_hash=d.hash_secret("password", c.password.reveal()),
        channel=c.channel,
    )
    return cmd.Done()


def decide_erase_personal_data(
    passport: Passport | None, c: cmd.ErasePersonalData, d: Decision
) -> cmd.Done | None:
    """Erase the ID's personal values on request — also of a deleted ID, whose history stays
    (IDs are never reused).  Erasing again is accepted and changes nothing more."""
    d.against(passport, f"Passport ID {c.passport_id}")
    if passport is None:
        d.refuse(UnknownPassport(f"no Passport ID {c.passport_id!s}"))
        return None
    if d.refused:
        return None
    d.emit(passport, ev.PersonalDataErased, reason=c.reason)
    return cmd.Done()


def decide_delete_passport(
    passport: Passport | None,
    line: AccessLine | None,
    subs: Mapping[str, Subscription | None],
    c: cmd.DeletePassport,
    d: Decision,
) -> cmd.DeletionResult | None:
    """§2: deleting a Passport ID cancels its monthly subscriptions at the deletion instant.
    The line holder's command, with the line's access key.

    ``subs`` are the subscriptions of its active holdings.
    """
    passport, line = _passport_and_line(passport, line, c.passport_id, d)
    if passport is None or line is None:
        return None
    check_access_key(line, c.access_key, d)
    passport, cancelled = cancel_holdings(passport, subs, sub_ev.CancelReason.PASSPORT_DELETED, d)
    if d.refused:
        return None
    d.emit(passport, ev.PassportDeleted, reason=ev.DeletionReason.CUSTOMER)
    d.emit(line, line_ev.PassportDetached, passport_id=c.passport_id)
    return cmd.DeletionResult(cancelled=tuple(cancelled))


def decide_purchase(
    passport: Passport | None,
    line: AccessLine | None,
    provider: Provider | None,
    c: cmd.Purchase,
    d: Decision,
    reference: Reference | None = None,
) -> cmd.PurchaseResult | None:
    """Buy a service or item with a Passport ID (§3, §4, §9, §10).

    Refused when line authentication fails (before the password, so nobody on another line
    can lock the ID out), the ID is locked or the password wrong (counted: ten in a row lock
    the ID), the ID already holds that monthly service (``duplicate``), the line is regulated,
    physical goods are not sold yet, or the purchase would take the ID's spend this month
    above its limit.  A monthly service bought again in a month it is already charged adds
    nothing to the spend (§4 patterns 4–5); a per-purchase item adds price × quantity.
    ``reference`` is the purchase the command's ``ref`` already names, if any (a reference
    names one purchase for good: ``duplicate``).
    """
    policy = d.policy
    if reference is not None:
        d.refuse(DuplicateError(f"reference {c.ref!r} names purchase {reference.receipt} already"))
    passport, line = _passport_and_line(passport, line, c.passport_id, d)
    provider = require_provider(provider, c.provider, d)
    listing = None if provider is None else require_listing(provider, c.service, d)
    if passport is None or line is None:
        return None
    monthly = listing is not None and listing.pricing is Pricing.MONTHLY
    if monthly and c.quantity != 1:
        d.refuse(InvalidInput("a monthly-flat service is bought one at a time (quantity 1)"))
    check_purchase_credentials(passport, line, c, d)
    if monthly:
        d.require(
            passport.active_holding(c.provider, c.service, c.at) is None,
            lambda: DuplicateError(
                f"Passport ID {c.passport_id!s} already subscribes to {c.provider}/{c.service}"
            ),
        )
    d.require(
        not line.regulated,
        lambda: LineRegulated(f"line {line.customer_id} is regulated: purchases are stopped"),
    )
    if provider is not None and provider.goods is Goods.PHYSICAL:
        # §1: NTT West's guide includes goods; NTT East sells them from 2012-06-05.
        d.require(
            line.operator is Operator.WEST or c.at >= policy.physical_goods_from,
            lambda: GoodsNotOffered(
                f"NTT East sells physical goods from {tokyo_date(policy.physical_goods_from)} only"
            ),
        )
    if listing is None:
        return None
    month = YearMonth.of(c.at)
    once = policy.monthly_once_per_month
    # §4 patterns 4–5: bought while the same subscription is charged this month already.  A
    # fact of the history (recorded on HoldingAdded whatever the policy); the policy says
    # whether such a re-purchase adds nothing.
    rebought = monthly and charging.repurchase_is_free(
        passport.holdings.values(), c.provider, c.service, month, once_per_month=True
    )
    free = rebought and once
    adds = Yen.ZERO if free else listing.price * c.quantity
    spent = passport.spend(month, once_per_month=once)
    d.require(
        spent + adds <= passport.limit,
        lambda: LimitExceeded(
            f"Passport ID {c.passport_id!s} has spent {spent} of its {passport.limit} limit "
            f"in {month}; this purchase adds {adds}"
        ),
    )
    if d.refused:
        return None
    receipt = receipt_number(c.passport_id, passport.purchases + 1)
    # §11: the period is a fact of the purchase, fixed by the listing at purchase time.
    ends = charging.period_ends_at(c.at, listing.period_months, listing.period_days)
    d.create(
        subscription_id(receipt),
        sub_ev.Purchased,
        receipt=receipt,
        passport_id=c.passport_id,
        customer_id=line.customer_id,
        provider=c.provider,
        service=c.service,
        service_name=listing.name,
        pricing=listing.pricing,
        price=listing.price,
        quantity=c.quantity,
        period_ends_at=ends,
    )
    d.emit(
        passport,
        ev.HoldingAdded,
        receipt=receipt,
        provider=c.provider,
        service=c.service,
        pricing=listing.pricing,
        price=listing.price,
        quantity=c.quantity,
        period_ends_at=ends,
        rebought=rebought,
    )
    if c.ref is not None:
        d.create(reference_id(c.ref), sub_ev.PurchaseReferenced, ref=c.ref, receipt=receipt)
    return cmd.PurchaseResult(
        receipt=receipt, price=listing.price, charged=adds, quantity=c.quantity
    )


def decide_cancel(
    sub: Subscription | None, passport: Passport | None, c: cmd.Cancel, d: Decision
) -> cmd.CancelResult | None:
    """Cancel an active monthly-flat subscription at ``at`` with the password of the Passport
    ID that bought it (§4, §10; the charging rules decide its last charged month)."""
    sub = require_subscription(sub, c.receipt or f"reference {c.purchase_ref!r}", d)
    if sub is None:
        return None
    passport = require_passport(passport, sub.passport_id, d)
    if passport is None:
        return None
    authenticate(passport, c.password, d)
    check_cancellable(sub, d)
    if d.refused:
        return None
    d.emit(sub, sub_ev.Cancelled, reason=sub_ev.CancelReason.CUSTOMER)
    passport = d.emit(passport, ev.HoldingEnded, receipt=sub.receipt)
    if passport.consecutive_failures:
        d.emit(passport, ev.PasswordAccepted)
    return cmd.CancelResult(
        receipt=sub.receipt, last_charged_month=last_charged_month(sub.purchased_at, c.at)
    )


def decide_refund(
    sub: Subscription | None, passport: Passport | None, c: cmd.Refund, d: Decision
) -> cmd.RefundResult | None:
    """A provider's refund of a purchase, charged negatively in the month recorded (§4).

    Refunds of one purchase add up to at most what was charged for it so far
    (``refund_exceeds_charge``): a same-month re-purchase that was not charged has nothing to
    refund for that month.  ``passport`` is the ID that bought it (it knows which of its
    purchases were such re-purchases).
    """
    sub = require_subscription(sub, c.receipt or f"reference {c.purchase_ref!r}", d)
    if sub is None:
        return None
    first_month = passport is None or passport.first_month_charged(
        sub.receipt, once_per_month=d.policy.monthly_once_per_month
    )
    charged = Yen(
        charging.charged_so_far(
            sub.pricing,
            sub.amount.amount,
            sub.purchased_at,
            sub.ends_at,
            YearMonth.of(c.at),
            first_month_charged=first_month,
        )
    )
    total = sub.refunded + c.amount
    d.require(
        total <= charged,
        lambda: RefundExceedsCharge(
            f"refunds of {sub.receipt} would add up to {total}, above the {charged} charged "
            "for it so far"
        ),
    )
    if d.refused:
        return None
    d.emit(sub, sub_ev.Refunded, amount=c.amount, reason=c.reason)
    return cmd.RefundResult(receipt=sub.receipt, refunded_total=total)

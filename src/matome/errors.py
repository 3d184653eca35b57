"""matome's exceptions: one class per error code of the interchange contract.

Every refusal the engine makes is a :class:`MatomeError` subclass whose ``code`` is the
contract's error code (docs/contract.md, "Results").  A refused command writes nothing, with the
single exception documented on :class:`WrongPassword`.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ERROR_CLASSES",
    "ERROR_PRECEDENCE",
    "REFUSAL_ORDER",
    "Busy",
    "ConsentRequired",
    "DuplicateError",
    "EngineBusy",
    "FeeNotConfigured",
    "GoodsNotOffered",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidSetting",
    "LimitExceeded",
    "LimitSumExceeded",
    "LineAuthFailed",
    "LineRegulated",
    "LockedOut",
    "MatomeError",
    "MonthClosed",
    "NotAllowedOnline",
    "NotCancellable",
    "RefundExceedsCharge",
    "RegistrationClosed",
    "RegistrationLimitExceeded",
    "StoreNotFound",
    "StoreUnavailable",
    "TooManyPassports",
    "UnknownLine",
    "UnknownPassport",
    "UnknownProvider",
    "UnknownReceipt",
    "UnknownService",
    "WrongAccessKey",
    "WrongPassword",
    "first_refusal",
    "rank",
]


class MatomeError(Exception):
    """Base of every refusal.  ``code`` is the contract's error code; ``message`` says why."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, str]:
        """The contract's ``error`` object: ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidInput(MatomeError):
    """Malformed input: a bad format, a missing or unknown field, a naive time, ..."""

    code = "invalid_input"


class InvalidSetting(InvalidInput):
    """A setting matome cannot use — a malformed ``--db`` URL, a URL parameter matome does not
    know, a schema name that is not a plain identifier — found before anything is opened.
    Still ``invalid_input``; the command line exits 2, as for any invocation to fix."""


class IdempotencyConflict(MatomeError):
    """The idempotency key was already bound by an accepted command with another body."""

    code = "idempotency_conflict"


class MonthClosed(MatomeError):
    """The command's business time falls in a month whose bills were issued (rules §7)."""

    code = "month_closed"


class UnknownLine(MatomeError):
    """No such access line (or its collect-on-behalf service has ended for good)."""

    code = "unknown_line"


class UnknownPassport(MatomeError):
    """No such Passport ID, or it was deleted."""

    code = "unknown_passport"


class UnknownProvider(MatomeError):
    """No such provider."""

    code = "unknown_provider"


class UnknownService(MatomeError):
    """The provider does not list that service."""

    code = "unknown_service"


class UnknownReceipt(MatomeError):
    """No purchase has that receipt number."""

    code = "unknown_receipt"


class DuplicateError(MatomeError):
    """The thing exists already (a line, an ID, a provider, a service, an active subscription)."""

    code = "duplicate"


class LineRegulated(MatomeError):
    """The line is regulated [利用規制]: no purchase, no new Passport ID (rules §5)."""

    code = "line_regulated"


class LockedOut(MatomeError):
    """The Passport ID's password is disabled after too many wrong entries (rules §10)."""

    code = "locked_out"


class WrongPassword(MatomeError):
    """The password did not match.

    The one refusal that leaves something behind: the failed attempt is recorded so that
    consecutive failures can lock the ID (rules §10, docs/contract.md "Results").
    """

    code = "wrong_password"


class WrongAccessKey(MatomeError):
    """The line holder's command did not carry the line's access key [アクセスキー] (§2).

    Not counted: only Passport ID passwords lock (rules §10).
    """

    code = "wrong_access_key"


class LineAuthFailed(MatomeError):
    """Line authentication [回線認証] is on and the purchase did not come from the owning line."""

    code = "line_auth_failed"


class NotAllowedOnline(MatomeError):
    """Lifting a regulation needs a written application [書面] (rules §5)."""

    code = "not_allowed_online"


class ConsentRequired(MatomeError):
    """Line-information notification settings need the customer's explicit consent (§9)."""

    code = "consent_required"


class RegistrationClosed(MatomeError):
    """Self-service registration and detail changes ended on 2024-12-01 (rules §2)."""

    code = "registration_closed"


class TooManyPassports(MatomeError):
    """A line holds at most five Passport IDs (rules §1)."""

    code = "too_many_passports"


class RegistrationLimitExceeded(MatomeError):
    """The limit given at registration is above the registration maximum (5,000 yen)."""

    code = "registration_limit_exceeded"


class LimitSumExceeded(MatomeError):
    """The per-ID limits would add up to more than the line's cap (rules §3)."""

    code = "limit_sum_exceeded"


class LimitExceeded(MatomeError):
    """The purchase would take the ID's spend this month above its limit (rules §3)."""

    code = "limit_exceeded"


class NotCancellable(MatomeError):
    """Only an active monthly-flat subscription can be cancelled (rules §4)."""

    code = "not_cancellable"


class RefundExceedsCharge(MatomeError):
    """Refunds of one purchase may never add up to more than was charged for it so far
    (rules §4)."""

    code = "refund_exceeds_charge"


class GoodsNotOffered(MatomeError):
    """NTT East sells physical goods from 2012-06-05 only (rules §1).

    An addition to the contract's list of codes (the contract allows additions).
    """

    code = "goods_not_offered"


class FeeNotConfigured(MatomeError):
    """The fee schedule needs an amount nobody has configured (an addition to the contract).

    Raised by :mod:`matome.fees` (which re-exports it, as before); a settlement reports it as
    the line's ``status`` instead of failing."""

    code = "fee_not_configured"


class StoreNotFound(MatomeError):
    """There is no matome store where one was named (a mistyped ``--db`` path, an empty
    schema): only ``run`` and ``demo`` create a store."""

    code = "store_not_found"


class StoreUnavailable(MatomeError):
    """The store cannot be used: it cannot be opened or reached, it is read-only, the disk is
    full, it is not a matome store, or its events cannot be decrypted with the key given."""

    code = "store_unavailable"


class Busy(MatomeError):
    """A command lost the optimistic-concurrency race too many times in a row; retry it."""

    code = "busy"


#: matome 0.1's name of :class:`Busy` (also importable from :mod:`matome.engine`): the same
#: class, kept so that ``except EngineBusy`` goes on working.
EngineBusy = Busy


#: The contract's order of precedence (docs/contract.md, "Results"): when several refusals apply
#: to one command, the first in this table is reported.  Codes on one line share a rank.  This
#: table *is* the order: the deciders collect every refusal that applies and report the first
#: by :func:`rank`, so the order never depends on the order in which checks are written.
REFUSAL_ORDER: tuple[tuple[str, ...], ...] = (
    ("invalid_input",),
    ("month_closed",),
    ("unknown_line", "unknown_passport", "unknown_provider", "unknown_service", "unknown_receipt"),
    # Credentials before the state they guard; the line check before the password, so that
    # nobody on another line can lock an ID out (rules §9, §10).
    ("line_auth_failed",),
    ("locked_out",),
    ("wrong_password", "wrong_access_key"),
    # After the credentials: a key bound to another body gives no free password guesses.
    ("idempotency_conflict",),
    ("duplicate",),
    ("line_regulated",),
    ("not_allowed_online", "consent_required"),
    ("goods_not_offered",),
    ("registration_closed",),
    ("too_many_passports",),
    ("registration_limit_exceeded",),
    ("limit_sum_exceeded",),
    ("limit_exceeded",),
    ("not_cancellable", "refund_exceeds_charge"),
)

#: The name the reference model and older code know the table by.
ERROR_PRECEDENCE = REFUSAL_ORDER

_RANK: dict[str, int] = {code: r for r, codes in enumerate(REFUSAL_ORDER) for code in codes}


def rank(code: str) -> int:
    """The rank of an error code in :data:`REFUSAL_ORDER` (lower is reported first); codes
    that are not command refusals (``busy``, ``fee_not_configured``) rank after all of them."""
    return _RANK.get(code, len(REFUSAL_ORDER))


def first_refusal(refusals: list[MatomeError]) -> MatomeError | None:
    """The refusal to report among several: the first by rank; among equals, the first found."""
    if not refusals:
        return None
    return min(refusals, key=lambda e: rank(e.code))


#: The class of each command refusal, by its contract error code (``busy``,
#: ``fee_not_configured`` and the store's errors are not command refusals).
ERROR_CLASSES: dict[str, type[MatomeError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        IdempotencyConflict,
        MonthClosed,
        UnknownLine,
        UnknownPassport,
        UnknownProvider,
        UnknownService,
        UnknownReceipt,
        DuplicateError,
        LineRegulated,
        LockedOut,
        WrongPassword,
        LineAuthFailed,
        NotAllowedOnline,
        ConsentRequired,
        RegistrationClosed,
        TooManyPassports,
        RegistrationLimitExceeded,
        LimitSumExceeded,
        LimitExceeded,
        NotCancellable,
        RefundExceedsCharge,
        GoodsNotOffered,
        WrongAccessKey,
    )
}

"""Hypothesis strategies for matome's value types, valid and invalid (rules §1); see
:mod:`matome.testing.strategies`."""

from __future__ import annotations

import base64
import string
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from matome.commands import (
    MAX_PERIOD_DAYS,
    MAX_PERIOD_MONTHS,
)
from matome.values import MAX_YEN, TOKYO, YearMonth

_ALNUM = string.ascii_letters + string.digits
_DIGITS = string.digits

# ---------------------------------------------------------------------------------------------
# Value types (rules §1)


def customer_ids(operator: str | None = None) -> st.SearchStrategy[str]:
    """Customer IDs: ``CAF`` + 10 digits (West and East) or ``COP`` + 8 digits (East only)."""
    caf = st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: "CAF" + d)
    cop = st.text(_DIGITS, min_size=8, max_size=8).map(lambda d: "COP" + d)
    return caf if operator == "west" else st.one_of(caf, cop)


def invalid_customer_ids() -> st.SearchStrategy[str]:
    """Strings that are not customer IDs: wrong prefix or length, lower case, full width."""
    return st.one_of(
        st.text(_DIGITS, min_size=0, max_size=14)
        .map(lambda d: "CAF" + d)
        .filter(lambda s: len(s) != 13),
        st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: "caf" + d),
        st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: "CAF" + d.translate(_FULL)),
        st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: "CAX" + d),
        st.text(_DIGITS, min_size=10, max_size=10).map(lambda d: " CAF" + d),
        st.text(max_size=20).filter(lambda s: not s.startswith(("CAF", "COP"))),
    )


_FULL = str.maketrans(_DIGITS, "０１２３４５６７８９")


def passport_ids() -> st.SearchStrategy[str]:
    """Passport IDs: 4–60 of ASCII letters, digits and ``- _ . @``."""
    return st.text(_ALNUM + "-_.@", min_size=4, max_size=60)


def invalid_passport_ids() -> st.SearchStrategy[str]:
    """Text that is not a Passport ID: too short, too long, or with a character IDs may not hold."""
    return st.one_of(
        st.text(_ALNUM, max_size=3),
        st.text(_ALNUM, min_size=61, max_size=80),
        st.text(_ALNUM, min_size=3, max_size=10).map(lambda s: s + "!"),
        st.text(_ALNUM, min_size=3, max_size=10).map(lambda s: s + " x"),
        st.text(_ALNUM, min_size=3, max_size=10).map(lambda s: s + "あ"),
    )


def passwords() -> st.SearchStrategy[str]:
    """Passport ID passwords: 4–10 ASCII alphanumerics."""
    return st.text(_ALNUM, min_size=4, max_size=10)


def invalid_passwords(contract: int = 2) -> st.SearchStrategy[str]:
    """Text that is not a password under ``contract`` (4–10 letters and digits under contract
    2, up to 12 from contract 3): too short, too long, a symbol."""
    return st.one_of(
        st.text(_ALNUM, max_size=3),
        st.text(_ALNUM, min_size=11 if contract < 3 else 13, max_size=20),
        st.text(_ALNUM, min_size=3, max_size=8).map(lambda s: s + "-"),
    )


def access_keys() -> st.SearchStrategy[str]:
    """Access keys: 8 ASCII alphanumerics."""
    return st.text(_ALNUM, min_size=8, max_size=8)


def invalid_access_keys() -> st.SearchStrategy[str]:
    """Text that is not an access key [アクセスキー]: not eight letters and digits."""
    return st.one_of(
        st.text(_ALNUM, max_size=7),
        st.text(_ALNUM, min_size=9, max_size=12),
        st.text(_ALNUM, min_size=7, max_size=7).map(lambda s: s + "_"),
    )


def invalid_billing_numbers() -> st.SearchStrategy[str]:
    """Text that is not a billing customer number: not ``00`` followed by eight digits."""
    return st.one_of(
        st.text(_DIGITS, min_size=8, max_size=8).map(lambda d: "01" + d),
        st.text(_DIGITS, min_size=0, max_size=12)
        .map(lambda d: "00" + d)
        .filter(lambda s: len(s) != 10),
    )


def invalid_emails() -> st.SearchStrategy[str]:
    """Text that is not an e-mail address: no ``@``, nothing after it, no domain, a space."""
    return st.one_of(
        st.text(string.ascii_lowercase, min_size=1, max_size=10),  # no @
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: s + "@"),
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: f"{s}@host"),
        st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda s: f"{s} @x.jp"),
    )


def invalid_phones() -> st.SearchStrategy[str]:
    """Text that is not a phone number: too few or many digits, not led by 0, letters."""
    return st.one_of(
        st.text(_DIGITS, min_size=1, max_size=9),
        st.text(_DIGITS, min_size=12, max_size=15),
        st.text(_DIGITS, min_size=9, max_size=10).map(lambda d: "1" + d),  # not 0-led
        st.text(_DIGITS, min_size=4, max_size=4).map(lambda d: f"06-{d}-abcd"),
    )


def emails() -> st.SearchStrategy[str]:
    """Valid e-mail addresses (``local@domain.example.jp``)."""
    local = st.text(string.ascii_lowercase + _DIGITS + "._", min_size=1, max_size=12)
    return st.builds(
        lambda a, b: f"{a}@{b}.example.jp",
        local,
        st.text(string.ascii_lowercase, min_size=1, max_size=8),
    )


def phones() -> st.SearchStrategy[str]:
    """Japanese phone numbers of 10 digits (``03-1234-5678``, ``075-123-4567``)."""
    four = st.text(_DIGITS, min_size=4, max_size=4)
    return st.one_of(
        st.builds(lambda a, b, c: f"0{a}-{b}-{c}", st.sampled_from(["3", "6"]), four, four),
        st.builds(lambda b, c: f"075-{b[:3]}-{c}", four, four),
    )


def applicants() -> st.SearchStrategy[dict[str, Any]]:
    """Applicants of a Passport ID registration, in the contract's JSON form."""
    return st.fixed_dictionaries(
        {
            "name": st.sampled_from(["山田 太郎", "鈴木 花子", "Sato Jiro", "田中"]),
            "phone": phones(),
            "contract_holder": st.booleans(),
        }
    )


def provider_codes() -> st.SearchStrategy[str]:
    """Valid provider codes: one to six upper-case letters and digits."""
    return st.text(string.ascii_uppercase + _DIGITS, min_size=1, max_size=6)


def service_codes() -> st.SearchStrategy[str]:
    """Valid service codes: lower-case letters, digits and ``-`` (not first)."""
    return st.text(string.ascii_lowercase + _DIGITS + "-", min_size=1, max_size=10).filter(
        lambda s: s[0] != "-"
    )


def yen(min_value: int = 0, max_value: int = 100_000) -> st.SearchStrategy[int]:
    """Whole yen as the JSON integer of the contract (at most :data:`~matome.values.MAX_YEN`)."""
    return st.integers(min_value, min(max_value, MAX_YEN))


def invalid_yen() -> st.SearchStrategy[Any]:
    """What an amount is not: floats, negatives, more than 99,999,999 yen, booleans, text."""
    return st.one_of(
        st.floats(allow_nan=False).filter(lambda f: not f.is_integer()),
        st.integers(max_value=-1),
        st.integers(min_value=MAX_YEN + 1),
        st.booleans(),
        st.integers(0, 10_000).map(str),
    )


def quantities() -> st.SearchStrategy[int]:
    """How many of a per-purchase item one purchase buys: 1–99 (rules §4)."""
    return st.integers(1, 99)


def service_periods(pricing: str) -> st.SearchStrategy[dict[str, int]]:
    """The service period a contract-3 ``list_service`` of ``pricing`` may carry (docs/rules.md
    §11), as the fields to add: none, ``period_months`` (monthly-flat) or ``period_days``
    (per-purchase)."""
    if pricing == "monthly":
        field, most = "period_months", MAX_PERIOD_MONTHS
    else:
        field, most = "period_days", MAX_PERIOD_DAYS
    small = st.integers(1, 3) if pricing == "monthly" else st.sampled_from([1, 7, 30])
    return st.one_of(
        st.just({}),
        st.builds(lambda n: {field: n}, st.one_of(small, st.integers(1, most))),
    )


def invalid_quantities() -> st.SearchStrategy[Any]:
    """Quantities a purchase may not carry: 0, negatives, 100 and more, non-integers."""
    return st.one_of(
        st.sampled_from([0, 100]),
        st.integers(max_value=-1),
        st.integers(min_value=100),
        st.sampled_from([1.0, 2.5, "2", True]),
    )


def invalid_times() -> st.SearchStrategy[str]:
    """Aware ISO-8601 times whose Tokyo date lies outside 2000-01-01 … 2099-12-31."""
    return st.one_of(
        st.datetimes(datetime(1999, 1, 1), datetime(1999, 12, 31, 23, 59, 59)),
        st.datetimes(datetime(2100, 1, 1), datetime(2100, 12, 31, 23, 59, 59)),
    ).map(lambda d: d.replace(tzinfo=TOKYO).isoformat())


def invalid_months() -> st.SearchStrategy[str]:
    """Text that is not a billing month ``YYYY-MM``: month 0 or above 12, other separators."""
    return st.one_of(
        st.integers(13, 99).map(lambda m: f"2024-{m:02d}"),
        st.just("2024-00"),
        st.integers(1, 12).map(lambda m: f"2024/{m:02d}"),
        st.integers(1, 12).map(lambda m: f"24-{m}"),
    )


def invalid_cycle_days() -> st.SearchStrategy[Any]:
    """Billing cycle days out of range (below 1, above 28) or not an integer."""
    return st.one_of(st.integers(max_value=0), st.integers(min_value=29), st.just("6"))


def year_months(min_year: int = 2011, max_year: int = 2026) -> st.SearchStrategy[YearMonth]:
    """Billing months from January of ``min_year`` to December of ``max_year``."""
    return st.builds(YearMonth, st.integers(min_year, max_year), st.integers(1, 12))


def billing_accounts(representatives: Sequence[str] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """Billing accounts in the contract's JSON form (consolidated only if representatives)."""
    options = [
        st.builds(
            lambda n, d: {"method": "phone_bill", "number": n, "cycle_start_day": d},
            phones(),
            st.integers(1, 28),
        ),
        st.text(_DIGITS, min_size=8, max_size=8).map(
            lambda d: {"method": "customer_number", "number": "00" + d}
        ),
    ]
    if representatives:
        options.append(
            st.sampled_from(list(representatives)).map(
                lambda r: {"method": "consolidated", "representative": r}
            )
        )
    return st.one_of(options)


def tokyo_times(
    start: datetime = datetime(2023, 1, 1, tzinfo=TOKYO),
    end: datetime = datetime(2025, 12, 31, tzinfo=TOKYO),
) -> st.SearchStrategy[datetime]:
    """Aware times, biased towards Tokyo midnight on the 1st (the billing-month edges)."""
    plain = st.datetimes(
        min_value=start.replace(tzinfo=None), max_value=end.replace(tzinfo=None)
    ).map(lambda d: d.replace(tzinfo=TOKYO))
    edges = st.builds(
        lambda ym, minutes: ym.start() + timedelta(minutes=minutes),
        year_months(start.year, end.year),
        st.integers(-90, 90),
    ).filter(lambda d: start <= d <= end)
    return st.one_of(plain, edges)


def _iso(at: datetime, utc: bool) -> str:
    return (at.astimezone(UTC) if utc else at.astimezone(TOKYO)).isoformat()


def _phc_b64(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode()


def _phc(params: str, salt: bytes, digest: bytes) -> str:
    return f"{params}${_phc_b64(salt)}${_phc_b64(digest)}"


def secret_hashes() -> st.SearchStrategy[str]:
    """Hashes a migration may bring instead of a secret (contract 3, "Credentials at scale"):
    PHC strings of argon2id, scrypt or pbkdf2-sha256 at or above OWASP's minimum parameters,
    with random salts and digests (they match no secret a test would guess)."""
    argon2id = st.sampled_from([(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)]).flatmap(
        lambda mt: st.tuples(
            st.integers(mt[0], mt[0] + 65536), st.integers(mt[1], mt[1] + 3), st.integers(1, 4)
        ).map(lambda m: f"$argon2id$v=19$m={m[0]},t={m[1]},p={m[2]}")
    )
    scrypt = (
        st.sampled_from([(17, 1), (16, 2), (15, 3), (14, 5), (13, 10)])
        .flatmap(
            lambda lp: st.tuples(st.integers(lp[0], 20), st.integers(8, 16), st.integers(lp[1], 16))
        )
        .map(lambda x: f"$scrypt$ln={x[0]},r={x[1]},p={x[2]}")
    )
    pbkdf2 = st.integers(600_000, 2_000_000).map(lambda i: f"$pbkdf2-sha256$i={i}")
    return st.builds(
        _phc,
        st.one_of(argon2id, scrypt, pbkdf2),
        st.binary(min_size=8, max_size=32),
        st.binary(min_size=16, max_size=64),
    )


def invalid_secret_hashes() -> st.SearchStrategy[Any]:
    """What is not such a hash: weaker parameters, another scheme, a clear secret, junk."""
    weak = st.one_of(
        st.integers(1024, 7167).map(lambda m: f"$argon2id$v=19$m={m},t=5,p=1"),
        st.integers(1, 16).map(lambda ln: f"$scrypt$ln={ln},r=1,p=1"),
        st.integers(1, 599_999).map(lambda i: f"$pbkdf2-sha256$i={i}"),
        st.sampled_from(["$argon2i$v=19$m=65536,t=3,p=1", "$pbkdf2-sha1$i=900000"]),
    )
    return st.one_of(
        st.builds(
            _phc, weak, st.binary(min_size=8, max_size=16), st.binary(min_size=16, max_size=32)
        ),
        access_keys(),
        st.text(max_size=20),
        st.integers(),
        st.none().map(lambda _: ["$argon2id$"]),
    )

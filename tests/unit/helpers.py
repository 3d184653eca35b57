"""Small builders for rule tests: a provider, a line and a Passport ID, with explicit times.

Every business time is an ISO string with an offset, written out in the test, so each test reads
like a few lines of command log (no clock, no hidden dates).  The default world is:

* provider ``A`` (information services) listing ``back`` (monthly flat, 525 yen, the guide's
  "back service") and ``item`` (per purchase, 300 yen), registered 2024-01-01;
* NTT West line ``CAF0000000001`` (Hikari Next), cap 10,000 yen, billed by customer number;
* Passport ID ``taro.1`` with password ``Pass1234`` and a 3,000 yen limit, registered 2024-01-05.

Contract 2 (docs/rules.md §2, "Who may do what"): the line holder's commands carry the line's access
key (every line the helpers open has ``KEY``), the Passport ID holder's ``purchase`` and
``cancel`` carry the ID's password (``PW`` by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from matome.commands import CancelResult, PurchaseResult
from matome.engine import Engine
from matome.errors import MatomeError

CID = "CAF0000000001"
CID2 = "CAF0000000002"
EAST_CID = "COP00000001"
PID = "taro.1"
PW = "Pass1234"
#: The access key of every line the helpers open (the line holder's credential, §2).
KEY = "Key12345"
#: A well-formed password that is not ``PW`` (and an access key that is not ``KEY``).
WRONG = "Wrong123"
WRONG_KEY = "Wrong123"
PROVIDER = "A"
MONTHLY = "back"
MONTHLY_PRICE = 525
MONTHLY2 = "anime"
MONTHLY2_PRICE = 300
ITEM = "item"
ITEM_PRICE = 300

T_PROVIDER = "2024-01-01T00:00:00+09:00"
T_LINE = "2024-01-01T00:00:00+09:00"
T_PASSPORT = "2024-01-05T10:00:00+09:00"

BILLING: dict[str, Any] = {"method": "customer_number", "number": "0012345678"}
APPLICANT: dict[str, Any] = {
    "name": "Yamada Taro",
    "phone": "06-1234-5678",
    "contract_holder": True,
}


def add_provider(
    engine: Engine,
    code: str = PROVIDER,
    *,
    at: str = T_PROVIDER,
    goods: str = "information",
) -> None:
    """Register a provider and list its monthly ``back``/``anime`` and per-purchase ``item``."""
    engine.register_provider(
        at=at, provider=code, name=f"{code} Co.", contact="06-1111-2222", goods=goods
    )
    engine.list_service(
        at=at,
        provider=code,
        service=MONTHLY,
        name="back service",
        pricing="monthly",
        price=MONTHLY_PRICE,
    )
    engine.list_service(
        at=at,
        provider=code,
        service=MONTHLY2,
        name="anime 1",
        pricing="monthly",
        price=MONTHLY2_PRICE,
    )
    engine.list_service(
        at=at, provider=code, service=ITEM, name="item", pricing="per_purchase", price=ITEM_PRICE
    )


def open_line(
    engine: Engine,
    customer_id: str = CID,
    *,
    at: str = T_LINE,
    operator: str = "west",
    kind: str = "hikari_next",
    line_limit: int = 10_000,
    billing: Any = None,
) -> None:
    """Open an access line (West Hikari Next, customer-number billing unless told)."""
    engine.open_line(
        at=at,
        customer_id=customer_id,
        operator=operator,
        kind=kind,
        access_key=KEY,
        line_limit=line_limit,
        billing=BILLING if billing is None else billing,
    )


def register(
    engine: Engine,
    passport_id: str = PID,
    *,
    customer_id: str = CID,
    at: str = T_PASSPORT,
    password: str = PW,
    limit: int = 3000,
    line_auth: bool = False,
    via_provider: str | None = None,
    access_key: str | None = KEY,
    key: str | None = None,
) -> None:
    """Register a Passport ID on a line: the line holder's command, with the line's access key
    (a provider registering on the customer's behalf: ``via_provider``, ``access_key=None``)."""
    engine.register_passport(
        at=at,
        customer_id=customer_id,
        passport_id=passport_id,
        password=password,
        email="taro@example.jp",
        applicant=APPLICANT,
        limit=limit,
        line_auth=line_auth,
        via_provider=via_provider,
        access_key=access_key,
        key=key,
    )


def setup_world(
    engine: Engine,
    *,
    line_limit: int = 10_000,
    limit: int = 3000,
    line_auth: bool = False,
) -> None:
    """Provider ``A``, West line ``CID`` and Passport ID ``PID`` (see the module docstring)."""
    add_provider(engine)
    open_line(engine, line_limit=line_limit)
    register(engine, limit=limit, line_auth=line_auth)


def buy(
    engine: Engine,
    at: str,
    service: str = MONTHLY,
    *,
    passport_id: str = PID,
    password: str = PW,
    provider: str = PROVIDER,
    presented_line: str | None = None,
    key: str | None = None,
    quantity: int = 1,
) -> PurchaseResult:
    """Purchase ``service`` of provider ``A`` with the default Passport ID."""
    return engine.purchase(
        at=at,
        passport_id=passport_id,
        password=password,
        provider=provider,
        service=service,
        presented_line=presented_line,
        key=key,
        quantity=quantity,
    )


def cancel(
    engine: Engine, at: str, receipt: str, *, password: str = PW, key: str | None = None
) -> CancelResult:
    """Cancel a subscription with the password of the Passport ID that bought it (§4, §10)."""
    return engine.cancel(at=at, receipt=receipt, password=password, key=key)


def event_count(engine: Engine) -> int:
    """How many events the store holds (the position of the latest notification)."""
    return engine.internals.recorder.max_notification_id() or 0


def topics_since(engine: Engine, position: int) -> list[str]:
    """The topics of the events recorded after ``position``."""
    return [
        n.topic
        for n in engine.internals.recorder.select_notifications(
            start=position, limit=10**9, inclusive_of_start=False
        )
    ]


@contextmanager
def refused(engine: Engine, error: type[MatomeError]) -> Iterator[pytest.ExceptionInfo[Any]]:
    """Expect ``error`` and check that the refused command wrote nothing (docs/contract.md
    "Results")."""
    before = event_count(engine)
    with pytest.raises(error) as info:
        yield info
    assert type(info.value) is error, f"expected {error.code}, got {info.value!r}"
    assert event_count(engine) == before, "a refused command must write nothing"

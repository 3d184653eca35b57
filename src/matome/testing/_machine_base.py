"""The state machine's shared part: its state, its seams for subclasses, how a step is applied
to both sides and its credentials drawn, and the checks (invariants and the end-of-run ones);
see :mod:`matome.testing.machine`."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any, ClassVar

from hypothesis import currently_in_test_context, note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant

from matome.application.eventstore import EventMapper, event_to_json, personal_fields
from matome.charging import last_charged_month
from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import MatomeError
from matome.events.base import DomainEvent
from matome.policy import DEFAULT_POLICY, Policy
from matome.testing.model import ReferenceModel
from matome.testing.strategies import service_periods
from matome.values import TOKYO, YearMonth
from matome.wire import dumps, to_json

#: Prices and limits are commensurable so that purchases often land exactly on a limit (§3).
_PRICES = [100, 300, 500, 525]
#: Credentials nobody was given: valid in form, wrong in fact.
WRONG_PASSWORD = "Wrong000"
WRONG_ACCESS_KEY = "Wrong123"
#: A customer ID no line has (a purchase "over" it fails line authentication).
NOWHERE = "CAF9999999999"
_KINDS = {
    "west": ["hikari_next", "hikari_light"],
    "east": ["hikari_next", "hikari_light", "hikari_light_plus", "b_flets", "flets_adsl"],
}


def _keyed_with_password(command: dict[str, Any]) -> bool:
    return "key" in command and command["command"] in ("purchase", "cancel")


class Disagreement(AssertionError):
    """The engine and the reference model (or an invariant) disagree."""


class _MachineBase(RuleBasedStateMachine):
    """The engine, the model, what the run has made so far, and the checks; the rules are in
    :class:`~matome.testing.machine.BillingMachine` and its mixins."""

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
        self.operators: dict[str, str] = {}
        self.access_keys: dict[str, str] = {}  # line -> its access key
        self.passports: dict[str, str] = {}  # passport -> its line
        self.passwords: dict[str, str] = {}
        self.receipts: list[str] = []
        self.bought: dict[str, tuple[str, int, int]] = {}  # receipt -> (passport, price, qty)
        self.services: list[tuple[str, str, str, int]] = []
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

    def new_passwords(self, usual: list[str], pid: str | None = None) -> list[str]:
        """New passwords to draw from: under contract 3 also one of 12 characters, a
        digits-only one and the ID's current one (docs/rules.md §10: the last two refused)."""
        if self.contract < 3:
            return usual
        current = [self.passwords[pid]] if pid in self.passwords else []
        return [*usual, "Twelve12char", "12345678", *current]

    @property
    def contract(self) -> int:
        """The contract the machine's logs are written to (the policy's; docs/rules.md §11)."""
        return self.policy.contract

    def consent(self, command: dict[str, Any], data: st.DataObject | None = None) -> None:
        """Contract 3: a registration carries ``terms_consent`` — true, or now and then false
        or left out (``consent_required``)."""
        if self.contract < 3:
            return
        given = True if data is None else data.draw(st.sampled_from([True] * 4 + [False, None]))
        if given is not None:
            command["terms_consent"] = given

    def period(self, listing: dict[str, Any], data: st.DataObject) -> None:
        """Contract 3: a listing now and then sets a service period (docs/rules.md §11) — a few
        billing months for a monthly-flat service, a few days for an item."""
        if self.contract >= 3:
            listing.update(data.draw(service_periods(listing["pricing"])))

    # Applying a command to both sides

    def apply(self, command: dict[str, Any]) -> dict[str, Any] | None:
        """Apply one command-log object to the engine and the model; they must agree."""
        result, _ = self.apply_coded(command)
        return result

    def apply_coded(self, command: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """:meth:`apply`, also answering the refusal's error code (``None`` when accepted)."""
        command = dict(command)
        self.log.append(command)
        if currently_in_test_context():  # the machine also replays logs outside a test
            note(json.dumps(command, ensure_ascii=False))
        parsed = parse_command(command, self.contract)
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
        if result is not None:  # a refused command changes no bill
            self.touched |= self._lines_of(command)
        return result, code

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

    # Credentials

    def key_of(self, line: str, data: st.DataObject) -> str:
        """The line's access key — or, now and then, a wrong one (``wrong_access_key``)."""
        right = data.draw(st.sampled_from([True] * 5 + [False]), label="right access key")
        return self.access_keys.get(line, "Key00000") if right else WRONG_ACCESS_KEY

    def password_of(self, pid: str, data: st.DataObject) -> str:
        """The ID's password — or, now and then, a wrong one (``wrong_password``, counted)."""
        right = data.draw(st.sampled_from([True] * 3 + [False]), label="right password")
        return self.passwords[pid] if right else WRONG_PASSWORD

    def came_over(self, pid: str, data: st.DataObject) -> str | None:
        """The line a purchase came over: mostly the ID's own; another, or none (§9)."""
        how = data.draw(st.sampled_from(["own", "own", "own", "other", "none"]), label="over")
        if how == "own":
            return self.passports[pid]
        if how == "other":
            others = [line for line in self.lines if line != self.passports[pid]]
            return data.draw(st.sampled_from([*others, NOWHERE]), label="other line")
        return None

    # Purchases, with the credential invariants (§9, §10)

    def buy(self, command: dict[str, Any], data: st.DataObject) -> str | None:
        """Apply a purchase; check the invariants a purchase must keep; return its receipt."""
        pid = command["passport_id"]
        before = self.engine.passport(pid)
        line_before = self.engine.line(self.passports[pid]) if pid in self.passports else None
        result, code = self.apply_coded(self.stamp(command, data))
        after = self.engine.passport(pid)
        if code == "line_auth_failed" and (
            before is None
            or after is None
            or after.consecutive_failures != before.consecutive_failures
        ):
            raise Disagreement(f"a line-authentication failure changed {pid}'s failure count")
        if result is None:
            return None
        receipt = str(result["receipt"])
        # §10: a locked ID never buys.
        if before is not None and before.locked:
            raise Disagreement(f"locked Passport ID {pid} bought {receipt}")
        # §5: no purchase on a regulated line.
        if line_before is not None and line_before.regulated:
            raise Disagreement(f"purchase accepted on regulated line {self.passports[pid]}")
        # §3: an accepted purchase keeps the month's spend within the limit.
        if after is None:
            raise Disagreement(f"{pid} bought but has no state")
        month = YearMonth.of(self.now)
        spend = after.spend(month, once_per_month=self.engine_policy().monthly_once_per_month)
        if spend > after.limit:
            raise Disagreement(f"{pid} spent {spend} in {month}, above its limit {after.limit}")
        self.receipts.append(receipt)
        price = next(
            s[3] for s in self.services if (s[0], s[1]) == (command["provider"], command["service"])
        )
        self.bought[receipt] = (pid, price, command.get("quantity", 1))
        return receipt

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

    def _check_bill(self, line: str, month: YearMonth, *, statement: bool = False) -> None:
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
        if statement:
            rows = to_json(self.engine.statement(line, month, per_page=500))["rows"]
            if sum(r["amount"] for r in rows) != bill["subtotal"]:
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
            if sub is not None and sub.ends_at is not None:
                last = last_charged_month(sub.purchased_at, sub.ends_at)
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
            # Hypothesis tears down in a ``finally``: after a failed step, report that step's
            # failure rather than what the end-of-run checks make of the broken state.
            if self.steps and sys.exc_info()[0] is None:
                self._check_every_bill()
                self._check_views_and_log()
        finally:
            self.engine.close()

    def _check_every_bill(self) -> None:
        """Every line's bill of every month seen, and its statement, once at the end (the
        steps check the months a command can change, on the lines it touched)."""
        for line in self.model.lines():
            for month in self.model.months():
                self._check_bill(line, month, statement=True)

    def _check_views_and_log(self) -> None:
        projection, _ = self.engine.internals.views
        projection.catch_up()
        incremental = projection.dump()
        projection.rebuild()
        if projection.dump() != incremental:
            raise Disagreement("incremental views differ from rebuilt views")
        mapper = self.engine.internals.mapper
        if not isinstance(mapper, EventMapper):
            raise Disagreement(f"the engine's mapper is a {type(mapper).__name__}")
        for n in self.engine.internals.recorder.select_notifications(start=1, limit=10**9):
            event = mapper.to_domain_event(n)
            if not isinstance(event, DomainEvent):
                raise Disagreement(f"event {n.id} is not a matome event")
            again = mapper.to_domain_event(mapper.to_stored_event(event))
            # Personal values are stored apart (a reference and a salted digest in the event).
            personal = personal_fields(type(event))
            stored = {k: v for k, v in mapper.stored_state(n).items() if k not in personal}
            state = {k: v for k, v in event_to_json(event).items() if k not in personal}
            if again != event or dumps(state) != dumps(stored):
                raise Disagreement(f"event {n.id} ({n.topic}) does not round-trip")

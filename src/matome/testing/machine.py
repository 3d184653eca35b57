"""A Hypothesis ``RuleBasedStateMachine`` running the engine and the reference model side by side.

After every step it checks that both made the same decision (accepted, or refused with the same
error code), that both bill every line the same for every month, and matome's invariants:

* the sum of a line's ID limits never exceeds its cap (§3);
* an accepted purchase never takes an ID's monthly spend above its limit (§3);
* no purchase is accepted on a regulated line (§5);
* a locked Passport ID never buys, and a purchase refused by line authentication never changes
  the ID's count of wrong passwords (§9, §10);
* no subscription is charged after its last charged month, and a monthly service is charged
  at most once per Passport ID per month (§4);
* a bill's subtotal == the sum of its rows == the sum of its statement amounts (§7);

and, at the end of each run, every line's bill of every month again, that the incremental views
equal rebuilt ones and that every stored event round-trips through the converter.

The steps speak contract 2: the line holder's commands carry the line's access key and
purchases and cancellations the Passport ID's password — mostly right, sometimes wrong (and now
and then ten wrong ones in a row); purchases come over the ID's own line, another line or none
(line authentication), buy per-purchase items by the dozen, and the operator resets passwords
and sets fees.

Every step is noted as a command-log line, so a failure prints a short JSON Lines log that a
person can replay with ``matome run``.  Use it directly::

    from matome.testing.machine import BillingMachine
    TestBilling = BillingMachine.TestCase

or subclass it to change the engine (``make_engine``) or the policy.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from hypothesis import currently_in_test_context, note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from matome.application.eventstore import EventMapper, event_to_json, personal_fields
from matome.charging import last_charged_month
from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import MatomeError
from matome.events.base import DomainEvent
from matome.policy import DEFAULT_POLICY, Policy
from matome.testing.model import ReferenceModel
from matome.testing.strategies import billing_accounts, service_periods
from matome.values import TOKYO, YearMonth
from matome.wire import dumps, to_json

__all__ = ["BillingMachine", "Disagreement"]

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
                listing = {
                    "command": "list_service",
                    "at": self.now.isoformat(),
                    "provider": code,
                    "service": f"s{j}",
                    "name": f"service {j}",
                    "pricing": pricing,
                    "price": price,
                }
                self.period(listing, data)
                self.apply(listing)

    @initialize(data=st.data())
    def first_customer(self, data: st.DataObject) -> None:
        """Every run starts with one line and one Passport ID, so purchases come early."""
        self.opened += 1
        line = f"CAF{self.opened:010d}"
        operator = data.draw(st.sampled_from(["west", "east"]))
        self.apply(
            {
                "command": "open_line",
                "at": self.now.isoformat(),
                "customer_id": line,
                "operator": operator,
                "kind": "hikari_next",
                "access_key": "Key00001",
                "line_limit": 5000,
                "billing": {"method": "customer_number", "number": "0012345678"},
            }
        )
        self.lines.append(line)
        self.operators[line] = operator
        self.access_keys[line] = "Key00001"
        first = "pass1" if self.contract < 3 else "Pass1word"  # contract 3: 8–12 characters
        self.passwords["user0"] = first
        registration = {
            "command": "register_passport",
            "at": self.now.isoformat(),
            "customer_id": line,
            "access_key": "Key00001",
            "passport_id": "user0",
            "password": first,
            "email": "user0@example.jp",
            "applicant": {"name": "山田", "phone": "06-1234-5678", "contract_holder": True},
            "limit": data.draw(st.sampled_from([600, 1000, 2000])),
            "line_auth": data.draw(st.booleans()),
        }
        self.consent(registration)
        self.apply(registration)
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
        key = f"Key{self.opened:05d}"
        result = self.apply(
            self.stamp(
                {
                    "command": "open_line",
                    "customer_id": cid,
                    "operator": operator,
                    "kind": data.draw(st.sampled_from(_KINDS[operator])),
                    "access_key": key,
                    "line_limit": data.draw(st.sampled_from([2000, 5000, 10000])),
                    "billing": data.draw(billing_accounts(self.lines)),
                },
                data,
            )
        )
        if result is not None:
            self.lines.append(cid)
            self.operators[cid] = operator
            self.access_keys[cid] = key

    @precondition(lambda self: self.lines)
    @rule(data=st.data())
    def register_passport(self, data: st.DataObject) -> None:
        line = data.draw(st.sampled_from(self.lines))
        pid = f"user{len(self.passwords) + 1}"
        password = data.draw(st.sampled_from(self.new_passwords(["pass1", "Secret99"])))
        self.passwords[pid] = password
        phones = ["06-1234-5678"] + (["0120-1234-5678"] if self.contract >= 3 else [])
        command = {
            "command": "register_passport",
            "customer_id": line,
            "access_key": self.key_of(line, data),
            "passport_id": pid,
            "password": password,
            "email": f"{pid}@example.jp",
            "applicant": {
                "name": "山田",
                "phone": data.draw(st.sampled_from(phones), label="phone"),
                "contract_holder": True,
            },
            "limit": data.draw(st.sampled_from([300, 600, 1000, 2000])),
            # On a line of another kind than Hikari, line authentication is invalid_input.
            "line_auth": data.draw(st.sampled_from([False, True])),
        }
        if data.draw(st.integers(0, 5), label="via provider") == 0:
            command["via_provider"] = data.draw(
                st.sampled_from(sorted({s[0] for s in self.services}))
            )
            if data.draw(st.booleans(), label="without a key"):
                del command["access_key"]
        self.consent(command, data)
        if self.apply(self.stamp(command, data)) is not None:
            self.passports[pid] = line

    @precondition(lambda self: self.passports and self.services)
    @rule(data=st.data())
    def purchase(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        provider, service, pricing, _ = data.draw(st.sampled_from(self.services))
        command: dict[str, Any] = {
            "command": "purchase",
            "passport_id": pid,
            "password": self.password_of(pid, data),
            "provider": provider,
            "service": service,
        }
        presented = self.came_over(pid, data)
        if presented is not None:
            command["presented_line"] = presented
        # §4: per-purchase items by the dozen; a monthly service only one at a time.
        quantities = [1, 1, 1, 1, 1, 2] if pricing == "monthly" else [1, 1, 2, 10]
        quantity = data.draw(st.sampled_from(quantities), label="quantity")
        if quantity != 1:
            command["quantity"] = quantity
        self.buy(command, data)

    @precondition(lambda self: self.passports and self.services)
    @rule(data=st.data(), n=st.integers(1, 10))
    def wrong_passwords_in_a_row(self, data: st.DataObject, n: int) -> None:
        """§10: ``n`` wrong passwords on one ID (ten lock it), some over another line (§9)."""
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        provider, service, _, _ = data.draw(st.sampled_from(self.services))
        for _ in range(n):
            command = {
                "command": "purchase",
                "passport_id": pid,
                "password": WRONG_PASSWORD,
                "provider": provider,
                "service": service,
            }
            presented = self.came_over(pid, data)
            if presented is not None:
                command["presented_line"] = presented
            self.buy(command, data)

    # Scenario rules: the situations where billing rules bite (§4, §5), built on purpose so
    # that a broken rule is found in a few examples rather than by luck.

    def _monthly_services(self) -> list[tuple[str, str, str, int]]:
        return [s for s in self.services if s[2] == "monthly"]

    def _subscribe(self, data: st.DataObject) -> str | None:
        pid = data.draw(st.sampled_from(sorted(self.passports)), label="passport")
        provider, service, _, _ = data.draw(st.sampled_from(self._monthly_services()))
        return self.buy(
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

    def _cancel(self, receipt: str, data: st.DataObject, *, right: bool = True) -> None:
        pid = self.bought[receipt][0]
        password = self.password_of(pid, data) if right else WRONG_PASSWORD
        self.apply(
            self.stamp({"command": "cancel", "receipt": receipt, "password": password}, data)
        )

    @precondition(lambda self: self.passports and self._monthly_services())
    @rule(data=st.data(), minutes=st.integers(-40, 600))
    def cancel_around_the_first(self, data: st.DataObject, minutes: int) -> None:
        """§4 pattern 6 and the Tokyo-midnight edge: subscribe, then cancel near the next 1st."""
        receipt = self._subscribe(data)
        if receipt is None:
            return
        edge = YearMonth.of(self.now).next().start()
        self.now = max(self.now, edge + timedelta(minutes=minutes))
        self._cancel(receipt, data)

    @precondition(lambda self: self.passports and self._monthly_services())
    @rule(data=st.data())
    def cancel_and_buy_again(self, data: st.DataObject) -> None:
        """§4 patterns 4–5: a monthly service cancelled and bought again within one month."""
        receipt = self._subscribe(data)
        if receipt is None:
            return
        sub = self.engine.subscription(receipt)
        self.now += timedelta(minutes=data.draw(st.integers(1, 300)))
        self._cancel(receipt, data)
        if sub is not None:
            pid = sub.passport_id.value
            self.buy(
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
    @rule(data=st.data(), right=st.sampled_from([True, True, True, False]))
    def cancel(self, data: st.DataObject, right: bool) -> None:
        """Cancel with the buyer's password (or a wrong one, counted on the buyer's ID)."""
        self._cancel(data.draw(st.sampled_from(self.receipts)), data, right=right)

    @precondition(lambda self: self.receipts)
    @rule(data=st.data(), how_much=st.sampled_from(["some", "price", "over", "twice", "all"]))
    def refund(self, data: st.DataObject, how_much: str) -> None:
        """§4: refunds up to what was charged so far — around the price of one charge."""
        receipt = data.draw(st.sampled_from(self.receipts))
        _, price, quantity = self.bought[receipt]
        amount = {
            "some": 50,
            "price": price,
            "over": price + 1,
            "twice": 2 * price,
            "all": price * quantity,
        }[how_much]
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
                {
                    "command": "change_passport_limit",
                    "passport_id": pid,
                    "access_key": self.key_of(self.passports[pid], data),
                    "limit": limit,
                },
                data,
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
                    "access_key": self.key_of(line, data),
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
    @rule(data=st.data(), line_auth=st.sampled_from([None, None, True, False]))
    def change_passport_details(self, data: st.DataObject, line_auth: bool | None) -> None:
        """A new password (it unlocks, §10) and/or line authentication (§9), by the holder."""
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        password = data.draw(
            st.sampled_from([*self.new_passwords(["pass1", "Newpass2"], pid), None])
        )
        command: dict[str, Any] = {
            "command": "change_passport_details",
            "passport_id": pid,
            "access_key": self.key_of(self.passports[pid], data),
        }
        if password is not None:
            command["password"] = password
        if line_auth is not None:
            command["line_auth"] = line_auth
        if password is None and line_auth is None:
            command["email"] = f"new.{pid}@example.jp"
        if self.apply(self.stamp(command, data)) is not None and password is not None:
            self.passwords[pid] = password

    @precondition(lambda self: self.passports)
    @rule(data=st.data(), channel=st.sampled_from(["phone", "written"]))
    def reset_password(self, data: st.DataObject, channel: str) -> None:
        """§10: the operator's recovery of a locked or forgotten password."""
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        password = data.draw(st.sampled_from(self.new_passwords(["pass1", "Reset777"], pid)))
        command = {
            "command": "reset_password",
            "passport_id": pid,
            "password": password,
            "channel": channel,
        }
        if self.apply(self.stamp(command, data)) is not None:
            self.passwords[pid] = password

    @precondition(lambda self: self.passwords)
    @rule(data=st.data())
    def erase_personal_data(self, data: st.DataObject) -> None:
        """The applicant's data erased on request (also of a deleted ID); bills stay."""
        pid = data.draw(st.sampled_from(sorted(self.passwords)))
        self.apply(
            self.stamp(
                {"command": "erase_personal_data", "passport_id": pid, "reason": "本人からの請求"},
                data,
            )
        )

    @precondition(lambda self: self.passports)
    @rule(data=st.data())
    def delete_passport(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.passports)))
        command = {
            "command": "delete_passport",
            "passport_id": pid,
            "access_key": self.key_of(self.passports[pid], data),
        }
        if self.apply(self.stamp(command, data)) is not None:
            del self.passports[pid]

    @rule(
        data=st.data(),
        operator=st.sampled_from(["east", "west"]),
        months_ahead=st.integers(-2, 1),
        fee=st.sampled_from([30, 45]),
    )
    def set_fee(self, data: st.DataObject, operator: str, months_ahead: int, fee: int) -> None:
        """§8: the operator sets the 2012 flat fee, from an open (or a closed) month on."""
        month = YearMonth.of(self.now)
        for _ in range(abs(months_ahead)):
            month = month.next() if months_ahead > 0 else month.previous()
        self.apply(
            self.stamp(
                {
                    "command": "set_fee",
                    "operator": operator,
                    "effective_from": str(month),
                    "flat_fee": fee,
                },
                data,
            )
        )

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
            command["new_kind"] = data.draw(st.sampled_from(["hikari_next", "hikari_light"]))
        elif change == "item_change" and data.draw(st.booleans(), label="new kind"):
            # Also Hikari Next ⇄ Light, which an item change may not do (§6: invalid_input).
            command["new_kind"] = data.draw(st.sampled_from(_KINDS[self.operators[line]]))
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
            # The line carries on under its new customer ID, with its access key.
            self.lines.append(new_cid)
            self.operators[new_cid] = self.operators[line]
            self.access_keys[new_cid] = self.access_keys[line]
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
        """The same key and body again: the first result (or counted refusal), nothing new."""
        keyed = [c for c in self.log if "key" in c]
        self.apply(data.draw(st.sampled_from(keyed)))

    @precondition(lambda self: any("key" in c for c in self.log))
    @rule(data=st.data(), wrong=st.booleans())
    def reuse_key(self, data: st.DataObject, wrong: bool) -> None:
        """A key bound to another body: every check runs, the credential's first (§10)."""
        keyed = [c for c in self.log if "key" in c]
        command = {**data.draw(st.sampled_from(keyed)), "at": self.now.isoformat()}
        if command["command"] in ("purchase", "cancel") and wrong:
            command["password"] = WRONG_PASSWORD
        elif "access_key" in command and command["command"] != "open_line" and wrong:
            command["access_key"] = WRONG_ACCESS_KEY
        self.apply(command)

    @precondition(lambda self: any(_keyed_with_password(c) for c in self.log))
    @rule(data=st.data())
    def guess_under_key(self, data: st.DataObject) -> None:
        """Contract 3: a keyed body replayed, at its own time, with another password — the
        right one, an old one, or a guess: the secret is checked and counted first."""
        command = dict(data.draw(st.sampled_from([c for c in self.log if _keyed_with_password(c)])))
        guesses = {WRONG_PASSWORD, "Guess999", command["password"], *self.passwords.values()}
        command["password"] = data.draw(st.sampled_from(sorted(guesses)), label="password")
        self.apply(command)

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

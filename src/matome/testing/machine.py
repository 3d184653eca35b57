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

Its parts live in private siblings: ``_machine_base`` (state, seams, applying a step, the
checks) and ``_machine_changes`` (the rules that change lines, IDs and fees, close months and
replay keyed commands).
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

import argon2
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from matome.testing._machine_base import (
    _KINDS,
    _PRICES,
    WRONG_PASSWORD,
    Disagreement,
)
from matome.testing._machine_base import NOWHERE as NOWHERE
from matome.testing._machine_base import WRONG_ACCESS_KEY as WRONG_ACCESS_KEY
from matome.testing._machine_changes import _ChangeRules
from matome.testing.strategies import billing_accounts
from matome.values import YearMonth


@functools.cache
def migrated_hash(secret: str) -> str:
    """Another system's hash of ``secret``, as a migration brings it (contract 3,
    "Credentials at scale"): Argon2id at OWASP's minimum, made with argon2-cffi directly."""
    return argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(secret)


__all__ = ["BillingMachine", "Disagreement"]


class BillingMachine(_ChangeRules):
    """Engine vs reference model; see the module docstring."""

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
        command: dict[str, Any] = {
            "command": "open_line",
            "customer_id": cid,
            "operator": operator,
            "kind": data.draw(st.sampled_from(_KINDS[operator])),
            "access_key": key,
            "line_limit": data.draw(st.sampled_from([2000, 5000, 10000])),
            "billing": data.draw(billing_accounts(self.lines)),
        }
        if self.contract >= 3 and data.draw(st.integers(0, 3), label="migrated key") == 0:
            # The key's hash from the system migrated from: the key still opens the line.
            del command["access_key"]
            command["access_key_hash"] = migrated_hash(key)
        result = self.apply(self.stamp(command, data))
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
        if self.contract >= 3 and data.draw(st.integers(0, 3), label="migrated password") == 0:
            # The password's hash from the system migrated from: it still opens the ID.
            del command["password"]
            command["password_hash"] = migrated_hash(password)
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

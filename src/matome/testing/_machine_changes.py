"""The state machine's rules that change what exists: ID and line limits, regulation,
notification, billing, an ID's details and password, erasure, deletion, fees, line changes,
closing months, and replays under idempotency keys; see :mod:`matome.testing.machine`."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from matome.testing._machine_base import (
    _KINDS,
    WRONG_ACCESS_KEY,
    WRONG_PASSWORD,
    _keyed_with_password,
    _MachineBase,
)
from matome.values import YearMonth


class _ChangeRules(_MachineBase):
    """Rules that change lines, IDs and fees, close months and replay keyed commands."""

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

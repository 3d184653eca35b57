"""Hypothesis strategies for realistic command logs (and how to print one); see
:mod:`matome.testing.strategies`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from matome.aggregates.subscription import receipt_number
from matome.testing._command_strategies import (
    _EAST_KINDS,
    _HIKARI,
)
from matome.testing._value_strategies import (
    _iso,
    billing_accounts,
)
from matome.values import TOKYO, YearMonth

# ---------------------------------------------------------------------------------------------
# Realistic command logs


def predicted_receipt(passport_id: str, n: int) -> str:
    """The receipt number the engine gives the ``n``-th accepted purchase of an ID."""
    return receipt_number(passport_id, n)


_ACTIONS = (
    ("purchase", 30),
    ("register_passport", 8),
    ("cancel", 8),
    ("refund", 3),
    ("wrong_password", 3),
    ("wrong_access_key", 2),
    ("reset_password", 2),
    ("erase_personal_data", 1),
    ("change_passport_limit", 3),
    ("change_line_limit", 2),
    ("regulate_line", 2),
    ("lift_regulation", 2),
    ("set_notification", 2),
    ("change_billing", 2),
    ("change_passport_details", 2),
    ("delete_passport", 1),
    ("change_line", 3),
    ("set_fee", 1),
    ("issue_bills", 2),
    ("retry", 3),
    ("reuse_key", 1),
    ("open_line", 2),
)
#: A password nobody was given (valid in form, wrong in fact).
WRONG_PASSWORD = "Wrong000"
#: An access key no line was given (valid in form, wrong in fact).
WRONG_ACCESS_KEY = "Wrong123"
#: From this business time customers no longer change their IDs' details (rules §2).
_CUTOFF = datetime(2024, 12, 1, tzinfo=TOKYO)


@st.composite
def command_logs(
    draw: st.DrawFn,
    *,
    min_steps: int = 1,
    max_steps: int = 40,
    start: datetime = datetime(2024, 1, 1, 9, 0, tzinfo=TOKYO),
    keys: bool = True,
) -> list[dict[str, Any]]:
    """A realistic command log (JSON objects in order).

    Providers and services are listed first, lines opened before use, IDs registered before
    purchases; business times only move forward, spread over months and biased towards Tokyo
    midnight; regulation, lifting, line changes (also of the line's kind), deletions, refunds,
    limit changes, password resets, erasures of personal data, fee settings, idempotent retries
    (and keys reused for another body) and bill issuing are mixed in.  Credentials are those
    of contract 2: the line holder's commands carry the line's access key, purchases and
    cancellations the password of the Passport ID — mostly right, sometimes wrong.  Some
    commands are refused by the rules — that is part of the history — but none is malformed.
    ``cancel`` and ``refund`` name a purchase by the reference it was given, or by its receipt
    predicted from the purchases so far (:func:`predicted_receipt`).
    """
    log: list[dict[str, Any]] = []
    now = start
    n_providers = draw(st.integers(1, 3))
    providers: list[str] = [f"P{i}" for i in range(n_providers)]
    services: list[tuple[str, str, str, int]] = []
    for code in providers:
        log.append(
            {
                "command": "register_provider",
                "at": now.isoformat(),
                "provider": code,
                "name": f"{code} Co.",
                "contact": "0120-000-000",
                "goods": draw(st.sampled_from(["information"] * 3 + ["physical"])),
            }
        )
        for j in range(draw(st.integers(1, 3))):
            pricing = draw(st.sampled_from(["monthly", "per_purchase"]))
            price = draw(st.sampled_from([100, 300, 525, 980, 1500]))
            services.append((code, f"s{j}", pricing, price))
            log.append(
                {
                    "command": "list_service",
                    "at": now.isoformat(),
                    "provider": code,
                    "service": f"s{j}",
                    "name": f"service {j}",
                    "pricing": pricing,
                    "price": price,
                }
            )
    lines: list[str] = []
    operator_of: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    key_of: dict[str, str] = {}  # the line's access key
    passports: dict[str, str] = {}  # passport -> line
    password: dict[str, str] = {}
    bought: dict[str, int] = {}
    receipts: list[str] = []
    buyer: dict[str, str] = {}  # receipt -> passport
    refs: dict[str, str] = {}  # the client's reference -> the receipt it names
    sent: list[dict[str, Any]] = []
    opened = 0  # customer IDs are never reused

    def stamp(command: dict[str, Any]) -> dict[str, Any]:
        utc = draw(st.booleans())
        command["at"] = _iso(now, utc)
        if keys and draw(st.integers(0, 4)) == 0:
            command["key"] = f"k{len(log)}"
        return command

    def new_customer_id() -> str:
        nonlocal opened
        opened += 1
        return f"CAF{opened:010d}"

    def open_line() -> dict[str, Any]:
        operator = draw(st.sampled_from(["west", "east"]))
        cid = new_customer_id()
        lines.append(cid)
        operator_of[cid] = operator
        kind_of[cid] = draw(st.sampled_from(_EAST_KINDS if operator == "east" else _HIKARI[:2]))
        key_of[cid] = f"Key{opened:05d}"
        return {
            "command": "open_line",
            "customer_id": cid,
            "operator": operator,
            "kind": kind_of[cid],
            "access_key": key_of[cid],
            "line_limit": draw(st.sampled_from([3000, 5000, 10000, 30000])),
            "billing": draw(billing_accounts(lines[:-1])),
        }

    def register(line: str) -> dict[str, Any]:
        pid = f"id{len(password) + 1}.{draw(st.sampled_from(['a', 'b']))}"
        passports[pid] = line
        password[pid] = draw(st.sampled_from(["pass1", "Secret99"]))
        command = {
            "command": "register_passport",
            "customer_id": line,
            "access_key": key_of[line],
            "passport_id": pid,
            "password": password[pid],
            "email": f"{pid}@example.jp",
            "applicant": {"name": "山田", "phone": "06-1234-5678", "contract_holder": True},
            "limit": draw(st.sampled_from([500, 1000, 2000, 5000])),
            # §9: line authentication exists on Hikari lines only.
            "line_auth": kind_of[line] in _HIKARI and draw(st.sampled_from([False] * 3 + [True])),
        }
        if draw(st.integers(0, 5)) == 0:  # a provider registers it on the customer's behalf
            command["via_provider"] = draw(st.sampled_from(providers))
            if draw(st.booleans()):
                del command["access_key"]
        return command

    def purchase(pid: str, secret: str) -> dict[str, Any]:
        provider, service, pricing, _ = draw(st.sampled_from(services))
        command: dict[str, Any] = {
            "command": "purchase",
            "passport_id": pid,
            "password": secret,
            "provider": provider,
            "service": service,
        }
        if pricing == "per_purchase" and draw(st.integers(0, 3)) == 0:
            command["quantity"] = draw(st.sampled_from([2, 3, 10]))
        if draw(st.integers(0, 2)) == 0:  # the client's own name for it
            command["ref"] = f"order-{len(log)}"
        came_over = draw(st.sampled_from(["own", "own", "own", "unknown", "other"]))
        if came_over == "own":
            command["presented_line"] = passports[pid]
        elif came_over == "other":
            command["presented_line"] = draw(st.sampled_from(lines))
        return command

    def change_line(line: str) -> dict[str, Any]:
        change = draw(
            st.sampled_from(
                ["relocation", "rename", "item_change", "menu_change", "cancellation", "transfer"]
            )
        )
        kind = kind_of[line]
        if change == "menu_change" and kind not in _HIKARI[:2]:
            change = "rename"
        command: dict[str, Any] = {"command": "change_line", "customer_id": line, "change": change}
        if change == "menu_change":
            command["new_kind"] = "hikari_light" if kind == "hikari_next" else "hikari_next"
        elif change == "item_change" and draw(st.sampled_from([True, True, False])):
            # §6: an item change never switches Hikari Next ⇄ Hikari Light (a menu change).
            kinds = _EAST_KINDS if operator_of[line] == "east" else _HIKARI[:2]
            command["new_kind"] = draw(
                st.sampled_from([k for k in kinds if {k, kind} != {"hikari_next", "hikari_light"}])
            )
        kind_of[line] = command.get("new_kind", kind)
        renumbered = change in ("relocation", "transfer") and draw(st.booleans())
        if renumbered:
            new_cid = new_customer_id()
            lines.append(new_cid)
            command["new_customer_id"] = new_cid
            # The line carries on under its new customer ID, with its access key.
            operator_of[new_cid], kind_of[new_cid] = operator_of[line], kind_of[line]
            key_of[new_cid] = key_of[line]
        if renumbered or change in ("cancellation", "transfer", "menu_change"):
            # The service ends: the line's IDs are deleted (§6).
            for gone in [p for p, owner in passports.items() if owner == line]:
                del passports[gone]
        if (renumbered or change == "cancellation") and len(lines) > 1:
            lines.remove(line)
        return command

    def name_purchase() -> dict[str, str]:
        """A purchase named by its (predicted) receipt, or by the reference it was given."""
        if bool(refs) and draw(st.booleans()):
            return {"purchase_ref": draw(st.sampled_from(sorted(refs)))}
        return {"receipt": draw(st.sampled_from(receipts))}

    def named(command: dict[str, Any]) -> str:
        return str(command["receipt"] if "receipt" in command else refs[command["purchase_ref"]])

    def wrong_access_key(line: str, pid: str | None) -> dict[str, Any]:
        commands: list[dict[str, Any]] = [
            {
                "command": "set_notification",
                "customer_id": line,
                "access_key": WRONG_ACCESS_KEY,
                "provider": draw(st.sampled_from(providers)),
                "notify": True,
                "consent": True,
                "channel": "web",
            }
        ]
        if pid is not None:
            commands += [
                {"command": "delete_passport", "passport_id": pid},
                {"command": "change_passport_limit", "passport_id": pid, "limit": 300},
            ]
            commands = [{**c, "access_key": WRONG_ACCESS_KEY} for c in commands]
        return draw(st.sampled_from(commands))

    log.append(stamp(open_line()))
    actions, weights = zip(*_ACTIONS, strict=True)
    pool = [a for a, w in zip(actions, weights, strict=True) for _ in range(w)]
    for _ in range(draw(st.integers(min_steps, max_steps))):
        jump = draw(st.sampled_from(["minutes", "days", "weeks", "month_edge"]))
        if jump == "minutes":
            now += timedelta(minutes=draw(st.integers(0, 600)))
        elif jump == "days":
            now += timedelta(days=draw(st.integers(1, 6)), minutes=draw(st.integers(0, 59)))
        elif jump == "weeks":
            now += timedelta(days=draw(st.integers(7, 40)))
        else:  # just before or after the next Tokyo midnight of the 1st
            edge = YearMonth.of(now).next().start()
            now = max(now, edge + timedelta(minutes=draw(st.integers(-45, 45))))
        action = draw(st.sampled_from(pool))
        command: dict[str, Any] | None = None
        line = draw(st.sampled_from(lines))
        ids = sorted(passports)
        pid = draw(st.sampled_from(ids)) if ids else None
        if action == "open_line":
            command = open_line()
        elif action == "register_passport" or (action == "purchase" and pid is None):
            command = register(line)
        elif action == "purchase" and pid is not None:
            command = purchase(pid, password[pid])
            bought[pid] = bought.get(pid, 0) + 1
            receipt = predicted_receipt(pid, bought[pid])
            receipts.append(receipt)
            buyer[receipt] = pid
            if "ref" in command:
                refs[command["ref"]] = receipt
        elif action == "wrong_password" and pid is not None:
            if bool(receipts) and draw(st.booleans()):
                command = {
                    "command": "cancel",
                    "receipt": draw(st.sampled_from(receipts)),
                    "password": WRONG_PASSWORD,
                }
            else:
                command = purchase(pid, WRONG_PASSWORD)
        elif action == "wrong_access_key":
            command = wrong_access_key(line, pid)
        elif action == "cancel" and receipts:
            command = {"command": action, **name_purchase()}
            command["password"] = password[buyer[named(command)]]
        elif action == "refund" and receipts:
            command = {
                "command": action,
                **name_purchase(),
                "amount": draw(st.sampled_from([50, 100, 525, 1500])),
                "reason": "返金",
            }
        elif action == "reset_password" and pid is not None:
            password[pid] = draw(st.sampled_from(["pass1", "Reset777"]))
            command = {
                "command": action,
                "passport_id": pid,
                "password": password[pid],
                "channel": draw(st.sampled_from(["phone", "written"])),
            }
        elif action == "erase_personal_data" and password:
            command = {
                "command": action,
                "passport_id": draw(st.sampled_from(sorted(password))),  # also a deleted ID
                "reason": "本人からの請求",
            }
        elif action == "change_passport_limit" and pid is not None:
            command = {
                "command": action,
                "passport_id": pid,
                "access_key": key_of[passports[pid]],
                "limit": draw(st.sampled_from([0, 300, 1000, 3000])),
            }
        elif action == "change_passport_details" and pid is not None:
            command = {
                "command": action,
                "passport_id": pid,
                "access_key": key_of[passports[pid]],
            }
            if now < _CUTOFF:  # from the cut-off the details are view-only (refused)
                password[pid] = draw(st.sampled_from(["pass1", "Newpass2"]))
                command["password"] = password[pid]
            if kind_of[passports[pid]] in _HIKARI and draw(st.booleans()):
                command["line_auth"] = draw(st.booleans())
            if len(command) == 4:
                command["email"] = f"new.{pid}@example.jp"
        elif action == "delete_passport" and pid is not None:
            command = {
                "command": action,
                "passport_id": pid,
                "access_key": key_of[passports[pid]],
            }
            del passports[pid]
        elif action == "change_line_limit":
            command = {
                "command": action,
                "customer_id": line,
                "line_limit": draw(st.sampled_from([1000, 5000, 30000])),
            }
        elif action == "regulate_line":
            command = {"command": action, "customer_id": line}
        elif action == "lift_regulation":
            command = {
                "command": action,
                "customer_id": line,
                "channel": draw(st.sampled_from(["written"] * 4 + ["online"])),
            }
        elif action == "set_notification":
            command = {
                "command": action,
                "customer_id": line,
                "access_key": key_of[line],
                "provider": draw(st.sampled_from(providers)),
                "notify": draw(st.booleans()),
                "consent": draw(st.sampled_from([True] * 4 + [False])),
                "channel": "web",
            }
        elif action == "change_billing":
            command = {
                "command": action,
                "customer_id": line,
                "billing": {"method": "customer_number", "number": "0098765432"},
                "reason": "customer_number",
            }
        elif action == "change_line":
            command = change_line(line)
        elif action == "set_fee":
            month = YearMonth.of(now)
            command = {
                "command": action,
                "operator": draw(st.sampled_from(["east", "west"])),
                "effective_from": str(
                    draw(st.sampled_from([month.previous(), month, month.next()]))
                ),
                "flat_fee": draw(st.sampled_from([30, 45, 60])),
            }
        elif action == "issue_bills":
            command = {"command": action, "month": str(YearMonth.of(now).previous())}
        elif action == "retry" and sent:
            retry = dict(draw(st.sampled_from(sent)))
            log.append(retry)  # same key, same body: answered from the first result
            continue
        elif action == "reuse_key" and sent:
            # The key of an earlier command, now for another body (a later instant, and maybe
            # a wrong password): all checks run, and idempotency_conflict is one of them.
            reused = {**draw(st.sampled_from(sent)), "at": _iso(now, utc=False)}
            if "password" in reused and reused["command"] != "register_passport":
                reused["password"] = draw(st.sampled_from([reused["password"], WRONG_PASSWORD]))
            log.append(reused)
            continue
        if command is not None:
            stamped = stamp(command)
            log.append(stamped)
            if "key" in stamped:
                sent.append(stamped)
    return log


def format_log(log: Sequence[dict[str, Any]]) -> str:
    """A command log as JSON Lines, ready to save and replay with ``matome run``."""
    return "\n".join(json.dumps(c, ensure_ascii=False) for c in log) + "\n"

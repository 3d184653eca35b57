"""A synthetic but realistic contract-2 command log: N lines over M months, from a seed.

``matome generate --lines N --months M --seed S`` (or :func:`generate_log`) writes JSON Lines
that ``matome run`` applies: the same seed gives the same log, byte for byte.  The mix, per
month (probabilities are per Passport ID unless said otherwise):

* a catalog first — providers (one per 2,500 lines, at least 4) with two monthly-flat services
  (100–980 yen) and two per-purchase items (50–1,200 yen) each, one provider of physical
  goods; the 2012 flat fee set for both operators;
* lines opened in the first month (60% NTT West; East lines with ``COP`` IDs 30% of the
  time; billed by customer number 65%, phone bill 30%, consolidated 5%), each with 1–3
  Passport IDs (line authentication on for a fifth of those on Hikari lines) registered with
  the line's access key;
* subscribing to a monthly service 35%; cancelling a held one 12% (a fifth of them on the
  1st), and buying it again in the same month 30% of those; 0–3 per-purchase items
  (quantity 1, or 2–10 one time in five); a wrong password before a purchase 3%; a
  refund of a purchase 2% (by the purchase's client reference); a limit change 1%;
* per line: a regulation 0.2% (lifted in writing the next month), a line change 0.3%
  (relocation, rename or item change — the service goes on — or, one time in four, a
  transfer that ends it); the line's purchases come over the line itself;
* ``issue_bills`` for the previous month at 00:30 on the 1st of every month.

Every command carries an idempotency key (``--keys``, on by default), so the log can be run
again safely; purchases carry a client reference (``ref``) that cancellations and refunds use,
so the log never predicts a receipt number.  Some commands are refused when run — a purchase
over the ID's limit, a wrong password — as in life.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import attrs

from matome.values import YearMonth

__all__ = ["generate_log"]

_ALNUM = string.ascii_letters + string.digits
_START = YearMonth(2024, 1)


@attrs.define
class _Passport:
    pid: str
    password: str
    line: _Line
    line_auth: bool
    limit: int
    held: dict[tuple[str, str], str] = attrs.field(factory=dict)  # (provider, service) → ref
    purchases: list[str] = attrs.field(factory=list)
    deleted: bool = False


@attrs.define
class _Line:
    customer_id: str
    operator: str
    kind: str
    access_key: str
    cap: int
    passports: list[_Passport] = attrs.field(factory=list)
    regulated: bool = False
    ended: bool = False


def _at(month: YearMonth, day: int, minute: int) -> datetime:
    start = month.start()
    last = (month.end() - start).days
    return start + timedelta(days=min(day, last) - 1, minutes=minute)


def generate_log(
    lines: int,
    months: int,
    *,
    seed: int = 1,
    start: YearMonth = _START,
    keys: bool = True,
) -> Iterator[dict[str, Any]]:
    """The commands of the log, in business-time order (see the module docstring)."""
    rng = random.Random(seed)
    seq = 0
    out: list[tuple[datetime, int, dict[str, Any]]] = []

    def emit(at: datetime, command: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        body = {"command": command.pop("command"), "at": at.isoformat(), **command}
        if keys:
            body["key"] = f"gen{seed}-{seq}"
        out.append((at, seq, body))

    month = start
    first = start.start()
    # The catalog.
    providers: list[tuple[str, list[tuple[str, str, int]]]] = []
    for index in range(max(4, lines // 2500)):
        code = f"P{index:03d}"
        goods = "physical" if index == 3 else "information"
        emit(
            first,
            {
                "command": "register_provider",
                "provider": code,
                "name": f"Provider {index}",
                "contact": f"0120-{index:03d}-000",
                "goods": goods,
            },
        )
        services = [
            ("m1", "monthly", rng.choice((100, 300, 330, 525, 980))),
            ("m2", "monthly", rng.choice((200, 300, 500))),
            ("i1", "per_purchase", rng.choice((50, 100, 300))),
            ("i2", "per_purchase", rng.choice((400, 600, 1200))),
        ]
        for service_code, pricing, price in services:
            emit(
                first,
                {
                    "command": "list_service",
                    "provider": code,
                    "service": service_code,
                    "name": f"{code} {service_code}",
                    "pricing": pricing,
                    "price": price,
                },
            )
        providers.append((code, services))
    for operator in ("east", "west"):
        emit(
            first,
            {
                "command": "set_fee",
                "operator": operator,
                "effective_from": str(start),
                "flat_fee": 40,
            },
        )
    # Lines and Passport IDs.
    all_lines: list[_Line] = []
    for i in range(lines):
        west = rng.random() < 0.6
        operator = "west" if west else "east"
        cid = f"COP{i:08d}" if not west and rng.random() < 0.3 else f"CAF{i:010d}"
        kinds = ["hikari_next", "hikari_light"] + ([] if west else ["b_flets", "flets_adsl"])
        line = _Line(
            cid,
            operator,
            rng.choice(kinds),
            "".join(rng.choices(_ALNUM, k=8)),
            rng.choice((5000, 10000, 20000)),
        )
        r = rng.random()
        if r < 0.05 and all_lines:
            rep = rng.choice(all_lines[-50:])
            billing: dict[str, Any] = {"method": "consolidated", "representative": rep.customer_id}
        elif r < 0.35:
            billing = {
                "method": "phone_bill",
                "number": f"06-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}",
                "cycle_start_day": rng.randint(1, 28),
            }
        else:
            billing = {"method": "customer_number", "number": f"00{rng.randrange(10**8):08d}"}
        opened = _at(month, rng.randint(1, 5), rng.randrange(600))
        emit(
            opened,
            {
                "command": "open_line",
                "customer_id": cid,
                "operator": operator,
                "kind": line.kind,
                "access_key": line.access_key,
                "line_limit": line.cap,
                "billing": billing,
            },
        )
        room = line.cap
        for n in range(rng.choices((1, 2, 3), weights=(6, 3, 1))[0]):
            limit = min(rng.choice((1000, 2000, 3000, 5000)), room)
            if limit <= 0:
                break
            room -= limit
            auth = line.kind.startswith("hikari") and rng.random() < 0.2
            passport = _Passport(
                f"{cid.lower()}.{n}", "".join(rng.choices(_ALNUM, k=8)), line, auth, limit
            )
            emit(
                opened + timedelta(minutes=10 + n),
                {
                    "command": "register_passport",
                    "customer_id": cid,
                    "access_key": line.access_key,
                    "passport_id": passport.pid,
                    "password": passport.password,
                    "email": f"{passport.pid}@example.jp",
                    "applicant": {
                        "name": "山田 太郎",
                        "phone": "06-1234-5678",
                        "contract_holder": True,
                    },
                    "limit": limit,
                    "line_auth": auth,
                },
            )
            line.passports.append(passport)
        all_lines.append(line)
    # Month after month.
    refs = 0

    def buy(
        p: _Passport,
        month: YearMonth,
        service: tuple[str, str, int],
        provider: str,
        quantity: int = 1,
    ) -> str:
        nonlocal refs
        refs += 1
        ref = f"o{refs}"
        at = _at(month, rng.randint(2, 19), rng.randrange(1440))
        body: dict[str, Any] = {
            "command": "purchase",
            "passport_id": p.pid,
            "password": p.password,
            "provider": provider,
            "service": service[0],
            "presented_line": p.line.customer_id,
            "ref": ref,
        }
        if quantity != 1:
            body["quantity"] = quantity
        if rng.random() < 0.03:
            emit(
                at - timedelta(seconds=30),
                {**body, "password": "Wrong000", "ref": ref + "w"},
            )
        emit(at, body)
        p.purchases.append(ref)
        if rng.random() < 0.02:
            emit(
                at + timedelta(days=5),
                {
                    "command": "refund",
                    "purchase_ref": ref,
                    "amount": max(1, service[2] * quantity // 2),
                    "reason": "返金",
                },
            )
        return ref

    for m in range(months):
        if m:
            emit(_at(month, 1, 30), {"command": "issue_bills", "month": str(month.previous())})
        for line in all_lines:
            if line.ended:
                continue
            if line.regulated:
                emit(
                    _at(month, rng.randint(2, 9), 600),
                    {
                        "command": "lift_regulation",
                        "customer_id": line.customer_id,
                        "channel": "written",
                    },
                )
                line.regulated = False
                continue
            if rng.random() < 0.002:
                emit(
                    _at(month, rng.randint(20, 28), 900),
                    {"command": "regulate_line", "customer_id": line.customer_id},
                )
                line.regulated = True
                for p in line.passports:
                    p.held.clear()
            for p in line.passports:
                if p.deleted or line.regulated:
                    continue

                if rng.random() < 0.35:
                    provider, services = rng.choice(providers)
                    monthly = rng.choice([s for s in services if s[1] == "monthly"])
                    if (provider, monthly[0]) not in p.held:
                        p.held[provider, monthly[0]] = buy(p, month, monthly, provider)
                for (provider, service_code), ref in list(p.held.items()):
                    if rng.random() < 0.12:
                        on_first = rng.random() < 0.2
                        at = _at(month, 1, 480) if on_first else _at(month, 20, rng.randrange(1440))
                        emit(at, {"command": "cancel", "purchase_ref": ref, "password": p.password})
                        del p.held[provider, service_code]
                for _ in range(rng.choices((0, 1, 2, 3), weights=(5, 3, 1, 1))[0]):
                    provider, services = rng.choice(providers)
                    item = rng.choice([s for s in services if s[1] == "per_purchase"])
                    quantity = rng.randint(2, 10) if rng.random() < 0.2 else 1
                    buy(p, month, item, provider, quantity)
                if rng.random() < 0.01:
                    emit(
                        _at(month, 25, 60),
                        {
                            "command": "change_passport_limit",
                            "passport_id": p.pid,
                            "access_key": line.access_key,
                            "limit": min(p.limit + 1000, line.cap // max(1, len(line.passports))),
                        },
                    )
            if rng.random() < 0.003 and not line.regulated:
                change = rng.choice(("relocation", "rename", "item_change", "transfer"))
                body = {"command": "change_line", "customer_id": line.customer_id, "change": change}
                emit(_at(month, 27, 1200), body)
                if change == "transfer":  # the line goes on; its IDs are deleted (§6)
                    for gone in line.passports:
                        gone.deleted = True
        month = month.next()
        # Every command drawn for a month falls in that month (refunds come 5 days after a
        # purchase made by the 19th): the log is written a month at a time, in time order,
        # and memory holds one month of commands, not the whole log.
        out.sort(key=lambda x: (x[0], x[1]))
        for _, _, body in out:
            yield body
        out.clear()

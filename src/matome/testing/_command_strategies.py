"""Hypothesis strategies for single commands: typed, and the invalid JSON forms of each; see
:mod:`matome.testing.strategies`."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

from matome.commands import (
    COMMANDS,
    Command,
    parse_command,
)
from matome.testing._value_strategies import (
    _ALNUM,
    _DIGITS,
    access_keys,
    applicants,
    billing_accounts,
    customer_ids,
    emails,
    invalid_access_keys,
    invalid_customer_ids,
    invalid_months,
    invalid_passwords,
    invalid_quantities,
    invalid_times,
    invalid_yen,
    passport_ids,
    passwords,
    provider_codes,
    quantities,
    secret_hashes,
    service_codes,
    tokyo_times,
    year_months,
    yen,
)

# ---------------------------------------------------------------------------------------------
# Single commands (typed)


def commands() -> st.SearchStrategy[Command[Any]]:
    """Any one valid command object, with independent (mostly unrelated) identifiers."""
    return st.one_of([_command_json(name).map(parse_command) for name in sorted(COMMANDS)])


#: Every amount a command carries (rules §1: 0–99,999,999 yen).
_YEN_FIELDS = (
    ("open_line", "line_limit"),
    ("change_line_limit", "line_limit"),
    ("list_service", "price"),
    ("register_passport", "limit"),
    ("change_passport_limit", "limit"),
    ("refund", "amount"),
    ("set_fee", "flat_fee"),
)
#: The credential each command cannot do without (rules §2, "Who may do what").
_CREDENTIALS = (
    ("change_passport_limit", "access_key"),
    ("change_passport_details", "access_key"),
    ("delete_passport", "access_key"),
    ("set_notification", "access_key"),
    ("purchase", "password"),
    ("cancel", "password"),
    ("reset_password", "password"),
)


def _with(name: str, field: str, bad: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A ``name`` command whose ``field`` is replaced by a value drawn from ``bad``."""
    return st.builds(lambda c, v: {**c, field: v}, _command_json(name), bad)


def _without(name: str, field: str) -> st.SearchStrategy[dict[str, Any]]:
    return _command_json(name).map(lambda c: {k: v for k, v in c.items() if k != field})


def invalid_commands() -> st.SearchStrategy[dict[str, Any]]:
    """Command-log objects that must be refused with ``invalid_input``."""
    base = st.sampled_from(sorted(COMMANDS)).flatmap(_command_json)
    return st.one_of(
        base.map(lambda c: {**c, "at": c["at"][:19]}),  # a naive time
        base.map(lambda c: {**c, "surprise": 1}),  # an unknown field
        base.map(lambda c: {k: v for k, v in c.items() if k != "at"}),  # a missing field
        base.map(lambda c: {**c, "command": c["command"] + "_x"}),  # an unknown command
        st.builds(lambda c, at: {**c, "at": at}, base, invalid_times()),  # 1999 or 2100
        _with("open_line", "customer_id", invalid_customer_ids()),
        _with("purchase", "password", invalid_passwords()),
        _with("cancel", "password", invalid_passwords()),
        _with("open_line", "access_key", invalid_access_keys()),
        _with("set_notification", "access_key", invalid_access_keys()),
        _with("register_passport", "limit", st.sampled_from([-1, 1.5, "500", True])),
        st.sampled_from(_YEN_FIELDS).flatmap(lambda nf: _with(*nf, invalid_yen())),
        _with("purchase", "quantity", invalid_quantities()),
        st.sampled_from(_CREDENTIALS).flatmap(lambda nf: _without(*nf)),
        # register_passport needs the line's access key unless a provider registers it.
        _without("register_passport", "access_key").map(
            lambda c: {k: v for k, v in c.items() if k != "via_provider"}
        ),
        _with("reset_password", "channel", st.sampled_from(["online", "email", ""])),
        _with("set_fee", "effective_from", st.one_of(invalid_months(), st.just("1999-12"))),
        _with("issue_bills", "month", st.sampled_from(["1999-12", "2100-01"])),
    )


def _refs() -> st.SearchStrategy[str]:
    """A client's own reference for a purchase (named again by ``purchase_ref``)."""
    return st.text(_ALNUM + "-_#", min_size=1, max_size=20)


def _named_purchase() -> list[
    tuple[dict[str, st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]
]:
    """A cancel or refund names its purchase by receipt number or by the client's reference."""
    receipts = st.text(string.ascii_uppercase + _DIGITS, min_size=5, max_size=21)
    return [({"receipt": receipts}, {}), ({"purchase_ref": _refs()}, {})]


_HIKARI = ("hikari_next", "hikari_light", "hikari_light_plus")
_EAST_KINDS = ("hikari_next", "hikari_light", "hikari_light_plus", "b_flets", "flets_adsl")


def _command_json(name: str) -> st.SearchStrategy[dict[str, Any]]:
    at = tokyo_times().map(lambda d: d.isoformat())
    cid = customer_ids("west")
    fields: dict[str, st.SearchStrategy[Any]] = {"at": at}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    #: Alternative shapes of one command: (required fields, optional fields) besides ``at``.
    shapes: list[tuple[dict[str, st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]]
    shapes = []
    match name:
        case "open_line":
            fields |= {
                "customer_id": cid,
                "operator": st.just("west"),
                "kind": st.sampled_from(["hikari_next", "hikari_light"]),
                "access_key": access_keys(),
                "line_limit": yen(0, 50_000),
                "billing": billing_accounts(),
            }
        case "change_line_limit":
            fields |= {"customer_id": cid, "line_limit": yen(0, 50_000)}
        case "change_billing":
            fields |= {
                "customer_id": cid,
                "billing": st.text(_DIGITS, min_size=8, max_size=8).map(
                    lambda d: {"method": "customer_number", "number": "00" + d}
                ),
                "reason": st.just("customer_number"),
            }
        case "change_line":
            fields |= {"customer_id": cid}
            shapes = [
                (
                    {
                        "change": st.sampled_from(
                            [
                                "relocation",
                                "rename",
                                "cancellation",
                                "transfer",
                                "collabo_conversion",
                            ]
                        )
                    },
                    {},
                ),
                (
                    {
                        "change": st.sampled_from(["item_change", "menu_change"]),
                        "new_kind": st.sampled_from(_EAST_KINDS),
                    },
                    {},
                ),
            ]
        case "regulate_line":
            fields |= {"customer_id": cid}
        case "lift_regulation":
            fields |= {"customer_id": cid, "channel": st.sampled_from(["written", "online"])}
        case "set_notification":
            fields |= {
                "customer_id": cid,
                "access_key": access_keys(),
                "provider": provider_codes(),
                "notify": st.booleans(),
                "consent": st.booleans(),
                "channel": st.sampled_from(["web", "phone"]),
            }
        case "register_provider":
            fields |= {
                "provider": provider_codes(),
                "name": st.just("Provider"),
                "contact": st.just("0120-000-000"),
                "goods": st.sampled_from(["information", "physical"]),
            }
        case "list_service":
            fields |= {
                "provider": provider_codes(),
                "service": service_codes(),
                "name": st.just("Service"),
                "pricing": st.sampled_from(["monthly", "per_purchase"]),
                "price": yen(0, 5_000),
            }
        case "register_passport":
            fields |= {
                "customer_id": cid,
                "passport_id": passport_ids(),
                "password": passwords(),
                "email": emails(),
                "applicant": applicants(),
                "limit": yen(0, 6_000),
                "line_auth": st.booleans(),
            }
            # The line holder's (with the access key) or a provider's on their behalf.
            shapes = [
                ({"access_key": access_keys()}, {"via_provider": provider_codes()}),
                ({"via_provider": provider_codes()}, {}),
            ]
        case "change_passport_limit":
            fields |= {
                "passport_id": passport_ids(),
                "access_key": access_keys(),
                "limit": yen(0, 6_000),
            }
        case "change_passport_details":
            fields |= {"passport_id": passport_ids(), "access_key": access_keys()}
            # At least one of a new password, e-mail or line-authentication setting.
            shapes = [
                ({"password": passwords()}, {"email": emails(), "line_auth": st.booleans()}),
                ({"email": emails()}, {"line_auth": st.booleans()}),
                ({"line_auth": st.booleans()}, {}),
            ]
        case "delete_passport":
            fields |= {"passport_id": passport_ids(), "access_key": access_keys()}
        case "erase_personal_data":
            fields |= {"passport_id": passport_ids(), "reason": st.just("customer request")}
        case "reset_password":
            fields |= {
                "passport_id": passport_ids(),
                "password": passwords(),
                "channel": st.sampled_from(["phone", "written"]),
            }
        case "purchase":
            fields |= {
                "passport_id": passport_ids(),
                "password": passwords(),
                "provider": provider_codes(),
                "service": service_codes(),
            }
            optional = {"quantity": quantities(), "presented_line": cid, "ref": _refs()}
        case "cancel":
            fields |= {"password": passwords()}
            shapes = _named_purchase()
        case "refund":
            fields |= {"amount": yen(1, 5_000), "reason": st.just("refund")}
            shapes = _named_purchase()
        case "set_fee":
            fields |= {
                "operator": st.sampled_from(["east", "west"]),
                "effective_from": year_months(2012, 2026).map(str),
                "flat_fee": yen(0, 2_000),
            }
        case "issue_bills":
            fields |= {"month": year_months(2023, 2025).map(str)}
        case _:  # a command added to the contract without a strategy is a bug here
            raise LookupError(f"no strategy for command {name!r}")
    head = {"command": st.just(name), **fields}
    if not shapes:
        return st.fixed_dictionaries(head, optional=optional)
    return st.one_of(
        [
            st.fixed_dictionaries({**head, **required}, optional={**optional, **more})
            for required, more in shapes
        ]
    )


def migrated_commands() -> st.SearchStrategy[dict[str, Any]]:
    """Contract 3's "Credentials at scale": an ``open_line`` with ``access_key_hash`` instead
    of ``access_key``, or a ``register_passport`` with ``password_hash`` instead of
    ``password`` (JSON form; contract 2 reads neither field)."""

    def swapped(body: dict[str, Any], secret: str, hashed: str) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k != secret}
        return {**out, f"{secret}_hash": hashed}

    return st.one_of(
        st.builds(swapped, _command_json("open_line"), st.just("access_key"), secret_hashes()),
        st.builds(
            swapped, _command_json("register_passport"), st.just("password"), secret_hashes()
        ),
    )

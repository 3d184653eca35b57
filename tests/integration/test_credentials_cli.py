"""Contract 2's credentials, through ``matome run`` on SQLite and PostgreSQL.

Each test is named after an attack that contract 1 let in and contract 2 must keep out
(docs/rules.md §2 "Who may do what", §9, §10; docs/contract.md "Command log" and "Results";
docs/design.md "Who may do what"):

* the line holder's commands carry the line's access key — a customer ID alone no longer
  registers Passport IDs, changes limits or passwords, deletes IDs or switches notification;
* the line check comes before the password — nobody on another line can lock an ID out;
* a key already bound answers no wrong password for free — the guess is counted;
* a refusal that counted a wrong password binds its key — re-running a log after a crash
  counts nothing twice;
* line authentication is NTT's own check — it no longer needs the notification setting.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.logs import (
    EAST,
    LINE,
    LINE2,
    PID,
    PID2,
    WRONG_KEY,
    WRONG_PW,
    Entry,
    Matome,
    access_key,
    buy,
    cancel,
    catalog,
    change_details,
    change_limit,
    delete,
    jst,
    line,
    notification,
    passport,
    regulate,
    reset_password,
    world,
)

CUT_OFF = "2024-12-01T00:00:00+09:00"


def wrong_passwords(n: int, *, day: str = "01-10", key: str | None = None) -> list[Entry]:
    """``n`` purchases by ``taro.1`` with a wrong password, a second apart, refused as
    ``wrong_password`` (keyed ``KEY-0``, ``KEY-1``, ... when ``key`` is given)."""
    entries = []
    for i in range(n):
        entry = buy(jst(day, f"10:00:{i:02d}"), "item", password=WRONG_PW, refused="wrong_password")
        if key is not None:
            entry["key"] = f"{key}-{i}"
        entries.append(entry)
    return entries


# ---------------------------------------------------------------------------------------------
# (a) A customer ID alone no longer acts for the line holder


#: The line holder's commands (docs/rules.md §2), each built with a given access key (None: none).
LINE_HOLDER: dict[str, Callable[[str | None], Entry]] = {
    "register_passport": lambda key: {
        **passport("intruder.1", LINE, jst("01-05"), limit=100),
        "access_key": key,
    },
    "change_passport_limit": lambda key: change_limit(jst("01-05"), 1, key=key or ""),
    "change_passport_details-email": lambda key: change_details(
        jst("01-05"), key=key or "", email="intruder@example.jp"
    ),
    "change_passport_details-line_auth": lambda key: change_details(
        jst("01-05"), key=key or "", line_auth=True
    ),
    "set_notification": lambda key: notification(jst("01-05"), True, key=key or ""),
    "change_passport_details-password": lambda key: change_details(
        jst("01-05"), key=key or "", password="Stolen12"
    ),
    "delete_passport": lambda key: delete(jst("01-05"), key=key or ""),
}


def _with_key(command: str, key: str | None, at: str) -> Entry:
    entry = {**LINE_HOLDER[command](key), "at": at}
    if key is None:
        del entry["access_key"]
    return entry


@pytest.mark.parametrize(
    ("key", "code"),
    [
        pytest.param(WRONG_KEY, "wrong_access_key", id="wrong-key"),
        pytest.param(access_key(LINE2), "wrong_access_key", id="the-key-of-another-line"),
        pytest.param(None, "invalid_input", id="no-key"),
    ],
)
def test_a_customer_id_alone_cannot_act_for_the_line_holder(
    matome: Matome, key: str | None, code: str
) -> None:
    """docs/rules.md §2, contract 2: ``register_passport``, ``change_passport_limit``,
    ``change_passport_details`` (password, e-mail, line authentication), ``delete_passport`` and
    ``set_notification`` carry the line's access key.  A wrong one (or another line's) is
    ``wrong_access_key``; none at all is a malformed command (``invalid_input`` naming
    ``access_key``).  Nothing is written — not even a count (access keys are not counted,
    design "Who may do what") — and the holder's ID still buys with its own password.  With
    the right key every one of them is accepted."""
    matome.run(*world(), line(LINE2), buy(jst("01-04"), "item"))
    status = matome.status()
    events = matome.events()

    attempts = [
        _with_key(command, key, jst("01-05", f"10:00:{i:02d}")) | {"refused": code}
        for i, command in enumerate(LINE_HOLDER)
    ]
    results = matome.run(*attempts)
    if code == "invalid_input":
        assert all("access_key" in r["error"]["message"] for r in results), results
    assert matome.events() == events
    assert matome.status() == status
    matome.run(buy(jst("01-06"), "item"))
    # The same commands with the line's own key (the password change and the deletion last).
    matome.run(
        *[
            _with_key(command, access_key(LINE), jst("01-07", f"10:00:{i:02d}"))
            for i, command in enumerate(LINE_HOLDER)
        ]
    )
    assert matome.status()["passports"] == [
        {"passport_id": "intruder.1", "status": "in_use", "limit": 100, "line_auth": False}
    ]


def test_changing_a_password_with_only_a_customer_id_leaves_the_holders_password_working(
    matome: Matome,
) -> None:
    """docs/rules.md §2, §10: an attacker who knows only the customer ID cannot set a password of
    their own (and so cannot unlock or take over the ID); the holder's password keeps working,
    the attacker's never does."""
    matome.run(
        *world(),
        change_details(
            jst("01-05"), key=WRONG_KEY, password="Stolen12", refused="wrong_access_key"
        ),
        buy(jst("01-06"), "item", password="Stolen12", refused="wrong_password"),
        buy(jst("01-07"), "item"),
    )


def test_a_provider_registering_for_a_customer_needs_no_access_key_but_a_wrong_one_is_refused(
    matome: Matome,
) -> None:
    """Design "Who may do what": an NTT East provider registers on the customer's behalf after
    the cut-off (``via_provider``) without the access key; if one is given anyway it is checked.
    The customer's own registration is closed after the cut-off, whatever the key."""
    via: Entry = {"via_provider": "A"}
    matome.run(
        *catalog(),
        line(EAST),
        {**passport(PID, EAST, jst("12-02")), **via, "access_key": WRONG_KEY}
        | {"refused": "wrong_access_key"},
        {
            k: v
            for k, v in {**passport(PID, EAST, jst("12-03")), **via}.items()
            if k != "access_key"
        },
        passport(PID2, EAST, jst("12-04"), refused="registration_closed"),
    )
    assert [p["passport_id"] for p in matome.status(EAST)["passports"]] == [PID]


# ---------------------------------------------------------------------------------------------
# (b) Nobody on another line can lock a line-authenticated ID out


def test_someone_on_another_line_cannot_lock_out_a_line_authenticated_id(matome: Matome) -> None:
    """docs/rules.md §9, §10, contract 2's refusal order: the line check comes before the password.
    Twelve wrong passwords presented over another line are ``line_auth_failed`` and count
    nothing, so the ID is not locked and its holder buys over the own line.  (Contract 1
    checked the password first: ten of them locked the ID.)"""
    matome.run(
        *catalog(),
        line(LINE),
        line(LINE2),
        passport(PID, LINE, line_auth=True),
        *[
            buy(
                jst("01-10", f"10:00:{i:02d}"),
                "item",
                password=WRONG_PW,
                presented_line=LINE2,
                refused="line_auth_failed",
            )
            for i in range(12)
        ],
        # Not identified as coming over any line: the same.
        buy(jst("01-10", "11:00:00"), "item", password=WRONG_PW, refused="line_auth_failed"),
    )
    assert matome.failures() == 0
    assert matome.status()["passports"][0]["status"] == "in_use"
    matome.run(buy(jst("01-11"), "item", presented_line=LINE))
    # Over its own line a wrong password is counted as ever.
    [result] = matome.run(
        buy(jst("01-12"), "item", password=WRONG_PW, presented_line=LINE, refused="wrong_password")
    )
    assert "1 in a row" in result["error"]["message"]


# ---------------------------------------------------------------------------------------------
# (c) A key already bound gives no free password guesses


@pytest.mark.parametrize(
    "same_body",
    [pytest.param(True, id="same-body-wrong-password"), pytest.param(False, id="other-body")],
)
def test_a_bound_key_gives_no_free_password_guesses(matome: Matome, same_body: bool) -> None:
    """docs/rules.md §10, docs/contract.md ("Command log"), contract 2: a key bound to another body
    answers ``idempotency_conflict`` only after the password passes.  A wrong password under a
    bound key is ``wrong_password`` and counted — ten of them lock the ID — where contract 1
    answered ``idempotency_conflict`` without counting (unlimited free guesses).  Once the ID
    is locked, the exact retry (same key, body and password) is ``locked_out`` (contract 3)."""
    bought = buy(jst("01-10"), "item", key="order-1", name="first")
    matome.run(*world(), bought)

    def guess(i: int) -> Entry:
        body = {k: v for k, v in bought.items() if k != "as"}
        if not same_body:
            body["at"] = jst("01-11", f"10:00:{i:02d}")
        return body | {"password": f"Guess{i:03d}"}

    results = matome.run(*[guess(i) | {"refused": "wrong_password"} for i in range(10)])
    assert [r["error"]["message"].split("(")[1] for r in results[:2]] == [
        "1 in a row)",
        "2 in a row)",
    ]
    assert "now locked" in results[-1]["error"]["message"]
    assert matome.status()["passports"][0]["status"] == "locked"
    matome.run(guess(10) | {"refused": "locked_out"})
    # Contract 3: the exact retry answers its first result only while its password opens the
    # ID — on a locked ID it is ``locked_out`` like any guess (no oracle), and nothing changed.
    entry = {k: v for k, v in bought.items() if k != "as"}
    matome.run(entry | {"refused": "locked_out"})
    assert matome.bill(LINE, "2024-01")["subtotal"] == 440


def test_a_bound_key_with_the_right_password_and_another_body_is_a_conflict(
    matome: Matome,
) -> None:
    """docs/contract.md ("Command log"): only a correct credential gets ``idempotency_conflict``
    (it counts nothing and writes nothing)."""
    matome.run(*world(), buy(jst("01-10"), "item", key="order-1"))
    events = matome.events()
    matome.run(buy(jst("01-11"), "back", key="order-1", refused="idempotency_conflict"))
    assert matome.events() == events
    assert matome.failures() == 0


# ---------------------------------------------------------------------------------------------
# (d) Re-running a log after a crash counts no wrong password twice


def test_rerunning_a_log_after_a_crash_counts_its_wrong_passwords_once(matome: Matome) -> None:
    """docs/contract.md ("Command log"), docs/rules.md §10, contract 2: a refusal that recorded a
    wrong password binds its key, so the same log run again answers the first refusal and
    counts nothing.  The log's nine keyed typos are counted once: the ID is not locked after
    a crash and two re-runs (contract 1 counted them again: 5 before the crash + 9 on the
    re-run ≥ 10 locked the ID)."""
    setup = [{**entry, "key": f"setup-{i}"} for i, entry in enumerate(world())]
    typos = wrong_passwords(9, key="typo")
    log = [*setup, *typos]

    matome.run(*setup, *typos[:5])  # the run crashed here
    assert matome.failures() == 5
    # --again: a plain rerun of a log whose start was applied exits 2 (contract 3).
    rerun = matome.run(*log, again=True)
    assert matome.failures() == 9  # not 5 + 9: the first five answered their first refusal
    for n, result in enumerate(rerun[len(setup) :], start=1):
        assert f"({n} in a row)" in result["error"]["message"], result
    assert matome.run(*log, again=True) == rerun
    assert matome.failures() == 9
    assert matome.status()["passports"][0]["status"] == "in_use"
    matome.run(buy(jst("01-11"), "item"))
    assert matome.failures() == 0


def test_an_unkeyed_wrong_password_is_counted_each_time_it_is_presented(
    matome: Matome,
) -> None:
    """docs/rules.md §10: without a key, each presentation is a new attempt and is counted."""
    matome.run(*world(), *wrong_passwords(3))
    matome.run(*wrong_passwords(3, day="01-11"))
    assert matome.failures() == 6


# ---------------------------------------------------------------------------------------------
# (e) Line authentication no longer depends on the notification setting


@pytest.mark.parametrize(
    "notify",
    [
        pytest.param(None, id="never-set"),
        pytest.param(False, id="do-not-notify"),
        pytest.param(True, id="notify"),
    ],
)
def test_line_authentication_works_for_customers_who_keep_notification_off(
    matome: Matome, notify: bool | None
) -> None:
    """docs/rules.md §9, contract 2: line authentication is NTT's own check of the line the purchase
    came over (``presented_line``); the notification setting only decides whether the provider
    learns the customer ID.  Whatever it is, an ID with line authentication on buys over its
    own line and is refused over any other (contract 1 needed notification on)."""
    matome.run(
        *catalog(),
        line(LINE),
        line(LINE2),
        passport(PID, LINE, line_auth=True),
        *([] if notify is None else [notification(jst("01-05"), notify)]),
        buy(jst("01-10"), "item", presented_line=LINE),
        buy(jst("01-11"), "item", presented_line=LINE2, refused="line_auth_failed"),
        buy(jst("01-12"), "item", refused="line_auth_failed"),
    )
    assert matome.bill(LINE, "2024-01")["subtotal"] == 440


def test_line_authentication_is_switched_with_the_access_key_on_hikari_lines_only(
    matome: Matome,
) -> None:
    """docs/rules.md §9, design "Line authentication": the line holder switches it with
    ``change_passport_details`` (access key); it exists on Hikari lines only."""
    matome.run(
        *catalog(),
        line(LINE),
        line(LINE2),
        line(EAST, kind="b_flets"),
        passport(PID, LINE),
        passport(PID2, EAST, line_auth=True, refused="invalid_input"),
        passport(PID2, EAST),
        change_details(jst("01-05"), PID2, key=access_key(EAST), line_auth=True)
        | {"refused": "invalid_input"},
        buy(jst("01-06"), "item", presented_line=LINE2),  # off: no line check
        change_details(jst("01-07"), line_auth=True),
        buy(jst("01-08"), "item", presented_line=LINE2, refused="line_auth_failed"),
        buy(jst("01-09"), "item", presented_line=LINE),
    )
    assert matome.status()["passports"] == [
        {"passport_id": PID, "status": "in_use", "limit": 5000, "line_auth": True}
    ]


# ---------------------------------------------------------------------------------------------
# Cancel with the password; lockout and recovery


def test_cancel_needs_the_password_of_the_id_that_bought_it(matome: Matome) -> None:
    """docs/rules.md §2, contract 2: ``cancel`` carries the buyer's password.  A wrong one (or
    another ID's of the same line) is ``wrong_password``, counted, and the subscription keeps
    being charged; none at all is ``invalid_input``."""
    matome.run(
        *world(),
        {**passport(PID2, LINE, jst("01-02")), "password": "Other123"},
        buy(jst("01-15"), name="s"),
        cancel(jst("02-10"), "s", password=WRONG_PW, refused="wrong_password"),
        cancel(jst("02-11"), "s", password="Other123", refused="wrong_password"),
    )
    assert matome.failures() == 2
    assert matome.failures(PID2) == 0
    matome.run(
        {k: v for k, v in cancel(jst("02-12"), "s").items() if k != "password"}
        | {"refused": "invalid_input"}
    )
    matome.run(cancel(jst("03-10"), "s"))
    assert matome.failures() == 0
    assert matome.subtotals() == [525, 525, 525, 0]


def test_a_wrong_password_on_a_regulated_line_is_counted(matome: Matome) -> None:
    """docs/contract.md ("Results"): credentials are checked before the state they guard, so a
    wrong password on a regulated line is ``wrong_password`` and counted (contract 1:
    ``line_regulated``); the right one is ``line_regulated``."""
    matome.run(
        *world(),
        regulate(jst("01-05")),
        buy(jst("01-06"), "item", password=WRONG_PW, refused="wrong_password"),
        buy(jst("01-07"), "item", refused="line_regulated"),
    )
    assert matome.failures() == 1


def test_a_locked_id_is_unlocked_by_the_operator_even_after_the_cut_off(matome: Matome) -> None:
    """docs/rules.md §10, contract 2: ten wrong passwords lock the ID (``locked_out`` even for the
    right password; its monthly subscriptions keep running).  After the 2024-12-01 cut-off the
    line holder's ``change_passport_details`` is closed, but the operator's ``reset_password``
    (phone or written request) sets a new password, unlocks the ID and clears the count."""
    matome.run(
        *world(),
        buy(jst("11-01"), name="s"),
        *wrong_passwords(10, day="11-10"),
        buy(jst("11-11"), "item", refused="locked_out"),
        cancel(jst("11-12"), "s", refused="locked_out"),
        change_details(CUT_OFF, password="NewPass1", refused="registration_closed"),
        reset_password(jst("12-02"), password="NewPass1")
        | {"channel": "online"}
        | {"refused": "invalid_input"},
        reset_password(jst("12-03"), "nobody", refused="unknown_passport"),
    )
    assert matome.status()["passports"][0]["status"] == "locked"
    assert matome.subtotals(months=("2024-11", "2024-12")) == [525, 525]
    matome.run(
        reset_password(jst("12-04"), password="NewPass1"),
        buy(jst("12-05"), "item", refused="wrong_password"),
        buy(jst("12-06"), "item", password="NewPass1"),
    )
    assert matome.failures() == 0
    assert matome.status()["passports"][0]["status"] == "in_use"


def test_the_line_holder_unlocks_with_a_new_password_before_the_cut_off(matome: Matome) -> None:
    """docs/rules.md §10: before the cut-off the line holder's ``change_passport_details`` (with the
    access key) sets a new password, which unlocks the ID."""
    matome.run(
        *world(),
        *wrong_passwords(10),
        change_details(jst("01-11"), password="NewPass1"),
        buy(jst("01-12"), "item", password="NewPass1"),
    )
    assert matome.status()["passports"][0]["status"] == "in_use"

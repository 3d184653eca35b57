"""Idempotency keys are no password oracle: docs/contract.md "Idempotency keys are no password
oracle" (issue 15, items 1, 5).

For any history on a Passport ID — keyed purchases with the right or a wrong password, later
commands, wrong passwords up to and past the lockout, new passwords, resets, erasures — and any
sequence of replays of keyed bodies with any password:

* every ``wrong_password`` answer is counted, except the very body whose wrong password was
  counted when it bound its key, answered again (contract 2: counted once);
* no replay answers a wrong guess differently from the right password, except by that counted
  ``wrong_password``: each replay with a wrong guess is checked against a twin store that got
  the same history and the right password instead.

And after ``erase_personal_data``, a key that carried the ID's personal data answers every
e-mail, name and phone alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matome.commands import parse_command
from matome.engine import Engine
from matome.errors import MatomeError
from tests.conftest import TEST_ITERATIONS
from tests.unit.helpers import APPLICANT, CID, ITEM, KEY, PID, PW, setup_world

WRONG = "Wrong123"
PASSWORDS = ["Newpass1", "Newpass2"]
GUESSES = [WRONG, "Guess000", "Guess001", PW, *PASSWORDS]

Step = tuple[str, Any]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.sampled_from([None, WRONG])),  # keyed, right or wrong
        st.tuples(st.just("later"), st.none()),  # an unkeyed purchase after it
        st.tuples(st.just("wrongs"), st.integers(1, 10)),  # unkeyed wrong passwords
        st.tuples(st.just("reset"), st.sampled_from(PASSWORDS)),
        st.tuples(st.just("change"), st.sampled_from(PASSWORDS)),
        st.tuples(st.just("erase"), st.none()),
        st.tuples(st.just("replay"), st.tuples(st.integers(0, 20), st.sampled_from(GUESSES))),
    ),
    min_size=1,
    max_size=14,
)


@contextmanager
def _engine() -> Iterator[Engine]:
    engine = Engine.open(":memory:", hash_iterations=TEST_ITERATIONS)
    try:
        setup_world(engine)
        yield engine
    finally:
        engine.close()


def _run(engine: Engine, command: dict[str, Any]) -> tuple[str, str]:
    """The answer to ``command``: ``("ok", result)`` or ``(code, "")``."""
    try:
        return "ok", str(engine.execute(parse_command(command)).to_json())
    except MatomeError as e:
        return e.code, ""


def _failures(engine: Engine) -> int:
    passport = engine.passport(PID)
    assert passport is not None
    return passport.consecutive_failures


def _purchase(at: str, password: str, key: str | None = None) -> dict[str, Any]:
    command = {
        "command": "purchase",
        "at": at,
        "passport_id": PID,
        "password": password,
        "provider": "A",
        "service": ITEM,
    }
    return command if key is None else {**command, "key": key}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=steps)
def test_every_wrong_password_under_a_key_is_counted_and_is_the_only_difference(
    steps: list[Step],
) -> None:
    log: list[dict[str, Any]] = []
    #: Keyed bodies and, for those bound by a counted wrong password, that password.
    keyed: list[dict[str, Any]] = []
    bound_wrong: dict[str, str] = {}
    right = PW
    minute = 0
    with _engine() as engine:

        def at() -> str:
            nonlocal minute
            minute += 1
            hour, second = divmod(minute, 60)
            return f"2024-02-01T{10 + hour:02d}:{second:02d}:00+09:00"

        for kind, arg in steps:
            if kind == "replay":
                if not keyed:
                    continue
                index, guess = arg
                body = {**keyed[index % len(keyed)], "password": guess}
                before = _failures(engine)
                code, result = _run(engine, body)
                counted = _failures(engine) == before + 1
                again = bound_wrong.get(body["key"]) == guess
                if code == "wrong_password":
                    # Counted, or the very body that counted it when it bound the key.
                    assert counted or again, f"an uncounted wrong_password for {guess!r}"
                if guess != right and not (code == "wrong_password" and (counted or again)):
                    with _engine() as twin:
                        for command in log:
                            _run(twin, command)
                        expected = _run(twin, {**body, "password": right})
                    assert (code, result) == expected, (
                        f"a wrong guess {guess!r} answered {code} where the right password "
                        f"gets {expected[0]}"
                    )
                log.append(body)
                continue
            if kind == "buy":
                key = f"k{len(keyed)}"
                body = _purchase(at(), arg or right, key)
                keyed.append(body)
                code, _ = _run(engine, body)
                if code == "wrong_password":
                    bound_wrong[key] = body["password"]
            elif kind == "later":
                body = _purchase(at(), right)
                _run(engine, body)
            elif kind == "wrongs":
                for _ in range(arg):
                    body = _purchase(at(), WRONG)
                    _run(engine, body)
                    log.append(body)
                continue
            elif kind in ("reset", "change"):
                body = (
                    {"command": "reset_password", "passport_id": PID, "channel": "phone"}
                    if kind == "reset"
                    else {"command": "change_passport_details", "passport_id": PID,
                          "access_key": KEY}
                )  # fmt: skip
                body = {**body, "at": at(), "password": arg}
                if _run(engine, body)[0] == "ok":
                    right = arg
            else:
                body = {
                    "command": "erase_personal_data",
                    "at": at(),
                    "passport_id": PID,
                    "reason": "request",
                }
                _run(engine, body)
            log.append(body)


def _register(email: str, name: str, phone: str) -> dict[str, Any]:
    return {
        "command": "register_passport",
        "at": "2024-02-01T10:00:00+09:00",
        "key": "rp",
        "customer_id": CID,
        "passport_id": "jiro.2",
        "password": "Jiro1234",
        "email": email,
        "applicant": {**APPLICANT, "name": name, "phone": phone},
        "limit": 1000,
        "line_auth": False,
        "access_key": KEY,
    }


REAL = ("jiro@example.jp", "Yamada Jiro", "06-9999-0000")
people = st.tuples(
    st.sampled_from([REAL[0], "guess@example.jp", "j@example.jp"]),
    st.sampled_from([REAL[1], "Tanaka Jiro", "Yamada Taro"]),
    st.sampled_from([REAL[2], "03-0000-0000", "06-1234-5678"]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(guesses=st.lists(people, min_size=1, max_size=6), erased=st.booleans())
def test_after_an_erasure_no_replay_tells_the_real_personal_data_from_a_guess(
    guesses: list[tuple[str, str, str]], erased: bool
) -> None:
    """After ``erase_personal_data``, every replay of the key gets the real body's answer;
    before it, only the real body does (the key compares personal fields like any other)."""
    with _engine() as engine:
        first = _run(engine, _register(*REAL))
        assert first[0] == "ok"
        if erased:
            engine.erase_personal_data(
                at="2024-02-02T10:00:00+09:00", passport_id="jiro.2", reason="request"
            )
        for guess in guesses:
            answer = _run(engine, _register(*guess))
            if erased or guess == REAL:
                assert answer == first
            else:
                assert answer == ("idempotency_conflict", "")

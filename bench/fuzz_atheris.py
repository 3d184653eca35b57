"""Coverage-guided fuzzing of the command-log reader with atheris (libFuzzer).

The property (docs/contract.md, "Command log"; the reliability issue): ``parse_line`` lets
nothing but ``invalid_input`` escape, whatever bytes a line holds; with ``--apply``,
``apply_line`` on an in-memory engine holding a short history never raises, answers the
contract's result object (one UTF-8 JSON line), and a refusal (but a counted wrong password)
writes nothing.  Any other exception is a crash: atheris prints it with the input and saves the
input as ``crash-<sha1>`` (see ``-artifact_prefix``).

Usage (atheris is not a dependency of matome: ``pip install atheris`` first)::

    python bench/fuzz_atheris.py -runs=200000                # parse_line
    python bench/fuzz_atheris.py --apply -runs=50000         # + apply_line on an engine
    python bench/fuzz_atheris.py -max_total_time=600 CORPUS_DIR

Every other argument is libFuzzer's.  Without a corpus directory, a fresh one is seeded with
valid contract-2 commands and a few nasty lines; a dictionary of the contract's command and
field names and of JSON's odd tokens is passed unless ``-dict=`` is given.  libFuzzer prints
the coverage (``cov:``, edges of matome's instrumented modules) after the seeds (``INITED``) and
at the end (``DONE``): the difference is what the mutations reached beyond the seeds.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

#: Valid contract-2 commands (the seeds, and the history of ``--apply``'s engine).
SEEDS: list[dict[str, Any]] = [
    {
        "command": "register_provider",
        "at": "2024-01-04T09:00:00+09:00",
        "provider": "A",
        "name": "A Co.",
        "contact": "0120-000-111",
        "goods": "information",
    },
    {
        "command": "list_service",
        "at": "2024-01-04T09:05:00+09:00",
        "provider": "A",
        "service": "back",
        "name": "back service",
        "pricing": "monthly",
        "price": 525,
    },
    {
        "command": "list_service",
        "at": "2024-01-04T09:05:00+09:00",
        "provider": "A",
        "service": "stamp",
        "name": "stamps",
        "pricing": "per_purchase",
        "price": 600,
    },
    {
        "command": "open_line",
        "at": "2024-01-05T10:00:00+09:00",
        "customer_id": "CAF0000000001",
        "operator": "west",
        "kind": "hikari_next",
        "access_key": "Ak3y0001",
        "line_limit": 10000,
        "billing": {"method": "phone_bill", "number": "06-1234-5678", "cycle_start_day": 6},
    },
    {
        "command": "register_passport",
        "at": "2024-01-06T11:00:00+09:00",
        "customer_id": "CAF0000000001",
        "access_key": "Ak3y0001",
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "email": "taro@example.jp",
        "applicant": {"name": "山田", "phone": "06-1234-5678", "contract_holder": True},
        "limit": 5000,
        "line_auth": True,
    },
    {
        "command": "purchase",
        "at": "2024-01-15T20:00:00+09:00",
        "passport_id": "yamada.taro",
        "password": "Pass1234",
        "provider": "A",
        "service": "stamp",
        "quantity": 2,
        "presented_line": "CAF0000000001",
        "ref": "order-1",
        "key": "k1",
    },
    {
        "command": "cancel",
        "at": "2024-02-01T08:00:00+09:00",
        "purchase_ref": "order-1",
        "password": "Pass1234",
    },
    {
        "command": "refund",
        "at": "2024-02-02T08:00:00+09:00",
        "purchase_ref": "order-1",
        "amount": 100,
        "reason": "返金",
    },
    {
        "command": "change_line",
        "at": "2024-02-03T08:00:00+09:00",
        "customer_id": "CAF0000000001",
        "change": "relocation",
        "new_customer_id": "CAF0000000002",
    },
    {
        "command": "set_fee",
        "at": "2024-02-10T09:00:00+09:00",
        "operator": "east",
        "effective_from": "2024-02",
        "flat_fee": 50,
    },
    {"command": "issue_bills", "at": "2024-03-01T09:00:00+09:00", "month": "2024-02"},
]

#: Lines beyond the bounds (seeds too).
NASTY = [
    b'{"command": "purchase", "password": "a", "password": "b"}',
    b'{"command": "register_provider", "name": "\\ud800"}',
    b'{"command": "list_service", "price": 1e400}',
    b'{"command": "list_service", "price": NaN}',
    b"[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]",
]

#: libFuzzer's dictionary: the contract's words and JSON's odd tokens.
TOKENS = [
    "command",
    "at",
    "key",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "\\ud800",
    "\\udc00",
    "\\u0000",
    "true",
    "false",
    "null",
    "+09:00",
    "T00:00:00",
    "2099-12-31",
    "2000-01-01",
    "99999999",
    "100000000",
]


def _arguments(argv: list[str]) -> tuple[bool, list[str]]:
    """(``--apply`` given, libFuzzer's argv with a seeded corpus and a dictionary added)."""
    import attrs

    from matome.commands import COMMANDS

    apply = "--apply" in argv
    rest = [a for a in argv if a != "--apply"]
    work = Path(tempfile.mkdtemp(prefix="matome-atheris-"))
    if not any(a.startswith("-dict=") for a in rest[1:]):
        words = set(TOKENS) | set(COMMANDS)
        for cls in COMMANDS.values():
            words |= {field.name for field in attrs.fields(cls)}
        dictionary = work / "matome.dict"
        dictionary.write_text("".join(f"{json.dumps(w)}\n" for w in sorted(words)))
        rest.insert(1, f"-dict={dictionary}")
    if not any(not a.startswith("-") for a in rest[1:]):
        corpus = work / "corpus"
        corpus.mkdir()
        lines = [json.dumps(s, ensure_ascii=False).encode() for s in SEEDS] + NASTY
        for n, line in enumerate(lines):
            (corpus / f"seed-{n:03d}").write_bytes(line)
        rest.append(str(corpus))
    print(f"matome atheris: work directory {work}", file=sys.stderr)
    return apply, rest


def main() -> None:
    atheris: Any = importlib.import_module("atheris")
    with atheris.instrument_imports(include=["matome"]):
        from matome.engine import Engine
        from matome.errors import InvalidInput
        from matome.interchange import apply_line, parse_line

    apply, argv = _arguments(sys.argv)
    engine = Engine.open(":memory:", hash_iterations=1) if apply else None
    if engine is not None:
        for n, seed in enumerate(SEEDS, start=1):
            apply_line(engine, n, json.dumps(seed))

    def one_input(data: bytes) -> None:
        with contextlib.suppress(InvalidInput):
            parse_line(data)
        if engine is None:
            return
        before = engine.internals.recorder.max_notification_id() or 0
        result = apply_line(engine, 1, data)
        json.dumps(result, ensure_ascii=False).encode("utf-8")
        if not result["ok"]:
            if set(result["error"]) != {"code", "message"}:
                raise AssertionError(f"not the contract's error object: {result}")
            after = engine.internals.recorder.max_notification_id() or 0
            if result["error"]["code"] != "wrong_password" and after != before:
                raise AssertionError(f"a refused line wrote {after - before} events: {result}")

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

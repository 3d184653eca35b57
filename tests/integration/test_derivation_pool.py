"""A batch's key derivations on a pool (issue 18, "Key derivation at the pace of the
hardware"): the batch is decided dry to learn the derivations it needs, they run side by side,
and the batch is then decided for real taking their results — with exactly the outcomes of
one command at a time, whatever the batch size."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matome.application import service as service_module
from matome.application._derive import DerivationPool, Prepared
from matome.commands import Purchase
from matome.credentials import TESTING, Argon2id
from matome.engine import Engine
from matome.generate import generate_log
from matome.interchange import apply_line, apply_lines, log_lines
from tests.integration.test_batch_ingestion import _check_same, _history
from tests.unit.helpers import ITEM, PID, PROVIDER, PW, WRONG, buy, setup_world

#: Argon2id made cheap for tests (far below OWASP's minimum: never for a store).
CHEAP_ARGON2 = Argon2id(memory_kib=8, time_cost=1, parallelism=1)


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every engine gets a derivation pool, even with the cheap testing KDF."""
    monkeypatch.setattr(service_module, "_costly", lambda kdf: True)


@pytest.mark.parametrize("batch", [3, 100])
def test_a_pooled_batched_run_decides_and_records_as_one_line_at_a_time(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    cheap_hashing: None,
    pooled: None,
    batch: int,
) -> None:
    """The generated mix — wrong passwords (counted, locking), keyed retries, registrations
    and purchases in one batch — gives the same results, events and documents."""
    commands = list(generate_log(40, 2, seed=batch + 11))
    _check_same(
        tmp_path,
        str(tmp_path / "one.sqlite"),
        str(tmp_path / "many.sqlite"),
        commands,
        batch,
        capsys,
    )


def _apply(db: str, text: bytes, batch: int, pool: bool) -> tuple[list[object], int]:
    engine = Engine.open(db, kdf=CHEAP_ARGON2)
    try:
        service = engine._commands
        service.pool = DerivationPool(service.hasher, 2) if pool else None
        lines = list(log_lines([*text.splitlines(keepends=True)]))
        results: list[object] = []
        if batch == 1:
            results = [apply_line(engine, x.number, x.text, x.position) for x in lines]
        else:
            for i in range(0, len(lines), batch):
                results += apply_lines(engine, lines[i : i + batch])
        return results, service.hasher.derivations
    finally:
        engine.close()


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.integers(min_value=2, max_value=80), seed=st.integers(0, 1000))
def test_pooled_results_equal_serial_ones_for_any_batch_size(
    tmp_path_factory: pytest.TempPathFactory, batch: int, seed: int
) -> None:
    """With Argon2id (cheap parameters): the pool changes the time, not one outcome; every
    derivation one at a time needs is done, and at most those the dry run foresaw besides."""
    folder = tmp_path_factory.mktemp("pool")
    text = "".join(
        json.dumps(c, ensure_ascii=False) + "\n" for c in generate_log(12, 2, seed=seed)
    ).encode()
    serial, serial_derivations = _apply(str(folder / "serial.sqlite"), text, 1, pool=False)
    pooled, pooled_derivations = _apply(str(folder / "pooled.sqlite"), text, batch, pool=True)
    assert pooled == serial
    assert _history(str(folder / "pooled.sqlite")) == _history(str(folder / "serial.sqlite"))
    assert pooled_derivations >= serial_derivations


def test_the_cheap_testing_kdf_runs_without_a_pool_and_production_with_one() -> None:
    """The pool pays only for a costly KDF: deciding a batch dry is not free."""
    cheap, costly = Engine.open(":memory:", kdf=TESTING), Engine.open(":memory:")
    try:
        assert cheap._commands.pool is None
        assert costly._commands.pool is not None
    finally:
        cheap.close()
        costly.close()


def test_closing_an_engine_stops_its_key_derivation_threads(pooled: None) -> None:
    """A service that opens an engine per tenant or per request must not keep a pool of
    threads for each engine it closed."""

    def kdf_threads() -> int:
        return sum(t.name.startswith("matome-kdf") for t in threading.enumerate())

    text = "".join(json.dumps(c) + "\n" for c in generate_log(3, 1, seed=5)).encode()
    before = kdf_threads()
    for _ in range(3):
        engine = Engine.open(":memory:", kdf=CHEAP_ARGON2)
        assert engine._commands.pool is not None
        lines = list(log_lines([*text.splitlines(keepends=True)]))
        apply_lines(engine, lines)  # a cold batch: its derivations start the pool's threads
        assert kdf_threads() > before
        engine.close()
    assert kdf_threads() == before


def test_a_warm_batch_is_decided_once_and_a_cold_one_dry_first() -> None:
    """Deciding dry costs a second decision per command: a batch whose every secret was
    verified lately is decided once; a new or wrong secret makes the batch foresee."""
    engine = Engine.open(":memory:", kdf=CHEAP_ARGON2)
    try:
        service = engine._commands
        service.pool = DerivationPool(service.hasher, 2)
        setup_world(engine)
        buy(engine, "2024-02-01T10:00:00+09:00")  # the password is now verified

        def purchase(password: str) -> Purchase:
            return Purchase(
                at="2024-02-02T10:00:00+09:00",
                passport_id=PID,
                password=password,
                provider=PROVIDER,
                service=ITEM,
            )

        assert service._derive_ahead([(purchase(PW), None)]) is service.hasher
        assert isinstance(service._derive_ahead([(purchase(WRONG), None)]), Prepared)
    finally:
        engine.close()

"""Long-running commands show progress (rate and ETA) on a terminal, and nothing elsewhere."""

from __future__ import annotations

import io

import pytest

from matome import cli


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_shows_count_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 2.0, 2.0])
    monkeypatch.setattr("matome._cli_output.time.monotonic", lambda: next(clock))
    screen = _Terminal()
    progress = cli._Progress(1000, "rebuild", stream=screen)
    progress.step(500)
    progress.close()
    text = screen.getvalue()
    assert "rebuild: 500/1,000 (50%)" in text
    assert "ETA 1s" in text
    assert "500/s" in text
    assert text.endswith("\n")


def test_progress_is_silent_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = cli._Progress(10, "rebuild", stream=stream)
    progress.step(10)
    progress.close()
    assert stream.getvalue() == ""


def test_run_progress_shows_key_derivations_per_second_beside_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 18: a cold log's pace is its key derivations', so ``matome run`` shows them."""
    clock = iter([0.0, 2.0, 2.0])
    monkeypatch.setattr("matome._cli_output.time.monotonic", lambda: next(clock))
    derived = [7]
    screen = _Terminal()
    progress = cli._Progress(
        100, "commands", stream=screen, beside=("derivations", lambda: derived[0])
    )
    derived[0] += 9  # counted from when the run started
    progress.step(40)
    progress.close()
    text = screen.getvalue()
    assert "20/s" in text
    assert "4.5 derivations/s" in text

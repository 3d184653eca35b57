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

"""docs/testing.md's examples run (the kit's documentation is executed in CI)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import Phase, settings

from matome.testing import profiles

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_testing_guide_examples_run() -> None:
    """Each python block of the guide runs.  Its properties run under the current profile but
    without shrinking: a failing example is reported as found (shrinking a whole generated log
    takes minutes, and the point here is that the guide's code is right, not the smallest
    counter-example)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 3
    settings.register_profile(
        "docs", settings.default, phases=[Phase.explicit, Phase.reuse, Phase.generate]
    )
    settings.load_profile("docs")
    try:
        for block in blocks:
            # A file name Hypothesis cannot open as Python source (it reads the file of a failing
            # test to explain it; Markdown is not Python).
            exec(compile(block, f"<{DOC.name}>", "exec"), {"__name__": "testing_doc"})
    finally:
        profiles.load()

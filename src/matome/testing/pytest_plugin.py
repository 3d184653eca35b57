"""The ``matome`` pytest plugin: the kit one import away.

Installed with matome (entry point ``pytest11``), it loads the Hypothesis profile named by
``HYPOTHESIS_PROFILE`` (``ci`` by default) and provides fixtures:

* ``matome_engine`` — a fresh in-memory :class:`~matome.engine.Engine` with cheap password
  hashing (the same scheme, one PBKDF2 round);
* ``matome_model`` — a fresh :class:`~matome.testing.model.ReferenceModel`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from matome.testing import profiles


def pytest_configure(config: pytest.Config) -> None:
    profiles.load()


@pytest.fixture
def matome_engine() -> Iterator[Any]:
    from matome.engine import Engine

    engine = Engine.open(":memory:", hash_iterations=1)
    yield engine
    engine.close()


@pytest.fixture
def matome_model() -> Any:
    from matome.testing.model import ReferenceModel

    return ReferenceModel()

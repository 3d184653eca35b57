"""matome's pytest plugin: the kit's Hypothesis profiles and fixtures, for projects that ask.

It is not loaded by installing matome.  A project opts in with, in its ``conftest.py``::

    pytest_plugins = ["matome.testing.pytest_plugin"]

or on the command line with ``pytest -p matome.testing.pytest_plugin``.  It then loads the
Hypothesis profile named by ``HYPOTHESIS_PROFILE`` (``ci`` by default; see
:mod:`matome.testing.profiles`) — unless Hypothesis' own ``--hypothesis-profile`` option names
one — and provides fixtures:

* ``matome_engine`` — a fresh in-memory :class:`~matome.engine.Engine` with cheap password
  hashing (the same scheme, fewer rounds);
* ``matome_model`` — a fresh :class:`~matome.testing.model.ReferenceModel`.

An unknown ``HYPOTHESIS_PROFILE`` stops pytest with a usage error that names the known
profiles.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from matome.testing import profiles

__all__ = ["matome_engine", "matome_model", "pytest_configure"]

# Registered on import, so that Hypothesis' own --hypothesis-profile=ci can name them too.
profiles.register()


def pytest_configure(config: pytest.Config) -> None:
    """Load the profile named by ``HYPOTHESIS_PROFILE`` (``ci`` by default)."""
    if config.getoption("hypothesis_profile", None):
        return  # Hypothesis' own option wins; its plugin loads that profile
    try:
        profiles.load()
    except profiles.UnknownProfile as e:
        raise pytest.UsageError(str(e)) from None


@pytest.fixture
def matome_engine() -> Iterator[Any]:
    """A fresh in-memory engine with cheap password hashing, closed after the test."""
    from matome.engine import Engine

    engine = Engine.open(":memory:", hash_iterations=1)
    yield engine
    engine.close()


@pytest.fixture
def matome_model() -> Any:
    """A fresh reference model under the default policy."""
    from matome.testing.model import ReferenceModel

    return ReferenceModel()

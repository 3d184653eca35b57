"""Hypothesis profiles for matome's property tests and for downstream users of the kit.

* ``ci`` — bounded and derandomized: the same examples every run, fits a CI budget;
* ``dev`` — more examples, random, for local work;
* ``deep`` — long runs before a release (thousands of examples, long state-machine runs).

Select one with ``HYPOTHESIS_PROFILE=deep pytest`` in a project that loads the kit's pytest
plugin (:mod:`matome.testing.pytest_plugin`), or call :func:`load` in your own
``conftest.py``.  Nothing is registered or loaded until you ask: importing matome leaves
Hypothesis' settings alone.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

__all__ = ["ENV", "PROFILES", "UnknownProfile", "load", "register"]

#: The kit's profiles, in increasing order of effort.
PROFILES = ("ci", "dev", "deep")
#: The environment variable that names the profile to load.
ENV = "HYPOTHESIS_PROFILE"


class UnknownProfile(ValueError):
    """``HYPOTHESIS_PROFILE`` (or the name given to :func:`load`) is not a registered profile."""


def register() -> None:
    """Register the three profiles (idempotent)."""
    settings.register_profile(
        "ci",
        max_examples=40,
        stateful_step_count=30,
        derandomize=True,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile(
        "dev",
        max_examples=200,
        stateful_step_count=50,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile(
        "deep",
        max_examples=2_000,
        stateful_step_count=100,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


def load(default: str = "ci") -> str:
    """Register the profiles and load ``$HYPOTHESIS_PROFILE`` (or ``default``); return its
    name.  A name nobody registered raises :class:`UnknownProfile`, naming the known ones."""
    register()
    name = os.environ.get(ENV) or default
    try:
        # Asked first: Hypothesis' load_profile notes an unknown name as the current profile
        # before refusing it, which breaks every later register_profile in the process.
        settings.get_profile(name)
    except InvalidArgument:
        raise UnknownProfile(
            f"{ENV}={name!r} is not a registered Hypothesis profile; matome's kit registers "
            f"{', '.join(PROFILES)} (a profile of your own must be registered before the "
            "kit loads it)"
        ) from None
    settings.load_profile(name)
    return name

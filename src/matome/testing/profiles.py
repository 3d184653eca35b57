"""Hypothesis profiles for matome's property tests and for downstream users of the kit.

* ``ci`` — bounded and derandomized: the same examples every run, fits a CI budget;
* ``dev`` — more examples, random, for local work;
* ``deep`` — long runs before a release (thousands of examples, long state-machine runs).

Select one with ``HYPOTHESIS_PROFILE=deep pytest`` (the pytest plugin loads it) or
:func:`load` in your own ``conftest.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["PROFILES", "load", "register"]

PROFILES = ("ci", "dev", "deep")


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
    """Register the profiles and load ``$HYPOTHESIS_PROFILE`` (or ``default``)."""
    register()
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    settings.load_profile(name)
    return name

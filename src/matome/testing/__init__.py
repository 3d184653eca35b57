"""matome's property-based testing kit: strategies, a reference model and a state machine.

``from matome.testing import strategies as mst`` gives Hypothesis strategies for every value
type (valid and invalid), single commands and realistic command logs;
:class:`matome.testing.model.ReferenceModel` is an independent implementation of the rules;
:mod:`matome.testing.machine` drives the engine and the model side by side.  All three speak
contract 2 of the interchange contract: credentials on the line holder's and the Passport ID
holder's commands, quantities, password resets, fees and the contract-2 order of refusals.

The kit is opt-in: it needs Hypothesis (``pip install 'matome[testing]'``), and its pytest
plugin (:mod:`matome.testing.pytest_plugin`: the profiles and two fixtures) loads only in a
project that asks for it — ``pytest_plugins = ["matome.testing.pytest_plugin"]`` in a
``conftest.py``, or ``pytest -p matome.testing.pytest_plugin``.  Installing matome changes no
other project's pytest or Hypothesis settings.
"""

try:
    import hypothesis as _hypothesis  # noqa: F401  # the kit's one extra dependency
except ImportError as e:  # pragma: no cover - exercised in a subprocess without Hypothesis
    raise ImportError(
        "matome.testing (the property-testing kit) needs Hypothesis, which matome does not "
        "install by default: pip install 'matome[testing]'"
    ) from e

__all__: list[str] = []

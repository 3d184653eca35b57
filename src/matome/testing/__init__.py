"""matome's property-based testing kit: strategies, a reference model and a state machine.

``from matome.testing import strategies as mst`` gives Hypothesis strategies for every value
type (valid and invalid), single commands and realistic command logs;
:class:`matome.testing.model.ReferenceModel` is an independent implementation of the rules;
:mod:`matome.testing.machine` drives the engine and the model side by side.  All three speak
contract 2 of the interchange contract: credentials on the line holder's and the Passport ID
holder's commands, quantities, password resets, fees and the contract-2 order of refusals.
"""

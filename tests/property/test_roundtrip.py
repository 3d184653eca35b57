"""Round trips through the one wire format (``matome.wire``): every value type, every event.

What is written can be read back equal, through the JSON text and through eventsourcing's
stored-event form (``EventMapper``); and a stored state that breaks a format rule of docs/rules.md
§1 does not load (``MapperDeserialisationError``), because loading re-runs every validator.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import JSONTranscoder, MapperDeserialisationError, StoredEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from matome import wire
from matome.application import eventstore
from matome.errors import InvalidInput
from matome.events import EVENT_TOPICS, DomainEvent
from matome.events.line import LineOpened
from matome.events.passport import PasswordRejected
from matome.values import (
    TOKYO,
    AccessKey,
    Applicant,
    BillingAccount,
    CustomerId,
    Email,
    PassportId,
    Password,
    ProviderCode,
    ServiceCode,
    YearMonth,
    Yen,
)
from tests.property import strategies as s

EVENT_CLASSES = s.event_classes()
BY_TOPIC = [pytest.param(cls, id=cls.TOPIC) for cls in EVENT_CLASSES]


def _mapper(compressed: bool = False) -> eventstore.EventMapper:
    return eventstore.EventMapper(
        transcoder=JSONTranscoder(), compressor=ZlibCompressor() if compressed else None
    )


def test_every_registered_event_class_has_a_strategy() -> None:
    """A new event class must be covered by the round-trip tests the day it is registered."""
    assert len(EVENT_CLASSES) >= 25
    for topic, cls in EVENT_TOPICS.items():
        assert topic == cls.TOPIC
        s.events(cls)  # raises LookupError for a field type with no strategy
        for name, tp in s.field_types(cls).items():
            assert s.for_type(tp) is not None, (topic, name)


# ---------------------------------------------------------------------------------------------
# Events


@pytest.mark.parametrize("cls", BY_TOPIC)
@given(data=st.data())
def test_every_event_round_trips_through_its_json_state_and_the_event_mapper(
    cls: type[DomainEvent], data: st.DataObject
) -> None:
    event = data.draw(s.events(cls))
    state = eventstore.event_to_json(event)
    assert "originator_id" not in state  # the stream position is the store's
    assert "originator_version" not in state
    restored = eventstore.event_from_json(
        cls.TOPIC, json.loads(wire.dumps(state)), event.originator_id, event.originator_version
    )
    assert restored == event
    assert type(restored) is cls
    # The business time keeps the offset it was written with, not only the instant.
    assert restored.at.utcoffset() == event.at.utcoffset()

    mapper = _mapper(compressed=data.draw(st.booleans(), label="compressed"))
    stored = mapper.to_stored_event(event)
    assert stored.topic == cls.TOPIC
    assert stored.originator_id == event.originator_id
    assert stored.originator_version == event.originator_version
    assert mapper.to_domain_event(stored) == event


@given(event=s.events(LineOpened))
def test_the_mapper_also_accepts_a_string_originator_id(event: DomainEvent) -> None:
    """Some recorders hand back the originator id as text."""
    mapper = _mapper()
    stored = mapper.to_stored_event(event)
    as_text = StoredEvent(
        originator_id=str(stored.originator_id),
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=stored.state,
    )
    assert mapper.to_domain_event(as_text) == event


@given(event=s.events(LineOpened))
@settings(max_examples=20)
def test_stored_state_is_canonical_json_without_secrets(event: DomainEvent) -> None:
    """One wire format: sorted keys, no white space, readable UTF-8."""
    stored = _mapper().to_stored_event(event)
    text = stored.state.decode()
    assert text == wire.dumps(json.loads(text))
    assert '"access_key"' not in text  # only its hash is an event field


def test_the_mapper_refuses_objects_that_are_not_registered_events() -> None:
    with pytest.raises(TypeError, match="not a registered matome event"):
        _mapper().to_stored_event(object())


# ---------------------------------------------------------------------------------------------
# Corrupted stored state does not load


def _stored(event: DomainEvent, **changes: Any) -> StoredEvent:
    stored = _mapper().to_stored_event(event)
    state = json.loads(stored.state)
    for key, value in changes.items():
        if value is _DROP:
            del state[key]
        else:
            state[key] = value
    return StoredEvent(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=wire.dumps(state).encode(),
    )


_DROP = object()


def _is_customer_id(text: str) -> bool:
    try:
        CustomerId(text)
    except InvalidInput:
        return False
    return True


@given(
    event=s.events(LineOpened),
    bad=st.one_of(
        st.sampled_from(
            ["caf0000000001", "CAF123", "COP1234567", "ＣＡＦ0000000001", "CAF 000000001", ""]
        ),
        s.texts,
    ).filter(lambda t: not _is_customer_id(t)),
)
def test_a_stored_customer_id_that_breaks_the_format_fails_to_load(
    event: DomainEvent, bad: str
) -> None:
    """§1 formats are checked again on load: a corrupted store is found, never trusted."""
    with pytest.raises(MapperDeserialisationError, match=re.escape(LineOpened.TOPIC)):
        _mapper().to_domain_event(_stored(event, customer_id=bad))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", 1234567890),
        ("line_limit", 1000.0),
        ("line_limit", True),
        ("line_limit", "1000"),
        ("operator", "north"),
        ("kind", "isdn"),
        ("at", "2025-01-15T10:00:00"),  # naive
        ("at", "not a time"),
        ("timestamp", "2025-01-15T10:00:00"),
        ("billing", {"method": "customer_number", "number": "1234"}),
        ("billing", {"method": "customer_number", "number": "0012345678", "extra": 1}),
        ("billing", {"method": "cash"}),
        ("predecessor", "CAF1"),
        ("customer_id", _DROP),
        ("billing", _DROP),
    ],
)
@given(event=s.events(LineOpened))
@settings(max_examples=5)
def test_a_stored_line_opened_with_a_bad_field_fails_to_load(
    field: str, value: Any, event: DomainEvent
) -> None:
    with pytest.raises(MapperDeserialisationError):
        _mapper().to_domain_event(_stored(event, **{field: value}))


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        ("matome.line.PassportAttached", "passport_id", "abc"),
        ("matome.line.PassportAttached", "passport_id", "taro+1"),
        ("matome.passport.Registered", "email", "not-an-address"),
        ("matome.passport.Registered", "applicant", {"name": "", "phone": "1"}),
        ("matome.subscription.Purchased", "price", 525.5),
        ("matome.subscription.Purchased", "pricing", "hourly"),
        ("matome.catalog.ServiceListed", "service", "no spaces"),
        ("matome.calendar.MonthsClosed", "through", "2025-13"),
        ("matome.passport.PasswordRejected", "consecutive", None),
        ("matome.line.LineMoved", "deleted", ["abc"]),
    ],
)
@given(data=st.data())
@settings(max_examples=5)
def test_stored_events_that_break_a_value_rule_fail_to_load(
    topic: str, field: str, value: Any, data: st.DataObject
) -> None:
    event = data.draw(s.events(EVENT_TOPICS[topic]))
    with pytest.raises(MapperDeserialisationError):
        _mapper().to_domain_event(_stored(event, **{field: value}))


def test_a_stored_boolean_that_is_not_a_boolean_fails_to_load() -> None:
    """A corrupted store must be found, never trusted: ``"locked": "false"`` is not a bool."""
    event = PasswordRejected(
        originator_id=uuid4(),
        originator_version=3,
        timestamp=datetime(2025, 1, 15, 1, 0, tzinfo=UTC),
        at=datetime(2025, 1, 15, 10, 0, tzinfo=TOKYO),
        consecutive=3,
        locked=False,
    )
    with pytest.raises(MapperDeserialisationError):
        _mapper().to_domain_event(_stored(event, locked="false"))


def test_unreadable_bytes_and_unknown_topics_fail_to_load() -> None:
    mapper = _mapper()
    garbage = StoredEvent(
        originator_id=uuid4(), originator_version=1, topic=LineOpened.TOPIC, state=b"{not json"
    )
    with pytest.raises(MapperDeserialisationError):
        mapper.to_domain_event(garbage)
    unknown = StoredEvent(
        originator_id=uuid4(), originator_version=1, topic="matome.nothing.Here", state=b"{}"
    )
    with pytest.raises(MapperDeserialisationError, match=r"matome\.nothing\.Here"):
        mapper.to_domain_event(unknown)


# ---------------------------------------------------------------------------------------------
# Value types


VALUE_TYPES: list[Any] = [
    pytest.param(s.customer_ids, CustomerId, id="CustomerId"),
    pytest.param(s.passport_ids, PassportId, id="PassportId"),
    pytest.param(s.provider_codes, ProviderCode, id="ProviderCode"),
    pytest.param(s.service_codes, ServiceCode, id="ServiceCode"),
    pytest.param(s.emails, Email, id="Email"),
    pytest.param(s.applicants, Applicant, id="Applicant"),
    pytest.param(s.yens, Yen, id="Yen"),
    pytest.param(s.year_months, YearMonth, id="YearMonth"),
    pytest.param(s.billing_accounts, BillingAccount, id="BillingAccount"),
    pytest.param(s.aware_datetimes, datetime, id="datetime"),
    pytest.param(st.uuids(), UUID, id="UUID"),
]


@pytest.mark.parametrize(("values", "tp"), VALUE_TYPES)
@given(data=st.data())
def test_every_value_type_round_trips_through_json(
    values: st.SearchStrategy[Any], tp: Any, data: st.DataObject
) -> None:
    value = data.draw(values)
    text = wire.dumps(wire.converter.unstructure(value, unstructure_as=tp))
    assert wire.converter.structure(json.loads(text), tp) == value


@given(s.year_months)
def test_year_month_text_round_trips(month: YearMonth) -> None:
    assert YearMonth.parse(str(month)) == month
    assert month.next().previous() == month


@given(s.customer_ids, s.passport_ids)
def test_identifier_text_round_trips(customer_id: CustomerId, passport_id: PassportId) -> None:
    assert CustomerId(str(customer_id)) == customer_id
    assert PassportId(str(passport_id)) == passport_id


@given(
    st.text(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=4, max_size=10
    )
)
def test_secrets_are_never_serialised(text: str) -> None:
    """§10: credentials never reach the wire format in clear text."""
    for secret in (Password(text), AccessKey("Abcd1234")):
        with pytest.raises(TypeError, match="never serialised"):
            wire.converter.unstructure(secret)
        assert text not in repr(Password(text))
    with pytest.raises(TypeError, match="never serialised"):
        wire.converter.structure(text, Password)

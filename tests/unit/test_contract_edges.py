"""The contract's edges as properties (issue 11): the time range and leap seconds,
zero-padded ids and subjects, U+0000, text limits and counts. The fixed cases are in
contract_cases.py; these search the space around them. Where the JSON Schema can say
the rule, it must give the parser's verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from events import json_schema
from events.envelope import PurchasedEvent, StartedEvent
from events.parse import Refusal, parse_event, parse_object
from events.times import EARLIEST, END
from tests.unit.contract_cases import (
    ADJUSTED,
    MAX_ID,
    PURCHASED,
    STARTED,
    STOPPED,
    base,
    encode,
    mutate,
)

_SCHEMA = Draft202012Validator(
    json.loads((json_schema.SCHEMA_DIR / json_schema.INBOUND_FILE).read_text("utf-8")),
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)

# Offsets of up to a day either way, in minutes: more than any zone's.
_OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59)
# Instants (naive, read as UTC) within a few days of either end of the range.
_NEAR_THE_ENDS = st.one_of(
    st.datetimes(datetime(1, 1, 1), datetime(1, 1, 4)),
    st.datetimes(datetime(9999, 12, 28), datetime(9999, 12, 31, 23, 59, 59, 999999)),
)


def _offset_text(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _local_text(utc: datetime, minutes: int) -> str:
    """`utc` as RFC 3339 text in the zone `minutes` east of UTC (without tzinfo, so that
    local times past the calendar's ends are never formed)."""
    try:
        local = utc + timedelta(minutes=minutes)
    except OverflowError:
        assume(False)
        raise
    return local.isoformat(timespec="microseconds") + _offset_text(minutes)


def _started_at(text: str) -> StartedEvent | Refusal:
    result = parse_event(encode(mutate(base(STARTED), time=text)))
    assert isinstance(result, StartedEvent | Refusal)
    return result


@given(utc=_NEAR_THE_ENDS, minutes=_OFFSETS)
def test_a_time_is_accepted_exactly_inside_the_range(utc: datetime, minutes: int) -> None:
    text = _local_text(utc, minutes)
    instant = utc.replace(tzinfo=UTC)
    result = _started_at(text)
    if EARLIEST <= instant < END:
        assert isinstance(result, StartedEvent), result
        assert result.time == instant
        assert result.time.utcoffset() == timedelta(minutes=minutes)
    else:
        assert isinstance(result, Refusal), text
        assert result.reason.startswith(f"time: '{text}' is outside the contract's range")


@given(utc=_NEAR_THE_ENDS, minutes=_OFFSETS)
def test_the_range_applies_to_every_time_in_data(utc: datetime, minutes: int) -> None:
    text = _local_text(utc, minutes)
    inside = EARLIEST <= utc.replace(tzinfo=UTC) < END
    activity = {"data__packDurationType": "type.activity", "data__durationSeconds": None}
    for field, event in (
        ("buyDatetime", mutate(base(PURCHASED), data__buyDatetime=text)),
        ("activityEndTime", mutate(base(PURCHASED), **activity, data__activityEndTime=text)),
    ):
        result = parse_event(encode(event))
        assert isinstance(result, PurchasedEvent) is inside, (field, text)
        if not inside:
            assert isinstance(result, Refusal)
            assert result.reason.startswith(f"data.{field}: '{text}' is outside")


@given(
    moment=st.datetimes(datetime(1, 1, 3), datetime(9999, 12, 29)),
    fraction=st.text("0123456789", max_size=12),
    minutes=_OFFSETS,
)
def test_a_leap_second_is_the_last_microsecond_of_second_59(
    moment: datetime, fraction: str, minutes: int
) -> None:
    head = moment.replace(second=59).isoformat(timespec="seconds")[:-2]
    offset = _offset_text(minutes)
    leap = _started_at(f"{head}60{'.' + fraction if fraction else ''}{offset}")
    plain = _started_at(f"{head}59.999999{offset}")
    assert isinstance(leap, StartedEvent) and isinstance(plain, StartedEvent)
    assert leap.time == plain.time
    assert leap.time.microsecond == 999999 and leap.time.second == 59
    assert leap.time.utcoffset() == timedelta(minutes=minutes)


def test_times_built_in_python_are_held_to_the_range() -> None:
    event = base(STARTED)
    event["time"] = datetime(9999, 12, 31, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert isinstance(parse_object(event), StartedEvent)  # 9999-12-30T23:30:00Z
    event["time"] = datetime(9999, 12, 31, tzinfo=UTC)
    with pytest.raises(ValueError, match="outside the contract's range"):
        parse_object(event)


@given(
    pack=st.integers(1, MAX_ID),
    subject_zeros=st.integers(0, 30),
    id_zeros=st.integers(0, 30),
    as_number=st.booleans(),
)
def test_a_zero_padded_subject_names_the_same_pack(
    pack: int, subject_zeros: int, id_zeros: int, as_number: bool
) -> None:
    user_pack_id: Any = pack if as_number else "0" * id_zeros + str(pack)
    subject = "0" * subject_zeros + str(pack)
    result = parse_event(
        encode(mutate(base(STARTED), subject=subject, data__userPackId=user_pack_id))
    )
    assert isinstance(result, StartedEvent), result
    assert result.data.userPackId == pack
    other = str(pack + 1 if pack < MAX_ID else pack - 1)
    refused = parse_event(
        encode(mutate(base(STARTED), subject="0" * subject_zeros + other, data__userPackId=pack))
    )
    assert isinstance(refused, Refusal)
    assert "does not match data.userPackId" in refused.reason


_TRICKY_TEXT = st.text(st.sampled_from(["\\", "u", "0", "\x00", "a", '"', "训"]), max_size=16)


@given(text=_TRICKY_TEXT, key=_TRICKY_TEXT)
def test_only_a_decoded_u0000_is_refused(text: str, key: str) -> None:
    """Whatever mix of backslashes and `u0000` a string holds, in a value or a key at
    any depth, only a real U+0000 in it is refused, and the reason says where."""
    event = mutate(base(STARTED), data__trainName="t" + text, data__extra={"k" + key: [text]})
    result = parse_event(encode(event))
    if "\x00" in text:
        assert isinstance(result, Refusal)
        assert result.reason.startswith("data.trainName: contains the character U+0000")
    elif "\x00" in key:
        assert isinstance(result, Refusal)
        assert result.reason.startswith("data.extra: a key contains the character U+0000")
    else:
        assert isinstance(result, StartedEvent), result
        assert result.data.trainName == "t" + text


_LIMITS = {
    ("data__packName", PURCHASED): (1, 255),
    ("data__nodeList__0__nodeName", PURCHASED): (0, 255),
    ("data__userName", PURCHASED): (0, 255),
    ("data__userName", STARTED): (0, 255),
    ("data__trainName", STARTED): (1, 1000),
    ("data__reason", STOPPED): (0, 1000),
    ("data__reason", ADJUSTED): (0, 1000),
}


@given(
    field=st.sampled_from(sorted(_LIMITS)),
    char=st.sampled_from(["a", "训", "🚀"]),
    length=st.integers(0, 1010),
)
def test_text_limits_count_characters_and_the_schema_agrees(
    field: tuple[str, str], char: str, length: int
) -> None:
    path, kind = field
    shortest, longest = _LIMITS[field]
    event = mutate(base(kind), **{path: char * length})
    accepted = not isinstance(parse_event(encode(event)), Refusal)
    assert accepted is (shortest <= length <= longest)
    assert _SCHEMA.is_valid(event) is accepted


_COUNTS = (
    (PURCHASED, "data__durationSeconds"),
    (PURCHASED, "data__nodeList__0__cpuCount"),
    (PURCHASED, "data__nodeList__0__gpuCount"),
    (PURCHASED, "data__nodeList__1__memorySize"),
    (ADJUSTED, "data__deltaSeconds"),
)
_COUNT_VALUES = st.one_of(
    st.integers(1, 10**12),
    st.integers(1, 10**12).map(float),
    st.integers(1, 10**6).map(lambda n: n + 0.5),
    st.integers(1, 10**12).map(str),
    st.booleans(),
)


@given(field=st.sampled_from(_COUNTS), value=_COUNT_VALUES)
def test_counts_are_json_integers_for_the_parser_and_the_schema(
    field: tuple[str, str], value: Any
) -> None:
    kind, path = field
    event = mutate(base(kind), **{path: value})
    result = parse_event(encode(event))
    integral = type(value) in (int, float) and float(value).is_integer()
    assert (not isinstance(result, Refusal)) is integral, result
    assert _SCHEMA.is_valid(event) is integral

"""The request fields' types that pydantic has no word for, each documented as it is accepted.

Every type here is an `Annotated` pydantic type: a before-validator turns what the
contract accepts into the value (a digit string into its number, a spelling into the data
dictionary's value) or raises the contract's rule as the error's type (see
`api.validation.Rule`); pydantic's own constraints (`ge`, `le`, `Literal`, strict types)
then check the value, and their errors are read as rules by `api.validation`.
`json_schema_input_type` makes the OpenAPI document show what is accepted, not the value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, PlainValidator, Strict, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from api.validation import Rule

ID_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
MAX_PAGE_SIZE = 100

_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_LONG_TEXT = 30
"""Significant digits past which a number is out of every range here: `int()` of a long
string is slow (and refused past 4300 digits), so it is never called on one. Leading
zeros are not significant: `"000...076"` of any length is 76."""
_BEYOND_EVERY_RANGE = 10**_LONG_TEXT


def broken(rule: Rule) -> PydanticCustomError:
    """A validation error whose type is the contract's rule."""
    return PydanticCustomError(rule.value, rule.value)


# --- null and blank -----------------------------------------------------------------------


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise broken(Rule.NOT_NULL)
    return value


def _refuse_blank(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise broken(Rule.NOT_BLANK)
    return value


def _blank_is_null(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


NotNull = BeforeValidator(_refuse_null)
"""A required field: missing or null breaks `notNull` (see `api.params.RequestBody`)."""
NotBlank = BeforeValidator(_refuse_blank)
"""A required field: missing, null, empty or white-space text breaks `notBlank`."""
BlankIsNull = BeforeValidator(_blank_is_null)
"""An optional field where empty or white-space text means absent."""


def null_is(default: Any, documented: Any) -> BeforeValidator:
    """An optional field whose null is its default (documented as `documented | None`)."""
    return BeforeValidator(
        lambda value: default if value is None else value,
        json_schema_input_type=documented | None,
    )


# --- integers -----------------------------------------------------------------------------


def _integer(value: Any, pattern: re.Pattern[str]) -> Any:
    """A number given as text matching `pattern` as that number; an integer beyond 64
    bits (which the JSON parser made a float) as that integer. Anything else is left for
    the strict `int` to refuse (`typeMismatch`): true/false, 5.0, "1.5", " 12", lists...
    """
    if isinstance(value, str):
        if not pattern.fullmatch(value):
            return value
        negative = value.startswith("-")
        significant = value.lstrip("-").lstrip("0")
        number = _BEYOND_EVERY_RANGE if len(significant) > _LONG_TEXT else int(significant or "0")
        return -number if negative else number
    if isinstance(value, float) and abs(value) >= 2**63:
        return int(value)  # out of every range: min or max by its sign
    return value


def _signed_integer(value: Any) -> Any:
    return _integer(value, _INTEGER_TEXT)


def _digits_integer(value: Any) -> Any:
    return _integer(value, _DIGITS)


_DigitText = Annotated[str, Field(pattern=r"^[0-9]+$", description="digits, any leading zeros")]

EntityId = Annotated[
    int,
    Strict(),
    Field(ge=1, le=ID_MAX),
    BeforeValidator(
        _digits_integer, json_schema_input_type=Annotated[int, Field(ge=1, le=ID_MAX)] | _DigitText
    ),
]
"""An id: a positive integer below 2^63, as a JSON number or a string of digits."""

PageNum = Annotated[int, Strict(), Field(ge=1, le=INT32_MAX), BeforeValidator(_signed_integer)]
PageSize = Annotated[int, Strict(), Field(ge=1, le=MAX_PAGE_SIZE), BeforeValidator(_signed_integer)]
"""Page numbers and sizes: JSON integers, or integers as (signed) text."""


# --- enums --------------------------------------------------------------------------------

StatusInput = Literal[
    "status.free",
    "status.training",
    "status.outOfTime",
    "userPackStatus.free",
    "userPackStatus.training",
    "userPackStatus.outOfTime",
]
DurationTypeInput = Literal[
    "type.timing", "type.activity", "packDurationType.timing", "packDurationType.activity"
]
Status = Literal["status.free", "status.training", "status.outOfTime"]
DurationType = Literal["type.timing", "type.activity"]


def _spellings(accepted: Any, value_prefix: str) -> dict[str, str]:
    """Accepted spelling -> the data dictionary's value: `userPackStatus.free` -> `status.free`."""
    return {
        spelling: f"{value_prefix}.{spelling.rsplit('.', 1)[1]}" for spelling in get_args(accepted)
    }


STATUS_SPELLINGS = _spellings(StatusInput, "status")
DURATION_TYPE_SPELLINGS = _spellings(DurationTypeInput, "type")


def _choice(spellings: Mapping[str, str], accepted: Any) -> BeforeValidator:
    """Null or "" is absent; text outside `spellings` is `inEnum`, anything else
    `typeMismatch`. The document lists the `accepted` spellings."""

    def choose(value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise broken(Rule.TYPE_MISMATCH)
        found = spellings.get(value)
        if found is None:
            raise broken(Rule.IN_ENUM)
        return found

    return BeforeValidator(choose, json_schema_input_type=accepted | None)


StatusFilter = Annotated[Status | None, _choice(STATUS_SPELLINGS, StatusInput)]
DurationTypeFilter = Annotated[
    DurationType | None, _choice(DURATION_TYPE_SPELLINGS, DurationTypeInput)
]


# --- order entries ------------------------------------------------------------------------


def _text_or_empty(value: Any) -> str:
    """Null and "" alike are the empty choice; a value that is not text is `typeMismatch`
    (not `inEnum`, which pydantic's `Literal` would say)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise broken(Rule.TYPE_MISMATCH)
    return value


def _sort(value: Any) -> str:
    lowered = _text_or_empty(value).lower()
    return lowered or "asc"


Sort = Annotated[
    Literal["asc", "desc"],
    BeforeValidator(_sort, json_schema_input_type=Literal["asc", "desc", "ASC", "DESC", ""]),
]
"""`asc` or `desc` in any case; null or empty is `asc`."""


def order_key(keys: Collection[str]) -> BeforeValidator:
    """An order key among `keys`: null or "" is the default order (kept as "")."""
    accepted = frozenset(keys)

    def key(value: Any) -> str:
        text = _text_or_empty(value)
        if text and text not in accepted:
            raise broken(Rule.IN_ENUM)
        return text

    documented = {"type": "string", "enum": ["", *keys]}
    return BeforeValidator(key, json_schema_input_type=Annotated[str, WithJsonSchema(documented)])


# --- instants -----------------------------------------------------------------------------

_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_RFC3339_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
AS_OF_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"|[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
)


def _parse_instant(value: str, zone: ZoneInfo) -> datetime:
    """Raises ValueError for text of neither form and for no such date or time."""
    if _LOCAL_TIME.fullmatch(value):
        return datetime.fromisoformat(value).replace(tzinfo=zone)
    if not _RFC3339_TIME.fullmatch(value):
        raise ValueError(value)
    text = value.upper().replace(" ", "T")
    # Python keeps microseconds: drop further fractional digits.
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    return datetime.fromisoformat(text)


def _instant(value: Any, info: ValidationInfo) -> datetime | None:
    """Null or "" is absent (now). An instant after the request's `now` breaks `max`, one
    before year 1 in UTC `min`; the zone and `now` come from the validation's context."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise broken(Rule.TYPE_MISMATCH)
    context = info.context
    if context is None:  # a programming error: see api.validation.validate
        raise TypeError("asOf is read with the request's zone and now as context")
    try:
        moment = _parse_instant(value, context["zone"])
    except ValueError:  # no such date or time (month 13, hour 24, ...)
        raise broken(Rule.TYPE_MISMATCH) from None
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 00:00:00 east of Greenwich
        raise broken(Rule.MIN) from None
    if moment > context["now"]:
        raise broken(Rule.MAX)
    return moment


_AsOfText = Annotated[
    str,
    Field(
        pattern=AS_OF_TIME,
        description=(
            "Extension of the platform's document (time travel, docs/api.md): answer as "
            "of this past instant, from the events' times. `yyyy-MM-dd HH:mm:ss` in the "
            "API's zone, or RFC 3339 with an offset; null or empty: now. Malformed: "
            "typeMismatch; after now: max."
        ),
        examples=["2024-05-01 08:00:00", "2024-05-01T00:00:00Z"],
    ),
]

AsOf = Annotated[datetime | None, PlainValidator(_instant, json_schema_input_type=_AsOfText | None)]
"""`asOf`: an instant (UTC) of the past, or None for now."""

"""Hand-written request validation: every violation of a body, in the contract's rule names.

A `Checker` reads one field at a time from a JSON object and records what is wrong with
it; `Checker.finish()` raises one `General.ParameterInvalid` naming all of them. The
order of the checks is the order of the fields in `ruleViolated` (and `msg` names the
first). Nothing here knows an endpoint: `api.params` says which field follows which rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from api.envelope import ApiError, Code

ID_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,30}")
_DIGITS = re.compile(r"[0-9]{1,30}")
_LONG_TEXT = 30  # longer digit strings are out of range anyway (and int() would be slow)
_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_RFC3339_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class Rule(StrEnum):
    NOT_NULL = "notNull"
    NOT_BLANK = "notBlank"
    TYPE_MISMATCH = "typeMismatch"
    MIN = "min"
    MAX = "max"
    IN_ENUM = "inEnum"
    MALFORMED_JSON = "malformedJson"


def parameter_invalid(violations: Mapping[str, list[str]]) -> ApiError:
    field, rules = next(iter(violations.items()))
    return ApiError(
        Code.PARAMETER_INVALID,
        data={"ruleViolated": {name: list(found) for name, found in violations.items()}},
        msg=f"request params[{field}] {rules[0]}.",
    )


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is an empty object."""
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise parameter_invalid({"body": [Rule.MALFORMED_JSON]}) from None
    if not isinstance(body, dict):
        raise parameter_invalid({"body": [Rule.TYPE_MISMATCH]})
    return body


class Checker:
    """Reads fields of one request body and collects the rules they break."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.violations: dict[str, list[str]] = {}

    def violate(self, field: str, rule: Rule) -> None:
        rules = self.violations.setdefault(field, [])
        if rule not in rules:
            rules.append(rule)

    def finish(self) -> None:
        if self.violations:
            raise parameter_invalid(self.violations)

    # --- integers and ids -------------------------------------------------------------

    def integer(
        self,
        field: str,
        *,
        minimum: int,
        maximum: int,
        required: Rule | None = None,
        blank_is_absent: bool = False,
        digits_only: bool = False,
    ) -> int | None:
        """A JSON integer or a string of digits, within [minimum, maximum].

        Missing or null breaks `required` (when given) and is otherwise absent. An empty
        string is absent with `blank_is_absent`, breaks `required` when that is notBlank,
        and is a type mismatch otherwise. `digits_only` refuses a signed string.
        """
        value = self.body.get(field)
        if isinstance(value, str) and not value.strip():
            if required is Rule.NOT_BLANK:
                self.violate(field, Rule.NOT_BLANK)
                return None
            if blank_is_absent:
                value = None
        if value is None:
            if required is not None:
                self.violate(field, required)
            return None
        number = self._as_int(field, value, digits_only=digits_only)
        if number is None:
            return None
        if number < minimum:
            self.violate(field, Rule.MIN)
            return None
        if number > maximum:
            self.violate(field, Rule.MAX)
            return None
        return number

    def entity_id(
        self, field: str, *, required: Rule | None = None, blank_is_absent: bool = False
    ) -> int | None:
        """An id: a positive integer below 2^63, as a JSON number or a string of digits."""
        return self.integer(
            field,
            minimum=1,
            maximum=ID_MAX,
            required=required,
            blank_is_absent=blank_is_absent,
            digits_only=True,
        )

    def _as_int(self, field: str, value: Any, *, digits_only: bool) -> int | None:
        if isinstance(value, bool):  # JSON true/false are not numbers
            self.violate(field, Rule.TYPE_MISMATCH)
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float) and abs(value) >= 2**63:
            # An integer literal beyond 64 bits, which the JSON parser turned into a float.
            self.violate(field, Rule.MIN if value < 0 else Rule.MAX)
            return None
        if isinstance(value, str):
            pattern = _DIGITS if digits_only else _INTEGER_TEXT
            if pattern.fullmatch(value):
                return int(value)
            if re.fullmatch(r"-?[0-9]+", value) and len(value) > _LONG_TEXT:
                self.violate(field, Rule.MIN if value.startswith("-") else Rule.MAX)
                return None
        self.violate(field, Rule.TYPE_MISMATCH)
        return None

    # --- other scalars ----------------------------------------------------------------

    def boolean(self, field: str) -> bool | None:
        value = self.body.get(field)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        self.violate(field, Rule.TYPE_MISMATCH)
        return None

    def choice(self, field: str, spellings: Mapping[str, str]) -> str | None:
        """One of `spellings` (accepted spelling -> value); null or "" is absent."""
        value = self.body.get(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.violate(field, Rule.TYPE_MISMATCH)
            return None
        found = spellings.get(value)
        if found is None:
            self.violate(field, Rule.IN_ENUM)
        return found

    def instant(self, field: str, zone: ZoneInfo, latest: datetime) -> datetime | None:
        """A time: `yyyy-MM-dd HH:mm:ss` in `zone`, or RFC 3339 with an offset (`Z` too).

        Null or "" is absent. Anything else is a type mismatch; an instant after `latest`
        breaks `max`, one before year 1 in UTC breaks `min`.
        """
        value = self.body.get(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.violate(field, Rule.TYPE_MISMATCH)
            return None
        try:
            if _LOCAL_TIME.fullmatch(value):
                moment = datetime.fromisoformat(value).replace(tzinfo=zone)
            elif _RFC3339_TIME.fullmatch(value):
                text = value.upper().replace(" ", "T")
                # Python keeps microseconds: drop further fractional digits.
                head, dot, rest = text.partition(".")
                if dot:
                    digits = len(rest) - len(rest.lstrip("0123456789"))
                    text = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
                moment = datetime.fromisoformat(text)
            else:
                raise ValueError(value)
        except ValueError:  # no such date or time (month 13, hour 24, ...)
            self.violate(field, Rule.TYPE_MISMATCH)
            return None
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01 00:00:00 east of Greenwich
            self.violate(field, Rule.MIN)
            return None
        if moment > latest:
            self.violate(field, Rule.MAX)
            return None
        return moment

    # --- order ------------------------------------------------------------------------

    def order(
        self, field: str, keys: Mapping[str, str], *, required: bool = False
    ) -> list[tuple[str, bool]] | None:
        """A list of `{key, sort}` as (key's value in `keys`, descending?) pairs.

        An empty or missing `key` stands for the default order and the entry is skipped;
        `sort` is `asc`, `desc` (any case) or empty/missing for `asc`. A key given twice
        counts once, where it first appears. Returns None when the list is absent.
        """
        value = self.body.get(field)
        if value is None:
            if required:
                self.violate(field, Rule.NOT_NULL)
            return None
        if not isinstance(value, list):
            self.violate(field, Rule.TYPE_MISMATCH)
            return None
        result: list[tuple[str, bool]] = []
        seen: set[str] = set()
        for entry in value:
            if not isinstance(entry, dict):
                self.violate(field, Rule.TYPE_MISMATCH)
                continue
            descending = self._sort(f"{field}.sort", entry.get("sort"))
            key = entry.get("key")
            if key is None or key == "":
                continue
            if not isinstance(key, str):
                self.violate(f"{field}.key", Rule.TYPE_MISMATCH)
                continue
            target = keys.get(key)
            if target is None:
                self.violate(f"{field}.key", Rule.IN_ENUM)
                continue
            if descending is None or target in seen:
                continue
            seen.add(target)
            result.append((target, descending))
        return result

    def _sort(self, field: str, value: Any) -> bool | None:
        if value is None or value == "":
            return False
        if not isinstance(value, str):
            self.violate(field, Rule.TYPE_MISMATCH)
            return None
        lowered = value.lower()
        if lowered == "asc":
            return False
        if lowered == "desc":
            return True
        self.violate(field, Rule.IN_ENUM)
        return None

"""Requests against their pydantic models, and every violation in the contract's words.

A request body is validated by its model (`api.params`); pydantic's errors, in the
order it checks the fields (the models' field order), become one
`General.ParameterInvalid` whose `data.ruleViolated` names every broken rule per field
and whose `msg` names the first. Nothing here knows an endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from api.envelope import ApiError, Code


class Rule(StrEnum):
    NOT_NULL = "notNull"
    NOT_BLANK = "notBlank"
    TYPE_MISMATCH = "typeMismatch"
    MIN = "min"
    MAX = "max"
    IN_ENUM = "inEnum"
    MALFORMED_JSON = "malformedJson"


_RULE_NAMES = frozenset(rule.value for rule in Rule)

# pydantic's error types -> the contract's rules; any other type is `typeMismatch` (an
# int_type, a bool_type, a model_type: a value of another JSON type). The types of
# `api.inputs` are rule names already.
_PYDANTIC_RULES = {
    "missing": Rule.NOT_NULL,
    "json_invalid": Rule.MALFORMED_JSON,
    "greater_than": Rule.MIN,
    "greater_than_equal": Rule.MIN,
    "less_than": Rule.MAX,
    "less_than_equal": Rule.MAX,
    "literal_error": Rule.IN_ENUM,
    "enum": Rule.IN_ENUM,
    "string_too_short": Rule.NOT_BLANK,
}


def rule_of(error_type: str) -> str:
    if error_type in _RULE_NAMES:
        return error_type
    return _PYDANTIC_RULES.get(error_type, Rule.TYPE_MISMATCH)


def field_of(location: Iterable[int | str]) -> str:
    """`order.key` for an error at ("order", 2, "key"): the field's name, not the entry's
    index; FastAPI's leading "body" is left out, the whole body is `body`."""
    return ".".join(part for part in location if isinstance(part, str) and part != "body") or (
        "body"
    )


def violations(errors: Iterable[ErrorDetails]) -> dict[str, list[str]]:
    """Each field's broken rules, fields and rules in the order they were found."""
    found: dict[str, list[str]] = {}
    for error in errors:
        rules = found.setdefault(field_of(error["loc"]), [])
        rule = rule_of(error["type"])
        if rule not in rules:
            rules.append(rule)
    return found or {"body": [Rule.TYPE_MISMATCH]}


def parameter_invalid(violated: Mapping[str, list[str]]) -> ApiError:
    field, rules = next(iter(violated.items()))
    return ApiError(
        Code.PARAMETER_INVALID,
        data={"ruleViolated": {name: list(found) for name, found in violated.items()}},
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


Request = TypeVar("Request", bound=BaseModel)


def validate(
    model: type[Request], body: Mapping[str, Any], zone: ZoneInfo, now: datetime
) -> Request:
    """`body` as `model`, else `General.ParameterInvalid`. `zone` and `now` are what
    times in the request are read in and may not pass (`asOf`)."""
    try:
        return model.model_validate(body, context={"zone": zone, "now": now})
    except ValidationError as error:
        details = error.errors(include_url=False, include_context=False, include_input=False)
        raise parameter_invalid(violations(details)) from None

"""Exception handlers: every failure the app knows becomes its envelope (HTTP 200)."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.envelope import ApiError, Code, EnvelopeResponse, envelope, failure
from api.middleware import request_id
from api.validation import Rule, parameter_invalid

log = logging.getLogger("api.errors")

# pydantic error types -> the contract's rules (FastAPI's own validation, if it ever runs).
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


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return failure(exc)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning(
        "database unavailable for %s (request id %s): %s: %s",
        request.url.path,
        request_id.get(),
        type(exc).__name__,
        exc,
    )
    return EnvelopeResponse(envelope(Code.RPC_SERVER_ERROR))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = Code.NOT_FOUND if exc.status_code == 404 else Code.FAILURE
    return EnvelopeResponse(envelope(code))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    violations: dict[str, list[str]] = {}
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(location) or "body"
        rule = _PYDANTIC_RULES.get(str(error.get("type")), Rule.TYPE_MISMATCH)
        rules = violations.setdefault(field, [])
        if rule not in rules:
            rules.append(rule)
    if not violations:
        violations["body"] = [Rule.TYPE_MISMATCH]
    return failure(parameter_invalid(violations))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    # OperationalError covers the pool's PoolTimeout, PoolClosed and TooManyRequests.
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

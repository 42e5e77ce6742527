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
from api.validation import parameter_invalid, violations

log = logging.getLogger("api.errors")


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
    """FastAPI's own validation, should it ever run: in the contract's rules, as ours."""
    assert isinstance(exc, RequestValidationError)
    return failure(parameter_invalid(violations(exc.errors())))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    # OperationalError covers the pool's PoolTimeout, PoolClosed and TooManyRequests.
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

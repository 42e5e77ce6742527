"""Liveness and readiness, outside `/api` and without a token."""

from __future__ import annotations

import logging

import psycopg
from fastapi import APIRouter
from starlette.responses import Response

from api.context import ApiContext
from api.envelope import Code, EnvelopeResponse, envelope, success
from api.models import FailureAnswer, HealthAnswer
from services.store import read_sql

log = logging.getLogger(__name__)


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="liveness: the process answers", response_model=HealthAnswer)
    async def healthz() -> Response:
        return success({})

    @router.get(
        "/readyz",
        summary="readiness: the database answers and is migrated",
        response_model=HealthAnswer,
        responses={503: {"model": FailureAnswer, "description": "not ready"}},
    )
    async def readyz() -> Response:
        try:
            ready = await ctx.db.is_ready(read_sql.READY)
        except psycopg.Error as error:
            log.warning("not ready: %s: %s", type(error).__name__, error)
            ready = False
        if ready:
            return success({})
        return EnvelopeResponse(envelope(Code.RPC_SERVER_ERROR), status_code=503)

    return router

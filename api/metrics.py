"""Prometheus metrics of the API: latency per endpoint, served at `/metrics`.

Each uvicorn worker keeps its own figures; run one worker per scrape target (or put the
workers behind separate ports) when exact totals matter.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KNOWN_PATHS = frozenset(
    {
        "/api/userPack/getUserPackList",
        "/api/userPack/getUserPackDetail",
        "/api/pack/getTrainPackLogList",
        "/api/pack/getTrainPackLogDetail",
        "/healthz",
        "/readyz",
        "/metrics",
    }
)

REQUEST_SECONDS = Histogram(
    "ledger_api_request_seconds",
    "Time to answer a request, by endpoint (unknown paths count as 'other')",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


# Each endpoint's histogram, looked up once: `labels()` on every request cost ~1 us.
_BY_PATH = {path: REQUEST_SECONDS.labels(endpoint=path) for path in KNOWN_PATHS}
_OTHER = REQUEST_SECONDS.labels(endpoint="other")


class RequestTiming:
    """ASGI middleware: observes every HTTP request's duration under its endpoint."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        histogram = _BY_PATH.get(scope.get("path", ""), _OTHER)
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                histogram.observe(time.perf_counter() - started)

        await self.app(scope, receive, timed_send)


def build_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router

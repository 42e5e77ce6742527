"""`GET /api/userPack/stream`: the caller's packs as Server-Sent Events (api/live.py).

Events: `ready` once subscribed (read the list then: every change from that moment on
comes as `pack`), `pack` (the pack as one element of `userPackList`, extension fields
included), `resync` (changes may have been missed: read the list again), `overflow`
(the client fell too far behind: the stream ends), `error` (the `{code,data,msg}`
envelope of an authentication failure, at once or when the token expires: the stream
ends). A comment line every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from api.auth import Caller, bearer_token
from api.context import ApiContext
from api.envelope import ApiError, Code, envelope
from api.live import Hub, Subscriber, frame
from api.routes.common import SECURITY

PREFIX, ROUTE = "/api/userPack", "/stream"
PATHS = frozenset({PREFIX + ROUTE})  # not counted in flight: one lasts as long as its client
KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keepalive\n\n"
# EventSource reconnects by itself after a dropped connection, this many ms later; it
# then gets `ready` again and reads afresh (the stream does not replay: Last-Event-ID is
# not used).
RETRY = b"retry: 2000\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _error(error: ApiError) -> bytes:
    return frame("error", envelope(error.code, error.data, error.msg))


def _sse(body: AsyncIterator[bytes]) -> Response:
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _events(hub: Hub, caller: Caller, expires: float) -> AsyncIterator[bytes]:
    subscriber: Subscriber = hub.subscribe(caller)
    try:
        yield RETRY + frame("ready", {})
        while True:
            left = expires - time.time()
            if left <= 0:
                yield _error(ApiError(Code.TOKEN_EXPIRED))
                return
            # asyncio.timeout, not wait_for: no task per wait (one per client per change).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(KEEPALIVE_SECONDS, left)):
                    await subscriber.wake.wait()
            if subscriber.dropped:
                yield frame("overflow", {"msg": "too far behind: read afresh and reconnect"})
                return
            chunks = subscriber.take()
            if subscriber.resync:
                subscriber.resync = False
                chunks.append(frame("resync", {}))
            yield b"".join(chunks) if chunks else KEEPALIVE
    finally:
        hub.unsubscribe(subscriber)


def build_router(ctx: ApiContext, hub: Hub) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["资源管理"])

    @router.get(
        ROUTE,
        summary="资源实时更新 (extension): Server-Sent Events",
        description=(
            "Events `ready`, `pack` (one element of `userPackList`), `resync`, `overflow`,"
            " `error` (the envelope); token by `Authorization`/`token` header or"
            " `access_token` query parameter. See docs/api.md, 'The stream'."
        ),
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "the events, until the client leaves (or an `error`/`overflow`)",
                "content": {
                    "text/event-stream": {
                        "schema": {
                            "type": "object",
                            "description": "each event's data: a JSON object (see above)",
                        }
                    }
                },
            }
        },
        openapi_extra={
            "parameters": [
                {
                    "name": "access_token",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "the JWT, for EventSource (which cannot send headers)",
                }
            ],
            "security": SECURITY,
        },
    )
    async def stream(request: Request) -> Response:
        token = bearer_token(request.headers) or request.query_params.get("access_token")
        try:
            if not token:
                raise ApiError(Code.UNAUTHORIZED)
            caller, expires = ctx.verifier.verify_until(token)
        except ApiError as error:
            return _sse(_once(_error(error)))
        return _sse(_events(hub, caller, expires))

    return router

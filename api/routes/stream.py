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

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from api.auth import Caller, bearer_token
from api.context import ApiContext
from api.envelope import ApiError, Code, envelope
from api.live import Hub, Subscriber, frame
from api.routes.common import SECURITY

PREFIX, ROUTE = "/api/userPack", "/stream"
PATHS = frozenset({PREFIX + ROUTE})  # not counted in flight: one lasts as long as its client
KEEPALIVE = b": keepalive\n\n"
OVERFLOW = frame("overflow", {"msg": "too far behind: read afresh and reconnect"})
# EventSource reconnects by itself after a dropped connection, this many ms later; it
# then gets `ready` again and reads afresh (the stream does not replay: Last-Event-ID is
# not used).
RETRY = b"retry: 2000\n\n"
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _error(error: ApiError) -> bytes:
    return frame("error", envelope(error.code, error.data, error.msg))


def next_write(subscriber: Subscriber) -> tuple[bytes, bool]:
    """What a woken client is sent, and whether its stream ends with it."""
    if subscriber.expired:
        return _error(ApiError(Code.TOKEN_EXPIRED)), True
    if subscriber.dropped:
        return OVERFLOW, True
    chunks = subscriber.take()
    if subscriber.resync:
        subscriber.resync = False
        chunks.append(frame("resync", {}))
    return (b"".join(chunks) if chunks else KEEPALIVE), False


async def _until_left(receive: Receive, subscriber: Subscriber) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    subscriber.leave()


class EventStream(Response):
    """The caller's stream: each wake of its subscriber is one write, until the token
    expires, the client falls too far behind or goes away, or the server shuts down. An
    ASGI answer of its own, not a `StreamingResponse` over a generator: per frame, only
    the wake and the write."""

    media_type = MEDIA_TYPE

    def __init__(self, hub: Hub, caller: Caller, expires: float) -> None:
        self.status_code = 200
        self.background = None  # FastAPI hands a route's background tasks over here (none)
        self.init_headers(HEADERS)
        self._hub, self._caller, self._expires = hub, caller, expires

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self._hub.subscribe(self._caller, self._expires)
        watch = asyncio.create_task(_until_left(receive, subscriber))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            body = RETRY + frame("ready", {})
            more = True
            while more:
                await send({"type": "http.response.body", "body": body, "more_body": True})
                await subscriber.wake.wait()
                if subscriber.left:
                    return
                body, ends = next_write(subscriber)
                more = not ends
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except asyncio.CancelledError:
            # Only the server cancels a stream: its shutdown grace is over (uvicorn's
            # `timeout_graceful_shutdown`, LEDGER_API_SHUTDOWN_GRACE_SECONDS). The stream
            # ends as a stream ends - the client's EventSource reconnects, to a process
            # still serving - and not as an error logged with a traceback for each client.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watch.cancel()
            self._hub.unsubscribe(subscriber)


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
            return Response(_error(error), media_type=MEDIA_TYPE, headers=HEADERS)
        return EventStream(hub, caller, expires)

    return router

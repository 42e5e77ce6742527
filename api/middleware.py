"""Request ids and the last line of defence: an unexpected error is `General.InternalServerError`.

A pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware): it names each request
(`X-Request-ID`, taken from the caller when well-formed, else generated), sends the name
back as a header, and keeps it in a context variable for the log. An exception no handler
took becomes the envelope, with the details only in the server log.
"""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.envelope import Code, EnvelopeResponse, envelope

log = logging.getLogger("api.errors")

REQUEST_ID_HEADER = "x-request-id"
request_id: ContextVar[str] = ContextVar("request_id", default="-")
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _WELL_FORMED.fullmatch(value):
            return bytes(value).decode("ascii")
    return None


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every log record, for formats that name it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # 128 random bits as 32 hex digits, like `uuid4().hex` but a sixth of its cost.
        rid = _incoming_id(scope) or os.urandom(16).hex()
        header = (REQUEST_ID_HEADER.encode(), rid.encode("ascii"))
        token = request_id.set(rid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "request %s %s failed (request id %s)", scope.get("method"), scope.get("path"), rid
            )
            if not started:
                response = EnvelopeResponse(envelope(Code.INTERNAL_SERVER_ERROR))
                await response(scope, receive, send_with_id)
        finally:
            request_id.reset(token)

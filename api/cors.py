"""Browsers on other origins: `LEDGER_CORS_ORIGINS` as Starlette's `CORSMiddleware`.

The middleware answers preflights itself, so it must sit outside everything that turns
an answer into the `{code, data, msg}` envelope (api/middleware.py, the exception
handlers): a preflight is answered as CORS expects, a real request keeps its envelope
and gains the CORS headers.

Listed origins may send credentials. `*` lets any origin call, but without credentials
(`Access-Control-Allow-Origin: *`, no `Access-Control-Allow-Credentials`): browsers
refuse `*` together with credentials, and the way round it - echoing every origin back
with credentials allowed, which Starlette does for `*` when credentials are on - would
let any site make credentialed calls. The API's token travels in a header, which is not
a credential in the browser's sense, so a `*` page's `fetch` with `Authorization` works.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from api.auth import ConfigurationError

ANY_ORIGIN = "*"
ALLOWED_METHODS = ("GET", "POST", "OPTIONS")
ALLOWED_HEADERS = ("Authorization", "token", "Content-Type", "X-Request-ID")
# Readable by the page, so that a frontend can quote the id of a failed call.
EXPOSED_HEADERS = ("X-Request-ID",)
PREFLIGHT_MAX_AGE_SECONDS = 600


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which other origins may call; `origins` empty and not `any_origin` = none."""

    origins: tuple[str, ...] = ()
    any_origin: bool = False


def _origin(text: str) -> str:
    """`scheme://host[:port]` as browsers send it in `Origin` (lower case, no trailing `/`)."""
    origin = text.rstrip("/").lower()
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise ConfigurationError(
            f"LEDGER_CORS_ORIGINS: {text!r} is not an origin (scheme://host[:port])"
        )
    return origin


def cors_policy(setting: str) -> CorsPolicy:
    """Parse the setting; raises ConfigurationError on a malformed origin."""
    entries = [entry.strip() for entry in setting.split(",") if entry.strip()]
    if ANY_ORIGIN in entries:
        if len(entries) > 1:
            # Listed origins would get credentials and `*` none: which one was meant?
            raise ConfigurationError("LEDGER_CORS_ORIGINS: `*` stands alone")
        return CorsPolicy(any_origin=True)
    return CorsPolicy(origins=tuple(dict.fromkeys(_origin(entry) for entry in entries)))


class OriginOnlyCors(CORSMiddleware):
    """Starlette's CORS middleware, skipped at once by a request without `Origin` (most:
    servers, scripts, same-origin pages' GETs), which it would pass through unchanged
    after parsing all its headers (~6 us a request, measured in process)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(name == b"origin" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def add_cors(app: FastAPI, policy: CorsPolicy) -> None:
    """Wrap what the app has so far; with no origin, every preflight is refused (400)."""
    app.add_middleware(
        OriginOnlyCors,
        allow_origins=(ANY_ORIGIN,) if policy.any_origin else policy.origins,
        allow_credentials=not policy.any_origin,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )

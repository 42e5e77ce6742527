"""The application factory: settings in, FastAPI app out; connections open in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI

from api import metrics
from api.auth import ConfigurationError, TokenVerifier
from api.context import ApiContext
from api.cors import add_cors, cors_policy
from api.db import Database
from api.errors import install_error_handlers
from api.live import Hub
from api.middleware import RequestContext
from api.openapi import install_openapi
from api.requests_first import CountInFlight, InFlight
from api.routes import health, packs, records, stream
from services.settings import Settings


def token_verifier(settings: Settings) -> TokenVerifier:
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    public_key = None
    if settings.jwt_public_key_file is not None:
        try:
            public_key = settings.jwt_public_key_file.read_text()
        except OSError as error:
            raise ConfigurationError(f"LEDGER_JWT_PUBLIC_KEY_FILE: {error}") from None
    return TokenVerifier(secret=secret, public_key=public_key)


def display_zone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"LEDGER_TIMEZONE: unknown time zone {settings.timezone!r}"
        ) from None


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    *,
    pool_min: int = 2,
    pool_max: int = 10,
    pool_timeout: float = 3.0,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """Build the app; raises ConfigurationError (before any connection) when a key is missing.

    `pool_timeout`: seconds a request waits for a database connection before it is
    answered `General.RpcServerError`. `clock`: the instant each request is answered as
    of (one reading per request).
    """
    zone = display_zone(settings)
    cors = cors_policy(settings.cors_origins)
    ctx = ApiContext(
        db=Database(
            settings.psycopg_url,
            min_size=pool_min,
            max_size=pool_max,
            timeout=pool_timeout,
            timezone=zone.key,
        ),
        verifier=token_verifier(settings),
        zone=zone,
        clock=clock,
        terms=settings.terms,
    )
    requests = InFlight()
    hub = Hub(settings.psycopg_url, ctx.db, clock, requests=requests)  # one LISTEN

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ctx.db.open()
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await ctx.db.close()

    app = FastAPI(
        # FastAPI's native OpenTelemetry: the API reports through Prometheus and JSON logs
        # (`api/metrics.py`, `api/middleware.py`); with no provider configured its check cost
        # 5.7 us a request (`NativeTelemetry.enabled`, against 0.1 us switched off).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="INFINITE resource ledger API",
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.include_router(packs.build_router(ctx))
    app.include_router(records.build_router(ctx))
    app.include_router(stream.build_router(ctx, hub))
    app.include_router(health.build_router(ctx))
    app.include_router(metrics.build_router())
    install_error_handlers(app)
    app.add_middleware(RequestContext)
    app.add_middleware(CountInFlight, in_flight=requests, exclude=stream.PATHS)
    add_cors(app, cors)  # outside RequestContext: a preflight is never an envelope
    app.add_middleware(metrics.RequestTiming)  # outermost: times the whole answer
    install_openapi(app)
    app.state.hub = hub
    return app

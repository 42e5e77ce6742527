"""`ledger dev`: the whole platform locally in one command.

Starts Kafka and PostgreSQL (`ledger infra up`), migrates, runs `ledger consume` and
`ledger api` as child processes (and, with `--demo`, a simulated scheduler), prints the
API address and ready-to-use tokens, and stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import jwt

from services import dev_page
from services.settings import get_settings

DAY = 86_400


def token(secret: str, user_id: int, name: str, roles: list[str] | None = None) -> str:
    claims: dict[str, Any] = {"sub": str(user_id), "name": name, "exp": int(time.time()) + DAY}
    if roles:
        claims["roles"] = roles
    return jwt.encode(claims, secret, algorithm="HS256")


def _child(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "services.cli", *command], env=env)


def _wait_ready(url: str, deadline_seconds: float = 60) -> bool:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_dev(args: argparse.Namespace) -> int:
    from services.infra import ensure_up
    from services.store.migrate import migrate

    local = ensure_up(log=lambda line: print(line, flush=True))
    env = {**local, **os.environ}  # the environment wins over the local services
    env.setdefault("LEDGER_LOG_FORMAT", "text")
    if not env.get("LEDGER_JWT_SECRET"):
        env["LEDGER_JWT_SECRET"] = secrets.token_hex(32)
    os.environ.update({k: env[k] for k in ("KAFKA_BOOTSTRAP_SERVERS", "LEDGER_DATABASE_URL")})
    get_settings.cache_clear()
    settings = get_settings()
    print(f"database at revision {migrate(settings.sqlalchemy_url)}", flush=True)

    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C
    page = None
    if settings.dev_page_port:
        try:
            page, page_origin = dev_page.serve(settings.dev_page_port)
        except OSError as error:  # the port taken: the platform runs without its page
            print(f"live page not served (LEDGER_DEV_PAGE_PORT): {error}", file=sys.stderr)
        else:
            env["LEDGER_CORS_ORIGINS"] = dev_page.with_origin(settings.cors_origins, page_origin)
    children = [_child(["consume"], env), _child(["api"], env)]
    try:
        base = f"http://127.0.0.1:{settings.api_port}"
        if not _wait_ready(f"{base}/healthz"):
            print("the API did not come up; see its output above", file=sys.stderr)
            return 1
        secret = env["LEDGER_JWT_SECRET"]
        user_token = token(secret, 1001, "张三")
        print(
            f"\nINFINITE ledger running.\n  API:      {base}/api/...  (OpenAPI at {base}/docs)\n"
            f"  metrics:  {base}/metrics (API), http://127.0.0.1:"
            f"{settings.consumer_metrics_port}/metrics (consumer)\n"
            f"  demo user 1001 token:\n    Authorization: Bearer {user_token}\n"
            f"  admin token:\n    Authorization: Bearer {token(secret, 1, 'admin', ['admin'])}\n"
            f"  try: curl -s -X POST {base}/api/userPack/getUserPackList "
            "-H 'Content-Type: application/json' -H 'Authorization: Bearer <token>' -d '{}'\n"
            "Ctrl-C stops everything this command started.\n",
            flush=True,
        )
        if page is not None:
            print(f"  live page: {dev_page.page_url(page_origin, base, user_token)}", flush=True)
        if args.demo:
            from services.demo import run_demo, show_log

            show_log()  # what the scheduler does and the ledger announces, in the terminal

            asyncio.run(
                run_demo(
                    settings.kafka_bootstrap_servers, settings.events_topic, settings.out_topic
                )
            )
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if page is not None:
            page.shutdown()
            page.server_close()
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0

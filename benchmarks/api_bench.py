"""API benchmark: requests/s and latency per endpoint, beside a trivial endpoint.

    uv run python benchmarks/api_bench.py [--packs 100000] [--records 1000000]
        [--users 1000] [--concurrency 16] [--seconds 10] [--workers 1] [--explain]

1. Loads `--packs` packs and `--records` usage records (INSERT ... SELECT
   generate_series, server-side) into a fresh database, spread over `--users` owners
   (about 100 packs and 1,000 records each by default); 1 pack in 7 has a running
   session, 1 in 10 is an activity pack, 1 record in 100 is still running.
2. Starts `ledger api --workers N` as a separate process on a free port.
3. For each endpoint, keeps `--concurrency` keep-alive HTTP/1.1 connections busy for
   `--seconds` (after a warm-up) from this process (a minimal asyncio client, so that
   the client costs little CPU next to the server), each request for a random user and,
   for the details, a random id of that user; every answer is checked to be
   `General.Success`. `/healthz` (no auth, no database) is measured in the same run as
   the reference for what FastAPI + uvicorn cost on this machine.
4. Prints requests/s, p50/p90/p99/max latency, errors, and the ratios to `/healthz`.

Needs a PostgreSQL server whose role may create databases (LEDGER_DATABASE_URL, else the
server of `ledger infra`). The database is dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import jwt
import orjson
import psycopg
import uvloop
from psycopg import sql

from services.infra.testing import drop_database
from services.settings import get_settings
from services.store import read_sql
from services.store.migrate import migrate

SECRET = "benchmark-secret-" + "0123456789abcdef" * 3
NODES = orjson.dumps(
    [
        {
            "nodeId": 674654354,
            "nodeName": "master-0",
            "nodeType": "nodeType.master",
            "cpuCount": 32,
            "gpuCount": 8,
            "memorySize": 256,
        },
        {
            "nodeId": 674654355,
            "nodeName": "worker-0",
            "nodeType": "nodeType.worker",
            "cpuCount": 32,
            "gpuCount": 8,
            "memorySize": 256,
        },
    ]
).decode()

LOAD_PACKS = """
INSERT INTO packs (user_pack_id, user_id, user_name, pack_name, duration_type, buy_datetime,
    activity_end_time, node_list, granted, charged, open_starts, snapshot, event_count)
SELECT i,
       1 + (i - 1) %% %(users)s,
       'user-' || (1 + (i - 1) %% %(users)s),
       'pack-' || (i %% 997),
       CASE WHEN i %% 10 = 0 THEN 'type.activity' ELSE 'type.timing' END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '37 seconds',
       CASE WHEN i %% 10 = 0 THEN timestamptz '2030-01-01 00:00:00+00' END,
       %(nodes)s::jsonb,
       CASE WHEN i %% 10 = 0 THEN 0 ELSE 36000 + (i %% 100) * 3600 END,
       CASE WHEN i %% 10 = 0 THEN 0 ELSE (i %% 61) * 600 END,
       CASE WHEN i %% 7 = 0 THEN ARRAY[now() - (i %% 3600) * interval '1 second']
            ELSE '{}'::timestamptz[] END,
       '{}'::jsonb,
       1
FROM generate_series(1, %(packs)s) AS i
"""

LOAD_RECORDS = """
INSERT INTO usage_records (log_id, user_pack_id, owner_user_id, train_id, train_name,
    user_id, user_name, start_time, end_time, charged_seconds, overrun_seconds,
    start_event_id)
SELECT r.j + 1000000000000,
       r.pack,
       1 + (r.pack - 1) %% %(users)s,
       r.j,
       'train-' || (r.j %% 100),
       1 + (r.pack - 1) %% %(users)s,
       'user-' || (1 + (r.pack - 1) %% %(users)s),
       r.started,
       CASE WHEN r.j %% 100 = 0 THEN NULL
            ELSE r.started + (60 + r.j %% 7200) * interval '1 second' END,
       CASE WHEN r.j %% 100 = 0 THEN NULL ELSE 60 + r.j %% 7200 END,
       CASE WHEN r.j %% 100 = 0 THEN NULL ELSE 0 END,
       'bench-start-' || r.j
FROM (
    SELECT j,
           1 + (j * 7919) %% %(packs)s AS pack,
           timestamptz '2024-01-01 00:00:00+00' + j * interval '20 seconds' AS started
    FROM generate_series(1::bigint, %(records)s) AS j
) AS r
"""


@dataclass
class Scale:
    packs: int
    records: int
    users: int

    def owner(self, pack: int) -> int:
        return 1 + (pack - 1) % self.users

    def record_of(self, rng: random.Random) -> tuple[int, int]:
        """A random record: (log_id, owner)."""
        j = rng.randint(1, self.records)
        pack = 1 + (j * 7919) % self.packs
        return j + 1_000_000_000_000, self.owner(pack)


def with_database(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def load(url: str, scale: Scale) -> None:
    params = {"users": scale.users, "packs": scale.packs, "records": scale.records}
    with psycopg.connect(url, autocommit=True) as db:
        started = time.perf_counter()
        db.execute(LOAD_PACKS, {**params, "nodes": NODES})
        db.execute(LOAD_RECORDS, params)
        db.execute("VACUUM (ANALYZE) packs")
        db.execute("VACUUM (ANALYZE) usage_records")
        print(
            f"loaded {scale.packs:,} packs and {scale.records:,} usage records"
            f" in {time.perf_counter() - started:.1f} s"
        )


def explain(url: str, scale: Scale, repeat: int = 300) -> None:
    """For each statement the endpoints run: EXPLAIN ANALYZE for one owner, then the
    mean time of `repeat` runs for random owners on one connection (prepared, as the
    API runs them), printed as a table."""
    from datetime import UTC, datetime

    rng = random.Random(7)

    def owner_params() -> dict[str, object]:
        return {
            "at": datetime.now(UTC),
            "user_id": rng.randint(1, scale.users),
            "limit": 10,
            "offset": 10 * rng.randint(0, 2),
        }

    def pack_params() -> dict[str, object]:
        pack = rng.randint(1, scale.packs)
        return {**owner_params(), "user_pack_id": pack, "user_id": scale.owner(pack)}

    def record_params() -> dict[str, object]:
        log_id, owner = scale.record_of(rng)
        return {**owner_params(), "log_id": log_id, "user_id": owner}

    def own_pack_params() -> dict[str, object]:
        params = owner_params()
        user = int(str(params["user_id"]))
        return {**params, "user_pack_id": user + scale.users * rng.randint(0, 9)}

    def packs(**flags: bool) -> str:
        order = (("remaining", False),) if flags.pop("by_remaining", False) else ()
        options = {"by_duration_type": False, "by_status": False, "only_free": False}
        options.update(flags)
        return read_sql.pack_list(every_owner=False, order=order, **options)

    statements: list[tuple[str, str, Callable[[], dict[str, object]]]] = [
        ("pack list, default order", packs(), owner_params),
        (
            "pack list, isFreeStatus by duration",
            packs(only_free=True, by_remaining=True),
            owner_params,
        ),
        ("pack detail", read_sql.PACK_DETAIL, pack_params),
        (
            "log list, default order",
            read_sql.record_list(every_owner=False, by_pack=False, order=()),
            owner_params,
        ),
        (
            "log list by duration desc",
            read_sql.record_list(every_owner=False, by_pack=False, order=(("seconds", True),)),
            owner_params,
        ),
        (
            "log list of one pack",
            read_sql.record_list(every_owner=False, by_pack=True, order=()),
            own_pack_params,
        ),
        ("log detail", read_sql.RECORD_DETAIL, record_params),
        (
            "admin pack list, default order",
            read_sql.pack_list(
                every_owner=True, by_duration_type=False, by_status=False, only_free=False, order=()
            ),
            owner_params,
        ),
        (
            "admin log list, default order",
            read_sql.record_list(every_owner=True, by_pack=False, order=()),
            owner_params,
        ),
    ]
    timings = []
    with psycopg.connect(url, autocommit=True) as db:
        for title, statement, make in statements:
            plan = db.execute(f"EXPLAIN (ANALYZE, COSTS OFF, BUFFERS) {statement}", make())
            print(f"\n--- {title}")
            for (line,) in plan.fetchall():
                print(line)
            runs = repeat if "admin" not in title else max(1, repeat // 30)
            for _ in range(10):
                db.execute(statement, make()).fetchall()
            started = time.perf_counter()
            for _ in range(runs):
                db.execute(statement, make()).fetchall()
            timings.append((title, (time.perf_counter() - started) / runs * 1000))
    print("\n| statement | mean ms (warm, prepared, random owners) |\n|---|---|")
    for title, mean in timings:
        print(f"| {title} | {mean:.2f} |")


# --- the load generator -------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    method: str
    path: str
    make: Callable[[random.Random], tuple[bytes, str | None]]  # -> (body, token)


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def request_bytes(endpoint: Endpoint, body: bytes, token: str | None, host: str) -> bytes:
    lines = [f"{endpoint.method} {endpoint.path} HTTP/1.1", f"Host: {host}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if endpoint.method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + (body if endpoint.method == "POST" else b"")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length)
    return status, body


async def connection_loop(
    host: str,
    port: int,
    endpoint: Endpoint,
    requests: list[bytes],
    deadline: float,
    measure_from: float,
    result: Result,
    rng: random.Random,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            started = time.perf_counter()
            if started >= deadline:
                return
            writer.write(requests[rng.randrange(len(requests))])
            status, body = await read_response(reader)
            done = time.perf_counter()
            if started >= measure_from:
                result.latencies.append(done - started)
                if status != 200 or b'"code":"General.Success"' not in body:
                    result.errors += 1
    finally:
        writer.close()


async def measure(
    host: str,
    port: int,
    endpoint: Endpoint,
    concurrency: int,
    seconds: float,
    warmup: float,
) -> Result:
    rng = random.Random(hash(endpoint.name) & 0xFFFF)
    requests = [
        request_bytes(endpoint, *endpoint.make(rng), host=f"{host}:{port}") for _ in range(2000)
    ]
    result = Result(endpoint.name)
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + seconds
    await asyncio.gather(
        *(
            connection_loop(
                host, port, endpoint, requests, deadline, measure_from, result, random.Random(i)
            )
            for i in range(concurrency)
        )
    )
    result.elapsed = seconds
    return result


def endpoints(scale: Scale, tokens: dict[int, str], admin: str) -> list[Endpoint]:
    def user(rng: random.Random) -> int:
        return rng.randint(1, scale.users)

    def body(value: object) -> bytes:
        return orjson.dumps(value)

    def pack_list(rng: random.Random) -> tuple[bytes, str | None]:
        return body({"pageNum": rng.randint(1, 3), "pageSize": 10}), tokens[user(rng)]

    def pack_list_sorted(rng: random.Random) -> tuple[bytes, str | None]:
        payload = {
            "order": [{"key": "duration", "sort": "desc"}],
            "isFreeStatus": True,
            "packDurationType": "type.timing",
            "pageNum": 1,
            "pageSize": 10,
        }
        return body(payload), tokens[user(rng)]

    def pack_detail(rng: random.Random) -> tuple[bytes, str | None]:
        pack = rng.randint(1, scale.packs)
        return body({"userPackId": str(pack)}), tokens[scale.owner(pack)]

    def log_list(rng: random.Random) -> tuple[bytes, str | None]:
        payload = {"order": [{"key": "", "sort": ""}], "pageNum": rng.randint(1, 3), "pageSize": 10}
        return body(payload), tokens[user(rng)]

    def log_list_sorted(rng: random.Random) -> tuple[bytes, str | None]:
        payload = {"order": [{"key": "duration", "sort": "desc"}], "pageNum": 1, "pageSize": 10}
        return body(payload), tokens[user(rng)]

    def log_detail(rng: random.Random) -> tuple[bytes, str | None]:
        log_id, owner = scale.record_of(rng)
        return body({"logId": log_id}), tokens[owner]

    def admin_pack_list(rng: random.Random) -> tuple[bytes, str | None]:
        return body({"pageNum": rng.randint(1, 3), "pageSize": 10}), admin

    def healthz(rng: random.Random) -> tuple[bytes, str | None]:
        return b"", None

    return [
        Endpoint("GET /healthz (reference)", "GET", "/healthz", healthz),
        Endpoint("getUserPackList", "POST", "/api/userPack/getUserPackList", pack_list),
        Endpoint(
            "getUserPackList free by duration",
            "POST",
            "/api/userPack/getUserPackList",
            pack_list_sorted,
        ),
        Endpoint("getUserPackDetail", "POST", "/api/userPack/getUserPackDetail", pack_detail),
        Endpoint("getTrainPackLogList", "POST", "/api/pack/getTrainPackLogList", log_list),
        Endpoint(
            "getTrainPackLogList by duration",
            "POST",
            "/api/pack/getTrainPackLogList",
            log_list_sorted,
        ),
        Endpoint("getTrainPackLogDetail", "POST", "/api/pack/getTrainPackLogDetail", log_detail),
        Endpoint(
            "getUserPackList as admin (all 100k)",
            "POST",
            "/api/userPack/getUserPackList",
            admin_pack_list,
        ),
    ]


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_api(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_JWT_SECRET": SECRET,
        "LEDGER_API_HOST": "127.0.0.1",
        "LEDGER_API_PORT": str(port),
    }
    env.pop("LEDGER_JWT_PUBLIC_KEY_FILE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "api", "--workers", str(workers)],
        env=env,
        start_new_session=True,
    )


async def wait_ready(host: str, port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /readyz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status, _ = await read_response(reader)
            writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the API did not become ready")


def print_table(results: list[Result], concurrency: int, workers: int) -> None:
    reference = results[0]
    print(f"\nconcurrency {concurrency}, {workers} API worker(s), {os.cpu_count()} CPUs\n")
    header = (
        f"| {'endpoint':<36} | {'req/s':>7} | {'p50 ms':>6} | {'p90 ms':>6} | {'p99 ms':>6}"
        f" | {'max ms':>6} | {'errors':>6} | {'req/s vs ref':>12} | {'p99 vs ref':>10} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for result in results:
        print(
            f"| {result.name:<36} | {result.rate:>7.0f} | {result.percentile(0.5):>6.1f}"
            f" | {result.percentile(0.9):>6.1f} | {result.percentile(0.99):>6.1f}"
            f" | {max(result.latencies, default=0) * 1000:>6.1f} | {result.errors:>6}"
            f" | {result.rate / reference.rate:>12.2f}"
            f" | {result.percentile(0.99) / reference.percentile(0.99):>10.2f} |"
        )


async def run_load(args: argparse.Namespace, scale: Scale, port: int) -> list[Result]:
    expires = int(time.time()) + 3600
    tokens = {
        user: jwt.encode({"sub": str(user), "exp": expires}, SECRET, algorithm="HS256")
        for user in range(1, scale.users + 1)
    }
    admin = jwt.encode({"sub": "1", "exp": expires, "roles": ["admin"]}, SECRET, algorithm="HS256")
    await wait_ready("127.0.0.1", port)
    results = []
    for index, endpoint in enumerate(endpoints(scale, tokens, admin)):
        # The first endpoint is the reference the table's ratios divide by: always measured.
        if index and args.only and not any(part in endpoint.name for part in args.only):
            continue
        result = await measure(
            "127.0.0.1", port, endpoint, args.concurrency, args.seconds, args.warmup
        )
        print(
            f"{endpoint.name}: {result.rate:.0f} req/s, p99 {result.percentile(0.99):.1f} ms,"
            f" {result.errors} errors",
            flush=True,
        )
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packs", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--database", help="reuse this loaded database (skips the load)")
    parser.add_argument(
        "--only",
        nargs="*",
        help="measure only endpoints naming one of these (and the reference, /healthz)",
    )
    args = parser.parse_args()
    scale = Scale(args.packs, args.records, args.users)

    server = get_settings().psycopg_url
    name = args.database or f"ledger_api_bench_{uuid.uuid4().hex[:10]}"
    url = with_database(server, name)
    if not args.database:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    api: subprocess.Popen[bytes] | None = None
    try:
        if not args.database:
            migrate(url)
            load(url, scale)
        if args.explain:
            explain(url, scale)
        port = free_port()
        api = start_api(url, port, args.workers)
        results = uvloop.run(run_load(args, scale, port))
        if results:
            print_table(results, args.concurrency, args.workers)
            print(
                "\nmedian of the API endpoints' p99:"
                f" {statistics.median(r.percentile(0.99) for r in results[1:]):.1f} ms"
            )
    finally:
        if api is not None:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(timeout=30)
        if not args.keep and not args.database:
            drop_database(server, name)
        elif not args.database:
            print(f"kept database {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

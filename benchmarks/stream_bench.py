"""Stream benchmark: many SSE clients on one API process while the consumer applies events.

    uv run python benchmarks/stream_bench.py [--clients 1000] [--rate 1000] [--seconds 10]
        [--rounds 3] [--list-rate 0]

1. A fresh database and topic; `ledger consume` and `ledger api` (one worker) as separate
   processes. `--clients` users own two timing packs each, bought through Kafka.
2. `--rounds` rounds of two windows of `--seconds` each: adjustments (+1 s) to random
   packs are published at `--rate` per second while the pack list is asked (random users)
   on one connection, one request at a time, as fast as the API answers (`--list-rate R`:
   R requests per second instead, open loop, each request's latency counted from its
   scheduled instant) - first without stream clients, then with one stream per user
   (`access_token`, all `ready` before the window starts; the readers are a process of
   their own, started for the window and stopped after it). The windows
   alternate so that a change of the machine's load during the run weighs on both.
3. Each pack's `duration` tells which adjustment a `pack` event shows, so its delay is
   the receipt time less that adjustment's publish time (one clock: this process). The
   API process's RSS is sampled every 0.5 s, its CPU time read at each window's ends.
4. Prints each window's list p50/p99, the API's CPU and the machine's idle share, then
   the delay p50/p99/max, the events received, the peak RSS, the API's CPU share, and the
   list's p50/p99 without and with stream clients (all rounds pooled) and the ratio of
   the p99s.

Why an open loop too: on this 2-core machine the API, PostgreSQL, the consumer, Kafka and
this load generator share the cores, and the closed loop keeps the API as busy as it can
be - the machine then has almost no idle time (the printed idle share: ~10%), so any
added work, the streams' or not, lengthens the list's tail by queueing for a core. A fixed
rate that leaves the machine headroom shows what the streams do to a request by itself.

Needs a PostgreSQL server whose role may create databases and the Kafka broker (the
settings, else `ledger infra`). The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jwt
import orjson
import psycopg
import uvloop
from aiokafka import AIOKafkaProducer
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from api_bench import (
    SECRET,
    Endpoint,
    Result,
    free_port,
    measure,
    read_response,
    request_bytes,
    start_api,
    wait_ready,
    with_database,
)
from consumer_bench import create_topic, start_consumer

from services.infra.testing import drop_database
from services.settings import get_settings
from services.store.migrate import migrate

HOST = "127.0.0.1"
GRANTED = 100_000
PACKS_PER_USER = 2


def token(user: int) -> str:
    claims = {"sub": str(user), "exp": int(time.time()) + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def event(type_: str, data: dict[str, object]) -> bytes:
    body = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "bench/stream",
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def purchase(pack: int, owner: int) -> bytes:
    return event(
        "infinite.pack.purchased",
        {
            "userPackId": pack,
            "userId": owner,
            "packName": f"pack {pack}",
            "packDurationType": "type.timing",
            "durationSeconds": GRANTED,
            "nodeList": [],
        },
    )


class Load:
    """Adjustments at a steady rate; remembers when each pack reached each duration."""

    def __init__(self, packs: int) -> None:
        self.packs = packs
        self.duration = {pack: GRANTED for pack in range(1, packs + 1)}
        self.published: dict[tuple[int, int], float] = {}

    async def run(self, producer: AIOKafkaProducer, topic: str, rate: int, seconds: float) -> None:
        rng = random.Random()
        tick = 0.01
        per_tick = max(1, round(rate * tick))
        started = time.perf_counter()
        ticks = int(seconds / tick)
        for n in range(ticks):
            for _ in range(per_tick):
                pack = rng.randint(1, self.packs)
                self.duration[pack] += 1
                value = event(
                    "infinite.pack.adjusted",
                    {"userPackId": pack, "deltaSeconds": 1, "reason": "bench"},
                )
                await producer.send(topic, value, key=str(pack).encode())
                self.published[(pack, self.duration[pack])] = time.time()
            await asyncio.sleep(max(0.0, started + (n + 1) * tick - time.perf_counter()))
        await producer.flush()


class Clients:
    """One raw SSE connection per user (a minimal reader, so the client costs little)."""

    def __init__(self) -> None:
        self.ready = 0
        self.received: list[tuple[int, int, float]] = []  # (pack, duration, time)
        self.ended = 0

    async def one(self, port: int, user: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        path = f"/api/userPack/stream?access_token={token(user)}"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        try:
            await reader.readuntil(b"\r\n\r\n")
            buffer = b""
            while True:
                size = int((await reader.readline()).strip(), 16)  # chunked encoding
                if size == 0:
                    return
                buffer += await reader.readexactly(size + 2)
                *frames, buffer = buffer.replace(b"\r\n", b"").split(b"\n\n")
                for frame in frames:
                    self._frame(frame)
        finally:
            self.ended += 1
            writer.close()

    def _frame(self, frame: bytes) -> None:
        lines = frame.split(b"\n")
        if b"event: ready" in lines:
            self.ready += 1
        elif b"event: pack" in lines:
            data = orjson.loads(next(line for line in lines if line.startswith(b"data: "))[6:])
            self.received.append((int(data["userPackId"]), int(data["duration"]), time.time()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


LIST_CONNECTIONS = 8  # the open loop's pool: a request never waits for an earlier one


async def list_latency(port: int, users: int, seconds: float, rate: float) -> Result:
    """The pack list's answer time while the API also serves the consumer's changes to
    its stream clients: at `rate` requests per second (open loop), or with `rate` 0 one
    request at a time on one connection (closed loop)."""

    def make(rng: random.Random) -> tuple[bytes, str | None]:
        return b'{"pageNum":1,"pageSize":10}', token(rng.randint(1, users))

    endpoint = Endpoint("pack list", "POST", "/api/userPack/getUserPackList", make)
    if not rate:
        return await measure(HOST, port, endpoint, 1, seconds, 1.0)
    rng = random.Random(7)
    requests = [request_bytes(endpoint, *make(rng), host=f"{HOST}:{port}") for _ in range(2000)]
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(LIST_CONNECTIONS):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        idle.put_nowait((reader, writer))
    result = Result(endpoint.name)

    async def one(scheduled: float, request: bytes, counted: bool) -> None:
        reader, writer = await idle.get()
        try:
            writer.write(request)
            status, body = await read_response(reader)
        finally:
            idle.put_nowait((reader, writer))
        if counted:
            result.latencies.append(time.perf_counter() - scheduled)
            if status != 200 or b'"code":"General.Success"' not in body:
                result.errors += 1

    start = time.perf_counter()
    measure_from = start + 1.0  # a second of warm-up, as in the closed loop
    tasks = []
    for n in range(int((seconds + 1.0) * rate)):
        scheduled = start + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        request = requests[rng.randrange(len(requests))]
        tasks.append(asyncio.create_task(one(scheduled, request, scheduled >= measure_from)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait()[1].close()
    result.elapsed = seconds
    return result


class Idle:
    """The machine's idle share of its CPU time between two readings of /proc/stat."""

    def __init__(self) -> None:
        self.before = self.read()

    @staticmethod
    def read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    def share(self) -> float:
        (idle0, total0), (idle1, total1) = self.before, self.read()
        return (idle1 - idle0) / max(1, total1 - total0)


class Readers:
    """The stream clients of one window: a process of their own (this one's event loop
    times the list requests, and must not be slowed by a thousand readers)."""

    def __init__(self, port: int, users: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--read-streams", str(port), str(users)],
            stdout=subprocess.PIPE,
            text=True,
        )

    async def ready(self) -> str:
        assert self.process.stdout is not None
        return (await asyncio.to_thread(self.process.stdout.readline)).strip()

    async def stop(self) -> tuple[list[tuple[int, int, float]], int]:
        """The events received, as (pack, duration, time), and how many streams ended early."""
        self.process.send_signal(signal.SIGINT)
        text, _ = await asyncio.to_thread(self.process.communicate)
        *lines, summary = text.splitlines()
        return [tuple(orjson.loads(line)) for line in lines], int(summary.split()[1])


async def window(
    args: argparse.Namespace,
    load: Load,
    producer: AIOKafkaProducer,
    topic: str,
    port: int,
    api: int,
) -> tuple[Result, float, float, float]:
    """`--seconds` of load while the list is asked: its latencies, the API's CPU share of
    a core, its peak RSS and the machine's idle share."""
    peak = rss_mib(api)

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mib(api))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    cpu_before = cpu_seconds(api)
    idle = Idle()
    _, listed = await asyncio.gather(
        load.run(producer, topic, args.rate, args.seconds),
        list_latency(port, args.clients, args.seconds - 1, args.list_rate),
    )
    cpu = (cpu_seconds(api) - cpu_before) / args.seconds
    sampler.cancel()
    return listed, cpu, peak, idle.share()


def pooled(results: list[Result]) -> Result:
    total = Result(results[0].name)
    for result in results:
        total.latencies += result.latencies
        total.errors += result.errors
    return total


def list_line(result: Result) -> str:
    return (
        f"p50 {result.percentile(0.5):.1f} ms, p99 {result.percentile(0.99):.1f} ms"
        f" ({len(result.latencies)} requests, {result.errors} errors)"
    )


async def run(args: argparse.Namespace, url: str, topic: str, workdir: Path) -> None:
    bootstrap = get_settings().kafka_bootstrap_servers
    await create_topic(bootstrap, topic)
    consumer = start_consumer(bootstrap, url, topic, f"bench-{topic}", workdir / "consumer.log")
    port = free_port()
    api = start_api(url, port, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
    await producer.start()
    try:
        await wait_ready(HOST, port)
        packs = args.clients * PACKS_PER_USER
        for pack in range(1, packs + 1):
            owner = 1 + (pack - 1) % args.clients
            await producer.send(topic, purchase(pack, owner), key=str(pack).encode())
        await producer.flush()
        with psycopg.connect(url, autocommit=True) as db:
            for _ in range(600):  # polling the database: up to 5 minutes
                if db.execute("SELECT count(*) FROM packs").fetchone() == (packs,):
                    break
                await asyncio.sleep(0.5)
        print(
            f"{packs:,} packs of {args.clients:,} users bought; API RSS {rss_mib(api.pid):.0f} MiB"
        )
        load = Load(packs)
        alone: list[Result] = []
        streamed: list[Result] = []
        cpu = {"without": 0.0, "with": 0.0}
        peak = 0.0
        received: list[tuple[int, int, float]] = []
        ended = 0
        # Windows without and with stream clients alternate, so that a change of the
        # machine's load during the run weighs on both alike.
        for number in range(1, args.rounds + 1):
            listed, share, _, idle = await window(args, load, producer, topic, port, api.pid)
            alone.append(listed)
            cpu["without"] += share / args.rounds
            print(f"round {number}: {args.rate}/s for {args.seconds:.0f} s")
            print(
                f"  without stream clients: list {list_line(listed)}; API CPU {share:.0%},"
                f" machine idle {idle:.0%}"
            )
            readers = Readers(port, args.clients)
            ready = await readers.ready()
            readers_cpu = cpu_seconds(readers.process.pid)
            listed, share, top, idle = await window(args, load, producer, topic, port, api.pid)
            readers_cpu = (cpu_seconds(readers.process.pid) - readers_cpu) / args.seconds
            await asyncio.sleep(2)  # the last changes arrive
            got, early = await readers.stop()
            received += got
            ended += early
            streamed.append(listed)
            cpu["with"] += share / args.rounds
            peak = max(peak, top)
            print(
                f"  with clients ({ready}): list {list_line(listed)}; API CPU {share:.0%},"
                f" the readers' {readers_cpu:.0%}, machine idle {idle:.0%}"
            )
        (workdir / "received.jsonl").write_text(
            "\n".join(orjson.dumps(item).decode() for item in received)
        )
        ms = [
            (at - load.published[(pack, duration)]) * 1000
            for pack, duration, at in received
            if (pack, duration) in load.published
        ]
        without, with_clients = pooled(alone), pooled(streamed)
        loop = (
            f"{args.list_rate:g} requests/s on {LIST_CONNECTIONS} connections"
            if args.list_rate
            else "one connection, one request at a time"
        )
        print(
            f"\nstream: {len(ms):,} pack events received by {args.clients:,} clients"
            f" ({ended} streams ended early)\n"
            f"  delay publish -> client: p50 {percentile(ms, 0.5):.0f} ms,"
            f" p99 {percentile(ms, 0.99):.0f} ms, max {max(ms, default=float('nan')):.0f} ms\n"
            f"  API process RSS: peak {peak:.0f} MiB\n"
            f"  API process CPU: {cpu['without']:.0%} of a core without stream clients,"
            f" {cpu['with']:.0%} with them\n"
            f"pack list ({loop}, under {args.rate}/s events; {args.rounds} rounds pooled):\n"
            f"  without stream clients: {list_line(without)}\n"
            f"  with {args.clients} clients:     {list_line(with_clients)}\n"
            f"  p99 with / without: {with_clients.percentile(0.99) / without.percentile(0.99):.2f}"
        )
    finally:
        await producer.stop()
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(timeout=30)
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout=30)


async def read_streams(port: int, users: int) -> None:
    """The child process of phase 2: a stream per user; prints `ready N` once all are
    ready, then, on SIGINT, each event received as a JSON line and `ended N`."""
    clients = Clients()
    tasks = [asyncio.create_task(clients.one(port, user)) for user in range(1, users + 1)]
    for _ in range(300):  # up to a minute
        if clients.ready >= users:
            break
        await asyncio.sleep(0.2)
    print(f"ready {clients.ready}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    ended = clients.ended  # streams the server ended before the stop
    for task in tasks:
        task.cancel()
    lines = [orjson.dumps(item).decode() for item in clients.received]
    print("\n".join([*lines, f"ended {ended}"]), flush=True)


def main() -> int:
    if sys.argv[1:2] == ["--read-streams"]:
        uvloop.run(read_streams(int(sys.argv[2]), int(sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per window")
    parser.add_argument("--rounds", type=int, default=3, help="windows without, then with")
    parser.add_argument(
        "--list-rate",
        type=float,
        default=0.0,
        help="pack list requests per second (open loop); 0: one at a time, as fast as answered",
    )
    args = parser.parse_args()
    server = get_settings().psycopg_url
    name = f"ledger_stream_bench_{uuid.uuid4().hex[:10]}"
    url = with_database(server, name)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrate(url)
        with tempfile.TemporaryDirectory(prefix="stream-bench-") as workdir:
            uvloop.run(run(args, url, f"stream-bench-{uuid.uuid4().hex[:8]}", Path(workdir)))
    finally:
        drop_database(server, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

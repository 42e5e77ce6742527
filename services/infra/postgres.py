"""A PostgreSQL server from the OS packages, in a data folder of its own.

PostgreSQL refuses to run as root: when we are root it runs as the `postgres` user, so
its folder must be reachable by that user. The state dir may not be (e.g. under /root,
mode 700); then the data goes to /var/tmp/infinite-ledger-<hash of the state dir>/ and
the choice is recorded in `<state_dir>/postgres.location`.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from services.infra.config import DB_NAME, DB_PASSWORD, DB_USER, HOST, InfraConfig, database_url
from services.infra.errors import InfraError
from services.infra.procs import pid_alive, tail, write_atomic

SERVER_USER = "postgres"  # the OS user when we are root, and the database superuser
SERVER_SETTINGS = """\
# Written by `ledger infra up` (port and socket folder are given on the command line).
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 256MB
"""
_INCLUDE_LINE = "include_if_exists = 'ledger.conf'"


@dataclass(frozen=True)
class PgLayout:
    """The server's folders; `run_as` is the OS user that runs it (None: ourselves)."""

    base: Path
    run_as: str | None

    @property
    def data(self) -> Path:
        return self.base / "postgres"

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        preferred = self.base / "postgres-run"
        if len(str(preferred)) <= 80:  # a Unix socket path must stay below 108 bytes
            return preferred
        digest = hashlib.sha256(str(self.base).encode()).hexdigest()[:12]
        return Path(f"/tmp/infinite-ledger-pg-{digest}")


@dataclass(frozen=True)
class PgProcess:
    pid: int
    port: int


def _server_user() -> str | None:
    return SERVER_USER if os.geteuid() == 0 else None


def _as_server_user(run_as: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", run_as, "--", *command] if run_as else command


def _reachable_by(user: str, folder: Path) -> bool:
    result = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(folder)],
        capture_output=True,
        check=False,
        cwd="/",
    )
    return result.returncode == 0


def layout(config: InfraConfig, decide: bool = False) -> PgLayout | None:
    """The recorded layout; with `decide`, choose and record one when there is none."""
    run_as = _server_user()
    try:
        return PgLayout(Path(config.pg_location_file.read_text().strip()), run_as)
    except OSError:
        pass
    if not decide:
        return None
    base = config.state_dir.resolve()
    if run_as is not None:
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            raise InfraError(
                f"PostgreSQL cannot run as root and there is no user {run_as!r}"
            ) from None
        if not _reachable_by(run_as, base):
            digest = hashlib.sha256(str(base).encode()).hexdigest()[:12]
            base = Path(f"/var/tmp/infinite-ledger-{digest}")
    write_atomic(config.pg_location_file, f"{base}\n")
    return PgLayout(base, run_as)


def running(pg: PgLayout) -> PgProcess | None:
    """The server of this data folder, from its postmaster.pid, if it is alive."""
    try:
        lines = (pg.data / "postmaster.pid").read_text().splitlines()
        process = PgProcess(pid=int(lines[0]), port=int(lines[3]))
    except (OSError, ValueError, IndexError):
        return None
    return process if pid_alive(process.pid) else None


def login_error(port: int, timeout: int = 3) -> str | None:
    """None if the ledger role logs in over TCP and runs `SELECT 1`, else the reason."""
    try:
        with psycopg.connect(database_url(port), connect_timeout=timeout) as connection:
            connection.execute("SELECT 1").fetchone()
    except psycopg.Error as error:
        return str(error).strip() or type(error).__name__
    return None


def _owned_folder(path: Path, run_as: str | None, mode: int = 0o700) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


def _run(pg: PgLayout, command: list[str], what: str, timeout: float = 180) -> None:
    result = subprocess.run(
        _as_server_user(pg.run_as, command),
        capture_output=True,
        text=True,
        cwd="/",
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(
            f"PostgreSQL {what} failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}\nread {pg.log_file}:\n{tail(pg.log_file)}"
        )


def prepare(pg: PgLayout, bin_dir: Path) -> None:
    """Create the folders and run initdb once (password auth over TCP, trust on the socket)."""
    pg.base.mkdir(parents=True, exist_ok=True)
    _owned_folder(pg.socket_dir, pg.run_as)
    if not pg.log_file.exists():
        pg.log_file.touch(mode=0o640)
        if pg.run_as is not None:
            user = pwd.getpwnam(pg.run_as)
            os.chown(pg.log_file, user.pw_uid, user.pw_gid)
    if (pg.data / "PG_VERSION").is_file():
        return
    _owned_folder(pg.data, pg.run_as)
    _run(
        pg,
        [
            str(bin_dir / "initdb"),
            "-D",
            str(pg.data),
            "-U",
            SERVER_USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        ],
        "initdb",
    )
    (pg.data / "ledger.conf").write_text(SERVER_SETTINGS)
    with (pg.data / "postgresql.conf").open("a") as conf:
        conf.write(f"\n{_INCLUDE_LINE}\n")
    if pg.run_as is not None:
        user = pwd.getpwnam(pg.run_as)
        os.chown(pg.data / "ledger.conf", user.pw_uid, user.pw_gid)


def data_version(pg: PgLayout) -> str | None:
    try:
        return (pg.data / "PG_VERSION").read_text().strip()
    except OSError:
        return None


def start(pg: PgLayout, bin_dir: Path, port: int, timeout: float) -> PgProcess:
    options = f"-p {port} -k {shlex.quote(str(pg.socket_dir))} -c listen_addresses={HOST}"
    _run(
        pg,
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(pg.data),
            "-l",
            str(pg.log_file),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            options,
            "start",
        ],
        "start",
        timeout=timeout + 30,
    )
    process = running(pg)
    if process is None:
        raise InfraError(f"PostgreSQL did not stay up; read {pg.log_file}:\n{tail(pg.log_file)}")
    return process


def stop(pg: PgLayout, bin_dir: Path) -> None:
    _run(pg, [str(bin_dir / "pg_ctl"), "-D", str(pg.data), "-m", "fast", "-w", "stop"], "stop")


def provision(pg: PgLayout, port: int) -> None:
    """Create the ledger role (LOGIN, CREATEDB) and its database, idempotently."""
    with psycopg.connect(
        host=str(pg.socket_dir), port=port, user=SERVER_USER, dbname="postgres", autocommit=True
    ) as connection:
        role = connection.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_USER,)
        ).fetchone()
        verb = "ALTER" if role else "CREATE"
        connection.execute(
            sql.SQL("{} ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(DB_USER), sql.Literal(DB_PASSWORD)
            )
        )
        database = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)
        ).fetchone()
        if database is None:
            connection.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DB_NAME), sql.Identifier(DB_USER)
                )
            )

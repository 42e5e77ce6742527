"""A single-node Apache Kafka broker (KRaft) run from the jars Maven fetched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from services.infra import kafka_probe, templates
from services.infra.config import HOST, InfraConfig
from services.infra.errors import InfraError
from services.infra.procs import cmdline, pid_alive, tail, wait_gone, write_atomic

MAIN_CLASS = "kafka.Kafka"
HEAP_OPTIONS = ("-Xmx512m", "-Xms256m")


@dataclass(frozen=True)
class KafkaProcess:
    """The broker `ledger infra` started, as recorded in its pid file."""

    pid: int
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


def running(config: InfraConfig) -> KafkaProcess | None:
    """Our broker, if its pid file names a live `kafka.Kafka` of this state dir."""
    try:
        recorded = KafkaProcess(**json.loads(config.kafka_pid_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not pid_alive(recorded.pid):
        return None
    command = cmdline(recorded.pid)
    if command and (MAIN_CLASS not in command or str(config.kafka_properties) not in command):
        return None  # the pid was reused by another program
    return recorded


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise InfraError(
            "Java 17 or newer is needed to run Kafka; install it "
            "(Debian: apt-get install -y openjdk-17-jre-headless)"
        )
    return found


def _java_command(config: InfraConfig, java: str, *arguments: str) -> list[str]:
    return [
        java,
        *HEAP_OPTIONS,
        "-XX:+ExitOnOutOfMemoryError",
        f"-XX:ErrorFile={config.logs_dir}/kafka-hs_err_pid%p.log",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={config.logs_dir}",
        f"-Dlog4j2.configurationFile={config.kafka_dir / 'log4j2.properties'}",
        "-cp",
        f"{config.kafka_libs}/*",
        *arguments,
    ]


def write_configuration(config: InfraConfig) -> None:
    config.kafka_data.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    (config.kafka_dir / "log4j2.properties").write_text(templates.read("log4j2.properties"))
    write_atomic(
        config.kafka_properties,
        templates.render(
            "server.properties",
            host=HOST,
            kafka_port=config.kafka_port,
            controller_port=config.controller_port,
            log_dirs=config.kafka_data,
        ),
    )


def _storage_tool(config: InfraConfig, java: str, *arguments: str) -> str:
    command = _java_command(config, java, "kafka.tools.StorageTool", *arguments)
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=config.kafka_dir
    )
    if result.returncode != 0:
        raise InfraError(
            f"kafka-storage {arguments[0]} failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return result.stdout


def ensure_formatted(config: InfraConfig, java: str, log: Callable[[str], None]) -> None:
    """Format the KRaft storage once (a new cluster id), as `kafka-storage format` does."""
    if (config.kafka_data / "meta.properties").is_file():
        return
    log("kafka: formatting the storage (first start only)")
    cluster_id = _storage_tool(config, java, "random-uuid").strip().splitlines()[-1].strip()
    _storage_tool(
        config,
        java,
        "format",
        "--standalone",
        "-t",
        cluster_id,
        "-c",
        str(config.kafka_properties),
    )


def spawn(config: InfraConfig, java: str) -> KafkaProcess:
    """Start the broker detached (its own session), stdout/stderr to `kafka.out`."""
    command = _java_command(config, java, MAIN_CLASS, str(config.kafka_properties))
    with config.kafka_out.open("a") as out:
        out.write(f"=== ledger infra up: starting Kafka at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    pid = os.posix_spawn(
        java,
        command,
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(config.kafka_out), flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # as subprocess' restore_signals
    )
    process = KafkaProcess(pid, config.kafka_port, config.controller_port)
    write_atomic(config.kafka_pid_file, json.dumps(asdict(process)) + "\n")
    return process


def failure_hint(config: InfraConfig, since: float | None = None) -> str:
    """Which logs to read, with their last lines (only logs written after `since`)."""
    parts = [f"read {config.kafka_log} and {config.kafka_out}"]
    for path in (config.kafka_out, config.kafka_log):
        try:
            fresh = since is None or path.stat().st_mtime >= since
        except OSError:
            fresh = False
        text = tail(path, 15) if fresh else ""
        if text:
            parts.append(f"--- last lines of {path}:\n{text}")
    return "\n".join(parts)


def wait_ready(config: InfraConfig, port: int, pid: int | None, timeout: float) -> None:
    """Wait until the broker on `port` answers a Metadata request listing a live broker;
    `pid` is our broker's process (None for a broker we did not start)."""
    began = time.time()
    deadline = time.monotonic() + timeout
    while True:
        info = kafka_probe.answers(HOST, port, timeout=2.0)
        if info is not None and info.ready:
            return
        if pid is not None and not pid_alive(pid):
            config.kafka_pid_file.unlink(missing_ok=True)
            hint = failure_hint(config, since=began - 5)
            raise InfraError(f"Kafka exited during start-up; {hint}")
        if time.monotonic() > deadline:
            still = f"it is still running (pid {pid}); " if pid is not None else ""
            raise InfraError(
                f"Kafka did not answer on {HOST}:{port} within {timeout:.0f} s; "
                f"{still}{failure_hint(config)}"
            )
        time.sleep(0.5)


def stop(config: InfraConfig, timeout: float = 60.0) -> KafkaProcess | None:
    """SIGTERM our broker, SIGKILL it after `timeout` s; returns what was stopped."""
    process = running(config)
    if process is None:
        config.kafka_pid_file.unlink(missing_ok=True)
        return None
    os.kill(process.pid, signal.SIGTERM)
    if not wait_gone(process.pid, timeout):
        os.kill(process.pid, signal.SIGKILL)
        wait_gone(process.pid, 10.0)
    config.kafka_pid_file.unlink(missing_ok=True)
    return process

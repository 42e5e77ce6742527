"""Kafka's jars, resolved from Maven Central by Maven and cached in the state dir."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from services.infra import templates
from services.infra.config import (
    DEPENDENCY_PLUGIN_VERSION,
    KAFKA_VERSION,
    LOG4J_VERSION,
    InfraConfig,
)
from services.infra.errors import InfraError
from services.infra.procs import tail

_MARKER = ".ledger-kafka-version"
_MAVEN_TIMEOUT = 1800.0


def _wanted() -> str:
    return f"kafka_2.13:{KAFKA_VERSION} log4j-slf4j-impl:{LOG4J_VERSION}\n"


def jars_ready(config: InfraConfig) -> bool:
    marker = config.kafka_libs / _MARKER
    return marker.is_file() and marker.read_text() == _wanted()


def ensure_jars(config: InfraConfig, log: Callable[[str], None]) -> None:
    """Copy the broker's jars into `<state>/kafka/libs` unless they are there already."""
    if jars_ready(config):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(
            "Maven (`mvn`) is needed once to fetch Kafka's jars from Maven Central; "
            "install it (Debian: apt-get install -y maven)"
        )
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    pom = config.kafka_dir / "pom.xml"
    pom.write_text(
        templates.render(
            "kafka-pom.xml",
            kafka_version=KAFKA_VERSION,
            log4j_version=LOG4J_VERSION,
            dependency_plugin_version=DEPENDENCY_PLUGIN_VERSION,
        )
    )
    partial = config.kafka_dir / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    log(f"kafka: fetching Apache Kafka {KAFKA_VERSION} jars with Maven (first start only)")
    command = [
        mvn,
        "-B",
        "--no-transfer-progress",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    with config.maven_log.open("wb") as output:
        try:
            result = subprocess.run(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=config.kafka_dir,
                timeout=_MAVEN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InfraError(
                f"Maven did not finish within {_MAVEN_TIMEOUT:.0f} s; read {config.maven_log}"
            ) from None
    jars = list(partial.glob("*.jar")) if partial.is_dir() else []
    if result.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise InfraError(
            f"Maven could not fetch Kafka's jars (exit {result.returncode}); "
            f"read {config.maven_log}:\n{tail(config.maven_log)}"
        )
    (partial / _MARKER).write_text(_wanted())
    shutil.rmtree(config.kafka_libs, ignore_errors=True)
    partial.rename(config.kafka_libs)
    shutil.rmtree(config.kafka_dir / "target", ignore_errors=True)

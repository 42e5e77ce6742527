"""Kafka's jars, resolved from Maven Central by Maven and cached in the state dir.

Two folders, each a class path of its own: the broker's (`kafka_2.13`, fetched by
`ledger infra up`) and the command-line tools' (`kafka-tools`: the console producer,
fetched when first asked for, e.g. by the interoperability tests). Apart, so that
fetching the tools never replaces the jars of a broker that is running.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class JarSet:
    """What one folder of jars holds: the POM that resolves them, the jar that must be
    among them, and the marker text that says the folder is complete and current."""

    what: str
    log_name: str
    pom_template: str
    main_jar_prefix: str
    wanted: str


BROKER = JarSet(
    what="Kafka's jars",
    log_name="maven.log",
    pom_template="kafka-pom.xml",
    main_jar_prefix="kafka_2.13-",
    wanted=f"kafka_2.13:{KAFKA_VERSION} log4j-slf4j-impl:{LOG4J_VERSION}\n",
)
TOOLS = JarSet(
    what="Kafka's command-line tools",
    log_name="maven-tools.log",
    pom_template="kafka-tools-pom.xml",
    main_jar_prefix="kafka-tools-",
    wanted=f"kafka-tools:{KAFKA_VERSION}\n",
)


def jars_ready(config: InfraConfig, jars: JarSet = BROKER) -> bool:
    marker = _folder(config, jars) / _MARKER
    return marker.is_file() and marker.read_text() == jars.wanted


def ensure_jars(config: InfraConfig, log: Callable[[str], None]) -> None:
    """Copy the broker's jars into `<state>/kafka/libs` unless they are there already."""
    _ensure(config, BROKER, log)


def ensure_tools_jars(config: InfraConfig, log: Callable[[str], None] = print) -> Path:
    """The folder of `kafka-tools` at the broker's version and what it needs (fetched
    once, into `<state>/kafka/tools`); safe to call from several processes at once."""
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    with (config.kafka_dir / "tools.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _ensure(config, TOOLS, log)
    return config.kafka_tools_libs


def _folder(config: InfraConfig, jars: JarSet) -> Path:
    return config.kafka_tools_libs if jars is TOOLS else config.kafka_libs


def _ensure(config: InfraConfig, jars: JarSet, log: Callable[[str], None]) -> None:
    if jars_ready(config, jars):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(
            f"Maven (`mvn`) is needed once to fetch {jars.what} from Maven Central; "
            "install it (Debian: apt-get install -y maven)"
        )
    folder = _folder(config, jars)
    maven_log = config.logs_dir / jars.log_name
    work = folder.parent / f"{folder.name}.maven"
    work.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    pom = work / "pom.xml"
    pom.write_text(
        templates.render(
            jars.pom_template,
            kafka_version=KAFKA_VERSION,
            log4j_version=LOG4J_VERSION,
            dependency_plugin_version=DEPENDENCY_PLUGIN_VERSION,
        )
    )
    partial = folder.parent / f"{folder.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    log(f"kafka: fetching {jars.what} {KAFKA_VERSION} with Maven (first time only)")
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
    with maven_log.open("wb") as output:
        try:
            result = subprocess.run(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=work,
                timeout=_MAVEN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InfraError(
                f"Maven did not finish within {_MAVEN_TIMEOUT:.0f} s; read {maven_log}"
            ) from None
    found = list(partial.glob("*.jar")) if partial.is_dir() else []
    if result.returncode != 0 or not any(j.name.startswith(jars.main_jar_prefix) for j in found):
        raise InfraError(
            f"Maven could not fetch {jars.what} (exit {result.returncode}); "
            f"read {maven_log}:\n{tail(maven_log)}"
        )
    (partial / _MARKER).write_text(jars.wanted)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    shutil.rmtree(work, ignore_errors=True)

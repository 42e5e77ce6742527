"""Kafka's own `kafka-console-producer` (org.apache.kafka.tools.ConsoleProducer, from the
`kafka-tools` jar at the broker's version, fetched from Maven Central on first use)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from services.infra.config import InfraConfig
from services.infra.kafka import java_binary
from services.infra.maven import ensure_tools_jars

MAIN_CLASS = "org.apache.kafka.tools.ConsoleProducer"


def console_produce(
    bootstrap: str, topic: str, lines: Sequence[str], reader_properties: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Send `lines` (one record each) as `kafka-console-producer.sh` would, with these
    `--reader-property` settings (e.g. parse.key=true); raises if it fails."""
    libs = ensure_tools_jars(InfraConfig.from_env())
    properties = [
        arg for k, v in reader_properties.items() for arg in ("--reader-property", f"{k}={v}")
    ]
    command = [
        java_binary(),
        "-Xmx256m",
        "-cp",
        f"{libs}/*",
        MAIN_CLASS,
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--request-required-acks",
        "all",
        *properties,
    ]
    done = subprocess.run(
        command,
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"console producer failed ({done.returncode}):\n{done.stderr}"
    return done

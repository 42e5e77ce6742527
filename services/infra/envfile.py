"""The settings file `ledger infra up` leaves for the other commands (`ledger.env`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from services.infra.procs import write_atomic

KEYS = ("KAFKA_BOOTSTRAP_SERVERS", "LEDGER_DATABASE_URL")


def read(path: Path) -> dict[str, str]:
    """KEY=value lines (comments and blank lines skipped); {} when the file is missing."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        values[key.strip()] = value.strip().strip("'\"")
    return values


def write(path: Path, values: Mapping[str, str]) -> None:
    body = "".join(f"{key}={value}\n" for key, value in values.items())
    write_atomic(path, "# written by `ledger infra up`: the local services\n" + body)

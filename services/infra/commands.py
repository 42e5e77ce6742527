"""`ledger infra up | down | env | status`."""

from __future__ import annotations

import argparse
import sys

from services.infra.config import InfraConfig
from services.infra.errors import InfraError
from services.infra.lifecycle import ensure_down, ensure_up, resolved_env, service_status


def _say(message: str) -> None:
    print(message, flush=True)


def _up(config: InfraConfig) -> int:
    ensure_up(config, log=_say)
    _say(f"settings written to {config.env_file}")
    return 0


def _down(config: InfraConfig) -> int:
    ensure_down(config, log=_say)
    return 0


def _env(config: InfraConfig) -> int:
    for key, value in resolved_env(config).items():
        print(f"{key}={value}")
    return 0


def _status(config: InfraConfig) -> int:
    statuses = service_status(config)
    for status in statuses:
        print(status.describe())
    usable = all(status.state in ("running", "external") for status in statuses)
    return 0 if usable else 3


def run_infra(args: argparse.Namespace) -> int:
    """Exit codes: 0 done; 1 a service could not be started or stopped (the message names
    the log to read); 3 `status` found a service that does not run."""
    actions = {"up": _up, "down": _down, "env": _env, "status": _status}
    try:
        config = InfraConfig.from_env()
        return actions[args.action](config)
    except InfraError as error:
        print(f"ledger infra {args.action}: {error}", file=sys.stderr)
        return 1

"""The `ledger` command: a thin dispatcher; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _infra(args: argparse.Namespace) -> int:
    from services.infra.commands import run_infra

    return run_infra(args)


def _migrate(args: argparse.Namespace) -> int:
    from services.store.migrate import run_migrate

    return run_migrate(args)


def _consume(args: argparse.Namespace) -> int:
    from services.consumer.run import run_consume

    return run_consume(args)


def _publish(args: argparse.Namespace) -> int:
    from services.publish import run_publish

    return run_publish(args)


def _dev(args: argparse.Namespace) -> int:
    from services.dev import run_dev

    return run_dev(args)


def _replay(args: argparse.Namespace) -> int:
    from services.replay.commands import run_replay

    return run_replay(args)


def _verify(args: argparse.Namespace) -> int:
    from services.replay.commands import run_verify

    return run_verify(args)


def _refused(args: argparse.Namespace) -> int:
    from services.refused.commands import run_refused

    return run_refused(args)


def _api(args: argparse.Namespace) -> int:
    from api.serve import run_api

    return run_api(args)


def _instant(text: str) -> object:
    from services.refused.commands import instant

    return instant(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description="INFINITE resource ledger")
    sub = parser.add_subparsers(dest="command", required=True)

    infra = sub.add_parser("infra", help="local Kafka and PostgreSQL without Docker")
    infra.add_argument("action", choices=["up", "down", "env", "status"])
    infra.set_defaults(handler=_infra)

    migrate = sub.add_parser("migrate", help="apply the database migrations (idempotent)")
    migrate.set_defaults(handler=_migrate)

    consume = sub.add_parser("consume", help="consume pack events into the ledger")
    consume.set_defaults(handler=_consume)

    publish = sub.add_parser("publish", help="publish events from a JSON-lines file")
    publish.add_argument("file", help="JSON lines, one event per line ('-' for stdin)")
    publish.add_argument(
        "--check", action="store_true", help="validate every line only; publish nothing"
    )
    publish.add_argument(
        "--mode",
        choices=("structured", "binary"),
        default="structured",
        help="CloudEvents content mode: the whole event as the value (structured, the "
        "default) or the attributes as ce_* headers and data as the value (binary)",
    )
    publish.set_defaults(handler=_publish)

    dev = sub.add_parser("dev", help="run the whole platform locally (Ctrl-C stops it)")
    dev.add_argument("--demo", action="store_true", help="also run a simulated scheduler")
    dev.set_defaults(handler=_dev)

    replay = sub.add_parser(
        "replay", help="rebuild the read models from the ledger (or the ledger from Kafka)"
    )
    replay.add_argument(
        "--from-kafka",
        action="store_true",
        help="rebuild the ledger itself from the events topic's history into an empty, "
        "migrated database, then exit",
    )
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.add_argument(
        "--work-mem",
        default="128MB",
        help="server memory per reading connection (4) to sort the ledger in (128MB)",
    )
    replay.add_argument(
        "--lock-timeout-ms",
        type=int,
        default=2000,
        help="longest wait for the read models' locks per swap attempt (2000)",
    )
    replay.set_defaults(handler=_replay)
    verify = sub.add_parser(
        "verify", help="compare the read models with the ledger; exit 1 on any difference"
    )
    verify.add_argument("--limit", type=int, default=20, help="differences to print (20)")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.set_defaults(handler=_verify)

    refused = sub.add_parser("refused", help="list, inspect and re-drive refused records")
    actions = refused.add_subparsers(dest="refused_command", required=True)
    listing = actions.add_parser("list", help="refused records, oldest first")
    listing.add_argument("--reason", help="a substring of the reason (any case)")
    listing.add_argument("--since", type=_instant, help="refused at or after (ISO 8601; UTC)")
    listing.add_argument("--until", type=_instant, help="refused before (ISO 8601; UTC)")
    listing.add_argument("--topic")
    listing.add_argument("--partition", type=int)
    listing.add_argument("--limit", type=int, default=1000, help="rows at most (1000)")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = actions.add_parser("show", help="one refused record: raw key, headers, value")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="one JSON object")
    redrive = actions.add_parser(
        "redrive", help="apply refused records again (idempotent by event id)"
    )
    redrive.add_argument("ids", type=int, nargs="*", metavar="ID")
    redrive.add_argument(
        "--all", action="store_true", help="every record no re-drive has applied yet"
    )
    redrive.add_argument("--reason", help="with --all: only those whose reason contains it")
    refused.set_defaults(handler=_refused)

    api = sub.add_parser("api", help="serve the read-only HTTP API")
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(handler=_api)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    error = _terms_error()
    if error is not None:
        print(f"ledger: {error}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    return handler(args)


def _terms_error() -> str | None:
    """What is wrong with the fold's settings (LEDGER_LOW_BALANCE_SECONDS,
    LEDGER_DEFAULT_LEASE_SECONDS), if anything: every command that folds reads them, and
    a bad value is refused before anything starts rather than by a traceback later."""
    from services.settings import get_settings

    try:
        _ = get_settings().terms
    except ValueError as error:
        return str(error)
    return None


if __name__ == "__main__":
    sys.exit(main())

"""The one error `ledger infra` reports to its user."""

from __future__ import annotations


class InfraError(RuntimeError):
    """A local service could not be started, stopped or reached; the message says why."""

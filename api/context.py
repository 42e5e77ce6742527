"""What the routes share: the database, the token verifier, the display time zone, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from api.auth import TokenVerifier
from api.db import Database
from projections.terms import DEFAULT_TERMS, Terms


@dataclass(frozen=True, slots=True)
class ApiContext:
    db: Database
    verifier: TokenVerifier
    zone: ZoneInfo
    clock: Callable[[], datetime]  # the instant a request is answered as of
    terms: Terms = DEFAULT_TERMS  # the fold's settings, for as-of reads (they fold)

"""What the routes share: the database, the token verifier, the display time zone."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from api.auth import TokenVerifier
from api.db import Database


@dataclass(frozen=True, slots=True)
class ApiContext:
    db: Database
    verifier: TokenVerifier
    zone: ZoneInfo

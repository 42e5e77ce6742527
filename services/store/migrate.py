"""`ledger migrate`: bring the database schema up to date with Alembic (idempotent)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from services.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(database_url: str) -> str:
    """Apply every pending migration to `database_url`; return the head revision."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            # Two `ledger migrate` at once must not both create the tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(7263482113)"))
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    return str(revision)


def run_migrate(args: argparse.Namespace) -> int:
    revision = migrate(get_settings().sqlalchemy_url)
    print(f"database is at revision {revision}")
    return 0

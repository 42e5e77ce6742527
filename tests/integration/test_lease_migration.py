"""Migration 0007 on a database that already has open sessions: they get no lease (a NULL
lease end beside each start, the arrays parallel as the consumer writes them), and reads
count them as running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from alembic import command
from sqlalchemy import create_engine

from services.store.migrate import alembic_config, migrate
from tests.support.db import query


def _upgrade(url: str, revision: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def test_open_sessions_from_before_leases_have_none(fresh_database: str) -> None:
    _upgrade(fresh_database, "0006")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    insert = (
        "INSERT INTO packs (user_pack_id, user_id, pack_name, duration_type, buy_datetime,"
        " node_list, granted, charged, open_starts, open_train_ids, snapshot, event_count)"
        " VALUES (%s, 1, 'p', 'type.timing', %s, '[]', 3600, 0, %s, %s, '{}', 3)"
    )
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(insert, (1, start, [start, start + timedelta(seconds=5)], [7, 8]))
        conn.execute(insert, (2, start, [], []))
    assert migrate(fresh_database) >= "0007"
    rows = query(
        fresh_database,
        "SELECT user_pack_id, open_lease_ends, ledger_running(open_starts, open_lease_ends, %s),"
        " ledger_remaining(duration_type, granted, charged, open_starts, open_lease_ends, %s)"
        " FROM packs ORDER BY user_pack_id",
        (start + timedelta(hours=1), start + timedelta(seconds=100)),
    )
    assert rows == [(1, [None, None], 2, 3600 - 100 - 95), (2, [], 0, 3600)]

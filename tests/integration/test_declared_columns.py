"""The migrated tables hold every column the read-model rows declare, with its type:
adding a field to a row without its migration fails here, not in production."""

from __future__ import annotations

from dataclasses import fields

import pytest

from projections.read_models import PackRow, UsageRow, sql_type
from tests.support.db import query


@pytest.mark.parametrize(("table", "row"), [("packs", PackRow), ("usage_records", UsageRow)])
def test_migrated_table_has_the_declared_columns(
    ledger_database: str, table: str, row: type
) -> None:
    actual = dict(
        query(
            ledger_database,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,),
        )
    )
    spelled = {"bigint": "bigint", "integer": "integer", "text": "text", "jsonb": "jsonb",
               "timestamptz": "timestamp with time zone",
               "timestamptz[]": "timestamp with time zone[]", "bigint[]": "bigint[]"}  # fmt: skip
    for f in fields(row):
        assert f.name in actual, f"{table}.{f.name} is declared but not migrated"
        assert actual[f.name] == spelled[sql_type(row, f.name)], f"{table}.{f.name}"

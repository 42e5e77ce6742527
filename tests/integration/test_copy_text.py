"""The COPY text and literals the consumer builds by hand, read back by PostgreSQL."""

from __future__ import annotations

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from services.store import copy_text as c
from tests.support.examples import examples

TRICKY = ["plain", 'with"quote', "back\\slash", 'both\\"', "{braces},comma", " spaced ", "NULL", ""]
# Any text an event id may hold (the ledger refuses U+0000; PostgreSQL cannot store it).
IDS = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


def test_a_text_array_literal_reads_back_as_the_strings(ledger_database: str) -> None:
    with psycopg.connect(ledger_database) as conn:
        row = conn.execute("SELECT %s::text[]", (c.text_array(TRICKY),)).fetchone()
    assert row is not None and row[0] == TRICKY


def test_any_strings_read_back_from_a_text_array_literal(ledger_database: str) -> None:
    with psycopg.connect(ledger_database) as conn:

        @settings(max_examples=examples(300), deadline=None)
        @given(st.lists(IDS, max_size=6))
        def round_trip(values: list[str]) -> None:
            row = conn.execute("SELECT %s::text[]", (c.text_array(values),)).fetchone()
            assert row is not None and row[0] == values

        round_trip()


def test_any_ids_read_back_from_a_bigint_array_literal(ledger_database: str) -> None:
    with psycopg.connect(ledger_database) as conn:

        @settings(max_examples=examples(100), deadline=None)
        @given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20))
        def round_trip(values: list[int]) -> None:
            row = conn.execute("SELECT %s::bigint[]", (c.int_array(values),)).fetchone()
            assert row is not None and row[0] == values

        round_trip()

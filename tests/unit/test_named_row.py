"""`api.rows.named_row`: rows read by column name, matched once per statement."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from api.rows import named_row


@dataclass(slots=True)
class Pair:
    left: int
    right: str


def cursor(*names: str) -> Any:
    """A cursor after a statement with these columns: its result names them (`fname`)."""
    encoded = [name.encode() for name in names]
    return SimpleNamespace(pgresult=SimpleNamespace(nfields=len(names), fname=encoded.__getitem__))


def test_columns_in_the_fields_order_fill_them_in_turn() -> None:
    make = named_row(Pair)(cursor("left", "right"))
    assert make((1, "a")) == Pair(1, "a")


def test_a_column_moved_in_the_select_moves_nothing() -> None:
    make = named_row(Pair)(cursor("right", "left"))
    assert make(("a", 1)) == Pair(1, "a")


@pytest.mark.parametrize("names", [("left",), ("left", "renamed"), ("left", "right", "more")])
def test_a_column_missing_renamed_or_extra_fails_at_once_naming_both(
    names: tuple[str, ...],
) -> None:
    with pytest.raises(TypeError, match=r"Pair has the fields \('left', 'right'\), the statement"):
        named_row(Pair)(cursor(*names))

"""`detached`: a copy of a pack's state that further events change without touching the
original (a batch planned ahead applies its events to copies of the states the batch in
flight leaves; that batch caches the originals once it commits)."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from projections.fold import apply_in_order, fold
from projections.state import detached
from tests.unit.event_factory import describe
from tests.unit.test_fold_properties import NOWS, PROPERTY, split_ledgers


@PROPERTY
@given(st.data())
def test_a_detached_state_equals_its_original_and_moves_alone(data: st.DataObject) -> None:
    for pack, pack_entries, taken in split_ledgers(data):
        original = fold(pack, pack_entries[:taken]).state
        before = copy.deepcopy(original)
        twin = detached(original)
        assert twin == original
        assert describe(twin, {}, NOWS) == describe(original, {}, NOWS)

        if original.purchase is None:
            continue
        apply_in_order(twin, pack_entries[taken:])  # may stop half-way: a late entry
        assert original == before, "applying events to the copy changed the original"
        assert original.audit == before.audit
        for train_id, record in original.open_sessions.items():
            assert record == before.open_sessions[train_id]

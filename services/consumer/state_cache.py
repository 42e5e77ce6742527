"""Pack states kept in memory between batches, so the hot path skips reading snapshots.

A state is taken out while a batch works on it and put back only after that batch has
committed; a failed batch simply loses the states it took. Each entry carries the pack's
`event_count` (it grows with every event), and is used only when the stored row still
has that count: another consumer's write makes it stale, never wrong.
"""

from __future__ import annotations

from projections.state import PackState


class StateCache:
    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._entries: dict[int, PackState] = {}

    def take(self, user_pack_id: int, event_count: int) -> PackState | None:
        state = self._entries.pop(user_pack_id, None)
        if state is not None and state.event_count == event_count:
            return state
        return None

    def take_any(self, user_pack_id: int) -> PackState | None:
        """The pack's state whatever its count: for a plan made ahead of the transaction,
        which checks the stored count under the lock (`services/consumer/ahead.py`)."""
        return self._entries.pop(user_pack_id, None)

    def put(self, states: dict[int, PackState]) -> None:
        self._entries.update(states)
        overflow = len(self._entries) - self._capacity
        if overflow > 0:  # oldest first: dicts keep insertion order
            for key in list(self._entries)[:overflow]:
                del self._entries[key]

"""The arithmetic of CONTRACT.md section 2, as pure functions of stored values and `now`.

The SQL functions in `services.store.schema` implement the same rules for reads; a
test keeps the two in agreement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from events.payloads import DurationType

MAX_ID = 2**63 - 1
SECOND = timedelta(seconds=1)

FREE = "status.free"
TRAINING = "status.training"
OUT_OF_TIME = "status.outOfTime"


def elapsed_seconds(since: datetime, until: datetime) -> int:
    """Whole seconds from `since` to `until`, floored, never below 0."""
    elapsed = until - since
    seconds = elapsed.days * 86_400 + elapsed.seconds  # a timedelta's floor in seconds
    return seconds if seconds > 0 else 0


def remaining_seconds(
    duration_type: DurationType,
    granted: int,
    charged: int,
    open_starts: Iterable[datetime],
    now: datetime,
) -> int:
    """`remaining(now)`: activity packs report 0; timing packs what is left of the grant."""
    if duration_type is not DurationType.TIMING:
        return 0
    left = granted - charged
    for start in open_starts:  # elapsed_seconds, inlined: this runs for every event
        elapsed = now - start
        used = elapsed.days * 86_400 + elapsed.seconds
        if used > 0:
            left -= used
    return left if left > 0 else 0


def status(
    duration_type: DurationType,
    granted: int,
    charged: int,
    open_starts: list[datetime],
    activity_end_time: datetime | None,
    now: datetime,
) -> str:
    """`status(now)`: the first matching rule wins."""
    if duration_type is DurationType.TIMING:
        if remaining_seconds(duration_type, granted, charged, open_starts, now) == 0:
            return OUT_OF_TIME
    elif activity_end_time is not None and activity_end_time <= now:
        return OUT_OF_TIME
    return TRAINING if open_starts else FREE


def charge_for(length: int, granted: int, charged: int) -> int:
    """What closing a session of `length` seconds charges: never more than is left."""
    return min(length, max(0, granted - charged))


UNIT = 1_000_000  # microseconds in a second
MICROSECOND = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def exhaustion_instant(
    budget: int, open_starts: list[datetime], not_before: datetime
) -> datetime | None:
    """The first instant >= `not_before` at which the open sessions have used `budget` seconds.

    Each session counts whole elapsed seconds, so `used(t)` = sum of floor(t - start) is a
    non-decreasing step function. Since floor(x) lies in (x - 1, x], the answer lies within
    one second after T0 = (budget + sum of starts) / n, and it is T0 itself or the step
    after T0 that completes the budget (each session steps once in that second): found
    exactly in integer microseconds. None when the instant lies beyond the last one a
    `datetime` can hold (a grant of thousands of years): never, in effect.
    """
    if budget <= 0 or not open_starts:
        return not_before
    if len(open_starts) == 1:  # the common case: floor(t - start) >= budget
        try:
            return max(not_before, open_starts[0] + SECOND * budget)
        except OverflowError:
            return None
    # Integer microseconds after the Unix epoch: floor((t - s) / 1 s) does not depend on
    # where time is counted from, and integers keep the search below exact and cheap.
    # Only `not_before` is converted from the epoch (the starts share its zone as a rule,
    # and a difference of two times in the same zone is the cheap one).
    floor_us = (not_before - EPOCH) // MICROSECOND
    starts = [floor_us + (start - not_before) // MICROSECOND for start in open_starts]
    used = 0
    for start in starts:
        if floor_us > start:
            used += (floor_us - start) // UNIT
    if used >= budget:
        return not_before
    # From here on every instant follows every start (none follows `not_before` in fold
    # order; the max() keeps it safe): used(t) = sum of (t - start) // UNIT.
    count = len(starts)
    instant = max(max(starts), floor_us, -(-(budget * UNIT + sum(starts)) // count))
    # Within the second after `instant` each session steps once, `UNIT - (instant -
    # start) % UNIT` after it: the budget is used at the step that completes it.
    used = 0
    steps: list[int] = []
    for start in starts:
        whole, part = divmod(instant - start, UNIT)
        used += whole
        steps.append(UNIT - part)
    if used < budget:
        if budget - used > count:
            raise AssertionError("unreachable: used(instant + 1 s) >= budget")
        steps.sort()
        instant += steps[budget - used - 1]
    if instant <= floor_us:  # max(not_before, the instant), in integers
        return not_before
    try:
        return EPOCH + instant * MICROSECOND
    except OverflowError:
        return None


def derived_id(*parts: object) -> int:
    """A positive integer below 2^63 derived from facts: the same parts give the same id."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & MAX_ID or 1


def log_id_for(start_event_id: str) -> int:
    """The usage record's `logId`, derived from the start event: derived_id("logId", id),
    with the parts joined by hand (this runs for every session a replay folds)."""
    digest = hashlib.sha256(b"logId\x1f" + start_event_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") & MAX_ID or 1


def exhaustion_notice_id(user_pack_id: int, exhausted_at: datetime, iso: str = "") -> str:
    """The `id` of an `infinite.pack.exhausted` notice: one per exhaustion, stable on replay.
    `iso`, if given, is `exhausted_at.isoformat()`: when it is in UTC already (its offset
    +00:00) it is the text the id is made of, and is not formatted again."""
    instant = iso if iso.endswith("+00:00") else exhausted_at.astimezone(UTC).isoformat()
    digest = hashlib.sha256(f"exhausted\x1f{user_pack_id}\x1f{instant}".encode()).hexdigest()
    return f"exhausted-{user_pack_id}-{digest[:24]}"

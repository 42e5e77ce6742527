"""The arithmetic of CONTRACT.md section 2, as pure functions of stored values and `now`.

The SQL functions in `services.store.schema` implement the same rules for reads; a
test keeps the two in agreement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
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
    open_lease_ends: Sequence[datetime | None] = (),
) -> int:
    """`remaining(now)`: activity packs report 0; timing packs what is left of the grant.
    `open_lease_ends`, beside `open_starts` (empty: no session has a lease): a session
    counts up to `min(now, lease end)` - one whose lease ended by `now` has lapsed."""
    if duration_type is not DurationType.TIMING:
        return 0
    left = granted - charged
    if open_lease_ends:
        for start, end in zip(open_starts, open_lease_ends, strict=True):
            left -= elapsed_seconds(start, now if end is None or end > now else end)
        return left if left > 0 else 0
    for start in open_starts:  # elapsed_seconds, inlined: this runs for every event
        elapsed = now - start
        used = elapsed.days * 86_400 + elapsed.seconds
        if used > 0:
            left -= used
    return left if left > 0 else 0


def running_at(open_lease_ends: Iterable[datetime | None], now: datetime) -> int:
    """How many open sessions still run at `now`: those without a lease or whose lease
    ends after `now` (a session whose lease end is `<= now` has lapsed)."""
    return sum(1 for end in open_lease_ends if end is None or end > now)


def status(
    duration_type: DurationType,
    granted: int,
    charged: int,
    open_starts: list[datetime],
    activity_end_time: datetime | None,
    now: datetime,
    open_lease_ends: Sequence[datetime | None] = (),
) -> str:
    """`status(now)`: the first matching rule wins (a lapsed session is not open)."""
    if duration_type is DurationType.TIMING:
        if (
            remaining_seconds(duration_type, granted, charged, open_starts, now, open_lease_ends)
            == 0
        ):
            return OUT_OF_TIME
    elif activity_end_time is not None and activity_end_time <= now:
        return OUT_OF_TIME
    if open_lease_ends:
        return TRAINING if running_at(open_lease_ends, now) else FREE
    return TRAINING if open_starts else FREE


def session_end(
    end_time: datetime | None, lease_ends_at: datetime | None, now: datetime
) -> datetime | None:
    """A usage record's end as of `now`: its stop (or lapse), else its lease end once that
    has passed (it lapsed then), else None (running)."""
    if end_time is not None:
        return end_time
    if lease_ends_at is not None and lease_ends_at <= now:
        return lease_ends_at
    return None


def session_seconds(
    start_time: datetime, end_time: datetime | None, lease_ends_at: datetime | None, now: datetime
) -> int:
    """A usage record's length as of `now`: up to its end, its lapse, or `now`."""
    return elapsed_seconds(start_time, session_end(end_time, lease_ends_at, now) or now)


def burn_rate(duration_type: str, remaining: int, open_sessions: int) -> int:
    """`burnRate`: seconds of budget the open sessions use per second now - one each on a
    timing pack with time left; none on an activity pack (never charged) or on a timing
    pack out of time (its `remaining` stays 0). `duration_type` is the stored text."""
    if duration_type != DurationType.TIMING.value or remaining <= 0:
        return 0
    return open_sessions


def charge_for(length: int, granted: int, charged: int) -> int:
    """What closing a session of `length` seconds charges: never more than is left."""
    return min(length, max(0, granted - charged))


UNIT = 1_000_000  # microseconds in a second
MICROSECOND = timedelta(microseconds=1)
LAST_INSTANT = datetime(9999, 12, 31, tzinfo=UTC)
"""Instants from here on are never reached, in effect: the contract's times end with
9999-12-30 (UTC) so that every display zone can show them, and an exhaustion the ledger
could not show or store is one that never comes."""


def exhaustion_instant(
    budget: int, open_starts: list[datetime], not_before: datetime
) -> datetime | None:
    """The first instant >= `not_before` at which the open sessions have used `budget` seconds.

    Each session counts whole elapsed seconds, so `used(t)` = sum of floor(t - start) is a
    non-decreasing step function. Since floor(x) lies in (x - 1, x], the answer lies within
    one second after T0 = (budget + sum of starts) / n, and it is T0 itself or the step
    after T0 that completes the budget (each session steps once in that second): found
    exactly in integer microseconds. None when the instant lies past 9999-12-30 UTC
    (`LAST_INSTANT`: a grant of thousands of years): never, in effect.
    """
    return exhaustion_instants((budget,), open_starts, not_before)[0]


def exhaustion_instants(
    budgets: Sequence[int], open_starts: list[datetime], not_before: datetime
) -> list[datetime | None]:
    """`exhaustion_instant` of each of `budgets` for the same sessions, their offsets made
    once: a pack's exhaustion and its low-balance crossings ahead are one search."""
    if not open_starts:
        return [not_before for _ in budgets]
    if len(open_starts) == 1:  # the common case: floor(t - start) >= budget
        only = open_starts[0]
        return [_one_session(budget, only, not_before) for budget in budgets]
    # Integer microseconds from `not_before`: floor((t - s) / 1 s) does not depend on where
    # time is counted from, and integers keep the search below exact and cheap. (The
    # starts share the zone of `not_before` as a rule, and a difference of two times in
    # the same zone is the cheap one: the epoch, in UTC, would cost a conversion more.)
    starts = [(start - not_before) // MICROSECOND for start in open_starts]
    used_before = 0
    for start in starts:
        if start < 0:
            used_before += -start // UNIT
    # From `max(starts, 0)` on every instant follows every start (none follows
    # `not_before` in fold order; the max() keeps it safe): used(t) = sum of (t - start)
    # // UNIT.
    count, total, latest = len(starts), sum(starts), max(max(starts), 0)
    since_utc: datetime | None = None  # `not_before` in UTC, made once if needed
    found: list[datetime | None] = []
    for budget in budgets:
        if budget <= 0 or used_before >= budget:
            found.append(not_before)
            continue
        instant = max(latest, -(-(budget * UNIT + total) // count))
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
        if instant <= 0:  # max(not_before, the instant), in integers
            found.append(not_before)
            continue
        if since_utc is None:
            since_utc = not_before.astimezone(UTC)
        try:
            reached = since_utc + instant * MICROSECOND
        except OverflowError:  # past year 9999: past LAST_INSTANT
            found.append(None)
            continue
        found.append(reached if reached < LAST_INSTANT else None)
    return found


# A start in local year Y plus `budget` seconds lies before local year Y + budget //
# _LONGEST_YEAR + 2; below _SAFE_YEAR that is before 9998-01-01 in any zone, so before
# LAST_INSTANT and far from an overflow. The common case skips both checks: comparing
# with LAST_INSTANT costs more than the sum itself, events' times carrying pydantic's own
# tzinfo and LAST_INSTANT the standard library's.
_LONGEST_YEAR = 366 * 86_400
_SAFE_YEAR = 9997


def _one_session(budget: int, start: datetime, not_before: datetime) -> datetime | None:
    if budget <= 0:
        return not_before
    if start.year + budget // _LONGEST_YEAR < _SAFE_YEAR:
        reached = start + SECOND * budget
        return reached if reached > not_before else not_before
    try:
        reached = max(not_before, start + SECOND * budget)
    except OverflowError:
        return None
    return reached if reached < LAST_INSTANT else None


def depletion_instant(
    budget: int, sessions: Sequence[tuple[datetime, datetime | None]], not_before: datetime
) -> datetime | None:
    """`exhaustion_instant` for sessions that may lapse: each (start, lease end or None)
    uses whole seconds up to `min(t, lease end)`, so that a session stops using the
    budget at its lease end. The first instant >= `not_before` at which they have used
    `budget` seconds; None when they never will (every lease ends first) or only past
    `LAST_INSTANT`.

    Between two lease ends the sessions still running use time as in
    `exhaustion_instant`, and those that lapsed add what they used up to their lease
    end: searched segment by segment, in the order of the lease ends."""
    starts = []
    for start, end in sessions:
        if end is not None:
            break
        starts.append(start)
    else:  # the common case: no lease
        return exhaustion_instant(budget, starts, not_before)
    capped = 0  # whole seconds used by the sessions that lapsed by the segment's start
    running: list[tuple[datetime, datetime | None]] = []
    for start, end in sessions:
        if end is not None and end <= not_before:
            capped += elapsed_seconds(start, end)
        else:
            running.append((start, end))
    since = not_before
    while True:
        if budget - capped <= 0:
            return since
        if not running:
            return None
        ends = [end for _, end in running if end is not None]
        until = min(ends) if ends else None
        instant = exhaustion_instant(budget - capped, [start for start, _ in running], since)
        if instant is None or until is None or instant <= until:
            return instant
        # Not reached by `until`: the sessions whose lease ends then stop using time.
        capped += sum(elapsed_seconds(start, end) for start, end in running if end == until)
        running = [(start, end) for start, end in running if end != until]
        since = until


LEASE_EXPIRED = "leaseExpired"
"""The stop reason of a session that lapsed (its lease ended before its stop)."""


def lease_end(at: datetime, lease_seconds: int) -> datetime:
    """The lease end a start or heartbeat at `at` gives: `at + lease`, but never past
    `LAST_INSTANT` (an instant never reached: a lease that would end there never lapses),
    so that every lease end is a time the ledger can show in any zone and store."""
    try:
        end = at + SECOND * lease_seconds
    except OverflowError:  # at a large offset near year 9999: its UTC twin fits
        end = at.astimezone(UTC) + SECOND * lease_seconds
    return end if end < LAST_INSTANT else LAST_INSTANT


def lapse_notice_id(user_pack_id: int, log_id: int, lapsed_at: datetime) -> str:
    """The `id` of an `infinite.training.lapsed` notice: one per session (its `log_id`,
    derived from its start event) and lapse instant, stable on replay."""
    instant = lapsed_at.astimezone(UTC).isoformat()
    digest = hashlib.sha256(f"lapsed\x1f{user_pack_id}\x1f{log_id}\x1f{instant}".encode())
    return f"lapsed-{user_pack_id}-{log_id}-{digest.hexdigest()[:16]}"


# Crossings of one threshold a pack's state remembers: those of one batch reach the
# notifier even if a top-up re-armed the threshold in that batch (more than this many
# crossings of one threshold in one batch - a catch-up over a long history - lose the
# oldest). The thresholds themselves are a term of the fold (`projections.terms`).
LOW_CROSSINGS_KEPT = 8


def low_notice_id(user_pack_id: int, threshold: int, crossed_at: datetime, iso: str = "") -> str:
    """The `id` of an `infinite.pack.low` notice: one per (pack, threshold, crossing
    instant), stable on replay. `iso`, if given, is `crossed_at.isoformat()` (used as it
    is when in UTC, as for `exhaustion_notice_id`)."""
    instant = iso if iso.endswith("+00:00") else crossed_at.astimezone(UTC).isoformat()
    digest = hashlib.sha256(f"low\x1f{user_pack_id}\x1f{threshold}\x1f{instant}".encode())
    return f"low-{user_pack_id}-{threshold}-{digest.hexdigest()[:24]}"


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


def start_notice_id(user_pack_id: int, log_id: int) -> str:
    """The `id` of the `infinite.pack.exhausted` notice of its own that a training started
    during an exhaustion gets: one per session (`log_id` is derived from its start event),
    stable on replay. `-start-` is not hex: it never equals an exhaustion's notice id.
    `services.store.notice_sql` builds the same text in SQL."""
    return f"exhausted-{user_pack_id}-start-{log_id}"

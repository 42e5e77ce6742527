"""Every SQL statement the read-only API runs.

Values that depend on the time of the read (remaining seconds, status, session length
and end, the running sessions) are computed here with `ledger_remaining`,
`ledger_status`, `ledger_session_seconds`, `ledger_session_end` and `ledger_running` at
`%(at)s`, one instant per request, so that filters and orders on them run in the
database. Statements are assembled only from the constant fragments of this module:
callers choose sort keys and filters by name, never by passing SQL text.

Leases: a session whose lease end is `<= at` has lapsed at its lease end, whether or not
the consumer has applied a later event of its pack (which closes it in the read model):
`open_lease_ends` (packs) and `lease_ends_at` (usage records) go to the functions, which
count such a session up to its lease end and not as running (`ledger_running`), and give
its usage record that end (`ledger_session_end`).

The forecast (`exhaustsAt`) is the stored `packs.exhausts_at` while a session runs at
`at`: the open sessions as they stand at any instant after the pack's last event - each
counted up to its lease end - run it out at the instant the consumer computed from that
event on (docs/decisions.md, "Forecast"); once every one of them has lapsed, none.

Times leave as the contract shows them (`yyyy-MM-dd HH:mm:ss`, fractions dropped), formatted
here by `to_char` in the session's time zone, which `api.db` sets to the display zone: the
text columns `*_text`. Sorting and filtering read the `timestamptz` columns, never the text
(an ORDER BY of a name reads the output column first: the texts are named apart).

Parameters (psycopg named style): `at` (timestamptz), `user_id` (the caller, unless the
statement is built for every owner), `limit`, `offset` and the filters' own parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

Order = Sequence[tuple[str, bool]]  # (sort key, descending?)


def display_time(expression: str) -> str:
    """`expression` (a timestamptz, or NULL) as the contract's text in the session's zone;
    `to_char` truncates the fraction of a second, as the contract asks."""
    return f"to_char({expression}, 'YYYY-MM-DD HH24:MI:SS')"


# --- packs --------------------------------------------------------------------------------

_PACK_COLUMNS: Final = """
    p.user_pack_id, p.pack_name, p.duration_type, p.buy_datetime, p.node_list,
    ledger_remaining(p.duration_type, p.granted, p.charged, p.open_starts,
                     p.open_lease_ends, %(at)s) AS remaining,
    ledger_status(p.duration_type, p.granted, p.charged, p.open_starts, p.open_lease_ends,
                  p.activity_end_time, %(at)s) AS status,
    CASE WHEN ledger_running(p.open_starts, p.open_lease_ends, %(at)s) > 0
         THEN p.exhausts_at END AS exhausts_at,
    ledger_running(p.open_starts, p.open_lease_ends, %(at)s) AS open_sessions"""

# What a pack read answers: `_PACK_COLUMNS` as the rows of `api.rows` take them, times as
# text, over a FROM item that selected `_PACK_COLUMNS` (the planner inlines it).
_PACK_ANSWER: Final = f"""
    user_pack_id, pack_name, duration_type, {display_time("buy_datetime")} AS buy_text,
    node_list, remaining, status, {display_time("exhausts_at")} AS exhausts_text,
    open_sessions"""

# Sort keys of the pack list: expressions over the columns of `_PACK_COLUMNS`.
# Statuses and duration types sort in the data dictionary's order, not alphabetically.
PACK_SORT: Final[dict[str, str]] = {
    "user_pack_id": "user_pack_id",
    "pack_name": "pack_name",
    "status": ("CASE status WHEN 'status.free' THEN 0 WHEN 'status.training' THEN 1 ELSE 2 END"),
    "duration_type": "CASE duration_type WHEN 'type.timing' THEN 0 ELSE 1 END",
    "remaining": "remaining",
    "buy_datetime": "buy_datetime",
}
PACK_DEFAULT_ORDER: Final[tuple[tuple[str, bool], ...]] = (("buy_datetime", True),)
_PACK_TIE_BREAKER: Final = "user_pack_id"

_OWNER_SCOPE: Final = "p.user_id = %(user_id)s"
_EVERY_OWNER: Final = "true"


def _sort_terms(
    sort: dict[str, str], order: Order, default: Order, tie_breaker: str
) -> list[tuple[str, str]]:
    """(expression, direction) of each sort key, ending with the unique tie-breaker."""
    chosen = list(order) or list(default)
    terms = [(sort[key], "DESC" if descending else "ASC") for key, descending in chosen]
    if tie_breaker not in (key for key, _ in chosen):
        # Same direction as the first key, so that the default order reads one index.
        terms.append((sort[tie_breaker], "DESC" if chosen[0][1] else "ASC"))
    return terms


def _order_by(sort: dict[str, str], order: Order, default: Order, tie_breaker: str) -> str:
    return ", ".join(
        f"{expression} {direction}"
        for expression, direction in _sort_terms(sort, order, default, tie_breaker)
    )


def _pack_matching(
    every_owner: bool, by_duration_type: bool, by_status: bool, only_free: bool
) -> str:
    """CTE `matching`: the caller's packs that pass the filters, with their values at `at`."""
    where = [_EVERY_OWNER if every_owner else _OWNER_SCOPE]
    if by_duration_type:
        where.append("p.duration_type = %(duration_type)s")
    status_where = ["true"]
    if by_status:
        status_where.append("status = %(status)s")
    if only_free:
        status_where.append("status = 'status.free'")
    # NOT MATERIALIZED: the planner may read an index in LIMIT order and skip unused columns.
    return f"""
WITH scoped AS NOT MATERIALIZED (
    SELECT {_PACK_COLUMNS}
    FROM packs AS p
    WHERE {" AND ".join(where)}
), matching AS NOT MATERIALIZED (
    SELECT * FROM scoped WHERE {" AND ".join(status_where)}
)"""


@lru_cache(maxsize=512)
def _pack_list(
    every_owner: bool,
    by_duration_type: bool,
    by_status: bool,
    only_free: bool,
    order: tuple[tuple[str, bool], ...],
) -> str:
    matching = _pack_matching(every_owner, by_duration_type, by_status, only_free)
    order_by = _order_by(PACK_SORT, order, PACK_DEFAULT_ORDER, _PACK_TIE_BREAKER)
    # The count is an uncorrelated scalar subquery: evaluated once, in the page's snapshot.
    return f"""{matching}
SELECT (SELECT count(*) FROM matching) AS total, {_PACK_ANSWER}
FROM matching
ORDER BY {order_by}
LIMIT %(limit)s OFFSET %(offset)s
"""


def pack_list(
    *,
    every_owner: bool,
    by_duration_type: bool,
    by_status: bool,
    only_free: bool,
    order: Order,
) -> str:
    """One page of packs with the number of matching packs in every row.

    Rows: (total, user_pack_id, pack_name, duration_type, buy_text, node_list,
    remaining, status, exhausts_text, open_sessions). Parameters: at, user_id (unless
    every_owner), duration_type, status (when filtered), limit, offset. An empty result
    says nothing about the total: run `pack_count` with the same flags.
    """
    return _pack_list(every_owner, by_duration_type, by_status, only_free, tuple(order))


@lru_cache(maxsize=16)
def pack_count(
    *, every_owner: bool, by_duration_type: bool, by_status: bool, only_free: bool
) -> str:
    """How many packs match: for a page past the end, where `pack_list` returns no row."""
    matching = _pack_matching(every_owner, by_duration_type, by_status, only_free)
    return f"{matching}\nSELECT count(*) FROM matching\n"


_PACK_DETAIL_TEMPLATE: Final = f"""
SELECT {_PACK_ANSWER}
FROM (SELECT {_PACK_COLUMNS}
      FROM packs AS p
      WHERE p.user_pack_id = %(user_pack_id)s AND {{scope}}) AS pack
"""
PACK_DETAIL: Final = _PACK_DETAIL_TEMPLATE.format(scope=_OWNER_SCOPE)
PACK_DETAIL_ANY_OWNER: Final = _PACK_DETAIL_TEMPLATE.format(scope=_EVERY_OWNER)
"""Rows: (user_pack_id, pack_name, duration_type, buy_text, node_list, remaining, status,
exhausts_text, open_sessions)."""

# The stream (`api.live`): the packs a notification names that some client may see (the
# hub sends each to its owner's clients and to admins), as of one instant per fan-out.
PACKS_BY_ID: Final = f"""
SELECT {_PACK_ANSWER}, user_id
FROM (SELECT {_PACK_COLUMNS}, p.user_id
      FROM packs AS p
      WHERE p.user_pack_id = ANY(%(user_pack_ids)s::bigint[])
        AND (%(every_owner)s OR p.user_id IN (SELECT unnest(%(owners)s::bigint[])))) AS pack
"""
"""Rows: the detail's columns, then user_id. Parameters: at, user_pack_ids, every_owner
(an admin is listening), owners (the users with a client); the id lists as bigint[]
literals (`copy_text.int_array`). The owners as a sub-select, not `= ANY(owners)`: that is
a linear search per row (a parameter array is not hashed), this a hashed sub-plan - 6.2 ->
4.1-4.7 ms a read for 134 packs with 10,000 owners listening (docs/api.md)."""

# --- usage records ------------------------------------------------------------------------

# A usage record's session as of `at`, as both the list and the detail answer it.
_RECORD_SESSION: Final = f"""
    {display_time("u.start_time")} AS start_text,
    {display_time("ledger_session_end(u.end_time, u.lease_ends_at, %(at)s)")} AS end_text,
    ledger_session_seconds(u.start_time, u.end_time, u.lease_ends_at, %(at)s) AS seconds,
    {display_time("u.lease_ends_at")} AS lease_ends_text"""

_RECORD_COLUMNS: Final = f"""
    u.log_id, u.user_pack_id, u.train_id, u.train_name, u.user_name, {_RECORD_SESSION}"""

# Sort keys of the usage-record list. A running session has no end: it sorts after every
# ended one in ascending order (PostgreSQL's NULLS LAST for ASC, NULLS FIRST for DESC).
RECORD_SORT: Final[dict[str, str]] = {
    "log_id": "log_id",
    "train_name": "train_name",
    "user_name": "user_name",
    "seconds": "seconds",
    "start_time": "start_time",
    "end_time": "end_time",
}
RECORD_DEFAULT_ORDER: Final[tuple[tuple[str, bool], ...]] = (("start_time", True),)
_RECORD_TIE_BREAKER: Final = "log_id"

_RECORD_OWNER_SCOPE: Final = "u.owner_user_id = %(user_id)s"


@lru_cache(maxsize=512)
def _record_list(every_owner: bool, by_pack: bool, order: tuple[tuple[str, bool], ...]) -> str:
    where = [_EVERY_OWNER if every_owner else _RECORD_OWNER_SCOPE]
    if by_pack:
        where.append("u.user_pack_id = %(user_pack_id)s")
    terms = _sort_terms(RECORD_SORT, order, RECORD_DEFAULT_ORDER, _RECORD_TIE_BREAKER)
    keys = ", ".join(f"{expression} AS sort_{n}" for n, (expression, _) in enumerate(terms))
    inner = ", ".join(f"sort_{n} {direction}" for n, (_, direction) in enumerate(terms))
    outer = ", ".join(f"page.sort_{n} {direction}" for n, (_, direction) in enumerate(terms))
    # A deferred join: the page is chosen on the ids and sort keys alone (an index that
    # covers them answers without reading the table), then only its rows are read.
    return f"""
WITH matching AS NOT MATERIALIZED (
    SELECT u.log_id, u.train_name, u.user_name, u.start_time,
           ledger_session_end(u.end_time, u.lease_ends_at, %(at)s) AS end_time,
           ledger_session_seconds(u.start_time, u.end_time, u.lease_ends_at, %(at)s)
               AS seconds
    FROM usage_records AS u
    WHERE {" AND ".join(where)}
), page AS (
    SELECT log_id, {keys}
    FROM matching
    ORDER BY {inner}
    LIMIT %(limit)s OFFSET %(offset)s
)
SELECT (SELECT count(*) FROM matching) AS total, {_RECORD_COLUMNS}
FROM page
JOIN usage_records AS u ON u.log_id = page.log_id
ORDER BY {outer}
"""


def record_list(*, every_owner: bool, by_pack: bool, order: Order) -> str:
    """One page of usage records with the number of matching records in every row.

    Rows: (total, log_id, user_pack_id, train_id, train_name, user_name, start_text,
    end_text, seconds, lease_ends_text), end_text and seconds as of `at` (a lapse ends a
    record at its lease end). Parameters: at, user_id (unless every_owner), user_pack_id
    (when by_pack), limit, offset. An empty result says nothing about the total: run
    `record_count`.
    """
    return _record_list(every_owner, by_pack, tuple(order))


@lru_cache(maxsize=4)
def record_count(*, every_owner: bool, by_pack: bool) -> str:
    where = [_EVERY_OWNER if every_owner else _RECORD_OWNER_SCOPE]
    if by_pack:
        where.append("u.user_pack_id = %(user_pack_id)s")
    return f"SELECT count(*) FROM usage_records AS u WHERE {' AND '.join(where)}\n"


_RECORD_DETAIL_TEMPLATE: Final = f"""
SELECT u.train_id, u.train_name, u.user_id, u.user_name, {_RECORD_SESSION},
       p.user_pack_id, p.pack_name, p.node_list,
       ledger_remaining(p.duration_type, p.granted, p.charged, p.open_starts,
                        p.open_lease_ends, %(at)s) AS remaining
FROM usage_records AS u
JOIN packs AS p ON p.user_pack_id = u.user_pack_id
WHERE u.log_id = %(log_id)s AND {{scope}}
"""
RECORD_DETAIL: Final = _RECORD_DETAIL_TEMPLATE.format(scope=_RECORD_OWNER_SCOPE)
RECORD_DETAIL_ANY_OWNER: Final = _RECORD_DETAIL_TEMPLATE.format(scope=_EVERY_OWNER)
"""Rows: (train_id, train_name, user_id, user_name, start_text, end_text, seconds,
lease_ends_text, user_pack_id, pack_name, node_list, remaining)."""

# --- health -------------------------------------------------------------------------------

READY: Final = """
SELECT to_regclass('packs') IS NOT NULL AND to_regclass('usage_records') IS NOT NULL
"""
"""One row, one boolean: the read models exist (the database is migrated)."""

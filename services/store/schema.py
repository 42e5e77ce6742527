"""The database schema: every table and SQL function of the ledger, in one place.

Migrations apply these texts; the statements that read and write the tables live
beside this module (`ledger_sql.py`, `projection_sql.py`, `read_sql.py`).

Two kinds of tables:
- the *ledger* (`ledger_events`, `refused_records`, `redrives`): append-only, enforced by
  triggers that raise on UPDATE, DELETE and TRUNCATE, whoever tries;
- the *read models* (`packs`, `usage_records`) and bookkeeping (`consumer_offsets`,
  `exhaustion_notices`): derived from the ledger, rewritten freely, rebuildable by replay.

`ledger_remaining`, `ledger_status` and `ledger_session_seconds` compute the values that
depend on the time of the read from stored columns and a given `at`, so that the API can
filter and sort by them in SQL. They implement the same rules as `projections.rules`.
"""

from __future__ import annotations

LEDGER_TABLES = """
CREATE TABLE ledger_events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- arrival order
    event_id        text        NOT NULL,
    user_pack_id    bigint      NOT NULL,
    event_type      text        NOT NULL,
    event_time      timestamptz NOT NULL,
    source          text        NOT NULL,
    envelope        jsonb       NOT NULL,  -- the CloudEvent as accepted
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_events_event_id_key UNIQUE (event_id)
);
CREATE INDEX ledger_events_pack_idx ON ledger_events (user_pack_id, position);

CREATE TABLE refused_records (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    record_key      bytea,
    record_value    bytea,
    reason          text        NOT NULL,
    refused_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refused_records_source_key UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

"""


def append_only(table: str) -> str:
    """The triggers that make `table` append-only (ledger_refuse_change raises)."""
    return f"""
CREATE TRIGGER {table}_append_only
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER {table}_no_truncate
    BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"""


LEDGER_TABLES += append_only("ledger_events") + append_only("refused_records")

BOOKKEEPING_TABLES = """
CREATE TABLE consumer_offsets (
    consumer_group  text    NOT NULL,
    kafka_topic     text    NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset     bigint  NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, kafka_topic, kafka_partition)
);

CREATE TABLE exhaustion_notices (
    notice_id     text        PRIMARY KEY,  -- derived from the facts: stable across replays
    user_pack_id  bigint      NOT NULL,
    exhausted_at  timestamptz NOT NULL,     -- the notice's instant (a low notice's crossedAt)
    train_ids     bigint[]    NOT NULL,
    payload       jsonb       NOT NULL,     -- the CloudEvent to publish
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX exhaustion_notices_unpublished_idx
    ON exhaustion_notices (created_at) WHERE published_at IS NULL;
"""

# Revision 0008: what the lapse notifier reads (services/consumer/notices.py), the
# sessions of given packs that lapse or lapsed: the open ones with a lease (small: only
# running sessions) and the closed lapses (one row per crashed training, ever). Both
# partial, so that the completed sessions, nearly all of them, are in neither.
LAPSE_INDEXES = """
CREATE INDEX IF NOT EXISTS usage_records{suffix}_open_lease_idx
    ON usage_records{suffix} (user_pack_id, lease_ends_at)
    WHERE end_time IS NULL AND lease_ends_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_records{suffix}_lapsed_idx
    ON usage_records{suffix} (user_pack_id, end_time)
    WHERE stop_reason = 'leaseExpired' AND stop_event_id IS NULL;
"""

# The read models. `{suffix}` lets replay build fresh copies beside the live tables.
# `packs` has room left in each page and no index on a column a batch changes, so that
# the consumer's per-batch UPDATE of a pack is a HOT update (docs/decisions.md); the
# exhaustion notifier keeps the instants it needs in memory (services/consumer/notices.py).
READ_MODEL_TABLES = (
    """
CREATE TABLE packs{suffix} (
    user_pack_id       bigint      PRIMARY KEY,
    user_id            bigint      NOT NULL,
    user_name          text,
    pack_name          text        NOT NULL,
    duration_type      text        NOT NULL,  -- 'type.timing' | 'type.activity'
    buy_datetime       timestamptz NOT NULL,
    activity_end_time  timestamptz,
    node_list          jsonb       NOT NULL,  -- [{{nodeId,nodeName,nodeType,cpu/gpuCount,...}}]
    granted            bigint      NOT NULL,  -- durationSeconds + sum of deltaSeconds
    charged            bigint      NOT NULL,  -- seconds charged by closed sessions
    open_starts        timestamptz[] NOT NULL DEFAULT '{{}}',  -- start of each open session
    open_train_ids     bigint[]    NOT NULL DEFAULT '{{}}',  -- trainId of each open session
    open_lease_ends    timestamptz[] NOT NULL DEFAULT '{{}}',  -- lease end of each (NULL: none)
    exhausts_at        timestamptz,           -- when open sessions drive remaining to 0
    exhaustion_notice_id text,                -- the notice's id for that exhaustion
    low_balance        jsonb       NOT NULL DEFAULT '[]',  -- [{{threshold, at, id}}]: crossings
    snapshot           jsonb       NOT NULL,  -- the fold's state, to apply the next events
    event_count        bigint      NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);
CREATE INDEX packs{suffix}_owner_buy_idx
    ON packs{suffix} (user_id, buy_datetime DESC, user_pack_id DESC);
CREATE INDEX packs{suffix}_buy_idx ON packs{suffix} (buy_datetime DESC, user_pack_id DESC);

CREATE TABLE usage_records{suffix} (
    log_id           bigint      PRIMARY KEY,
    user_pack_id     bigint      NOT NULL,
    owner_user_id    bigint      NOT NULL,  -- the pack's owner: who may read this record
    train_id         bigint      NOT NULL,
    train_name       text        NOT NULL,
    user_id          bigint      NOT NULL,  -- who ran the training
    user_name        text        NOT NULL,
    start_time       timestamptz NOT NULL,
    end_time         timestamptz,           -- NULL while running
    charged_seconds  bigint,                -- set when closed
    overrun_seconds  bigint,                -- the part of the session not charged
    stop_reason      text,
    start_event_id   text        NOT NULL,
    stop_event_id    text,
    lease_seconds    integer,               -- the session's lease; NULL: none
    lease_ends_at    timestamptz            -- when it ends now (heartbeats move it)
);
CREATE INDEX usage_records{suffix}_owner_start_idx
    ON usage_records{suffix} (owner_user_id, start_time DESC, log_id DESC)
    INCLUDE (end_time, lease_ends_at);
CREATE INDEX usage_records{suffix}_pack_start_idx
    ON usage_records{suffix} (user_pack_id, start_time DESC, log_id DESC)
    INCLUDE (end_time, lease_ends_at);
CREATE INDEX usage_records{suffix}_start_idx
    ON usage_records{suffix} (start_time DESC, log_id DESC);
CREATE INDEX usage_records{suffix}_lease_idx
    ON usage_records{suffix} (lease_ends_at) WHERE end_time IS NULL AND lease_ends_at IS NOT NULL;
"""
    + LAPSE_INDEXES
)

# Values as of a given instant. Whole seconds, floored, never below 0, per open session:
# the same arithmetic as projections.rules.
READ_FUNCTIONS = """
CREATE OR REPLACE FUNCTION ledger_elapsed(since timestamptz, at timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT greatest(0, floor(extract(epoch FROM (at - since))))::bigint
$$;

-- Kept apart so that ledger_remaining and ledger_status (plain CASE expressions) can be
-- inlined by the planner; this sub-select only runs for packs with open sessions.
CREATE OR REPLACE FUNCTION ledger_open_seconds(open_starts timestamptz[], at timestamptz)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(ledger_elapsed(s, at)), 0)::bigint FROM unnest(open_starts) AS s
$$;

CREATE OR REPLACE FUNCTION ledger_remaining(
    duration_type text, granted bigint, charged bigint, open_starts timestamptz[], at timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN duration_type <> 'type.timing' THEN 0::bigint
        WHEN cardinality(open_starts) = 0 THEN greatest(0, granted - charged)
        ELSE greatest(0, granted - charged - ledger_open_seconds(open_starts, at))
    END
$$;

CREATE OR REPLACE FUNCTION ledger_status(
    duration_type text, granted bigint, charged bigint, open_starts timestamptz[],
    activity_end_time timestamptz, at timestamptz
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN duration_type = 'type.timing'
             AND ledger_remaining(duration_type, granted, charged, open_starts, at) = 0
            THEN 'status.outOfTime'
        WHEN duration_type = 'type.activity'
             AND activity_end_time IS NOT NULL AND activity_end_time <= at
            THEN 'status.outOfTime'
        WHEN cardinality(open_starts) > 0 THEN 'status.training'
        ELSE 'status.free'
    END
$$;

CREATE OR REPLACE FUNCTION ledger_session_seconds(
    start_time timestamptz, end_time timestamptz, at timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ledger_elapsed(start_time, coalesce(end_time, at))
$$;
"""

# Revision 0002: the usage-record indexes carry end_time, so that a page of the log list
# is chosen from the index alone (durations and end times are computed from it).
USAGE_INDEXES_WITH_END_TIME = """
DROP INDEX IF EXISTS usage_records_owner_start_idx;
CREATE INDEX usage_records_owner_start_idx
    ON usage_records (owner_user_id, start_time DESC, log_id DESC) INCLUDE (end_time);
DROP INDEX IF EXISTS usage_records_pack_start_idx;
CREATE INDEX usage_records_pack_start_idx
    ON usage_records (user_pack_id, start_time DESC, log_id DESC) INCLUDE (end_time);
"""

# Revision 0003: positions still come from the identity's sequence, but the consumer
# draws them (nextval) and appends a batch with one COPY straight into the ledger,
# instead of a staging table and INSERT ... SELECT ... RETURNING (docs/consumer.md).
POSITIONS_BY_DEFAULT = """
ALTER TABLE ledger_events ALTER COLUMN position SET GENERATED BY DEFAULT;
"""

# Revision 0004: HOT updates of `packs` (the read models above say the same for new and
# replayed tables). The fillfactor applies to pages written from now on.
HOT_PACK_UPDATES = """
DROP INDEX IF EXISTS packs_exhausts_idx;
ALTER TABLE packs SET (fillfactor = 70);
"""


def read_model_tables(suffix: str = "") -> str:
    """DDL of the read models; `suffix` names a fresh copy (replay builds `packs_next`...)."""
    return READ_MODEL_TABLES.format(suffix=suffix)


# Revision 0005: re-drives of refused records, append-only like the records themselves:
# each attempt is a row (applied, a duplicate of an event already in the ledger, or
# refused again with its new reason); `ledger refused list` shows the latest. The raw
# record's headers are kept with a refusal from now on (the consumer fills them when it
# reads them; NULL: not kept).
REDRIVES = """
ALTER TABLE refused_records ADD COLUMN record_headers jsonb;  -- [[name, base64 value], ...]

CREATE TABLE redrives (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    refused_id  bigint      NOT NULL REFERENCES refused_records (id),
    at          timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'refused')),
    reason      text,        -- why it was refused again
    event_id    text         -- the event's id, when the record parsed
);
CREATE INDEX redrives_refused_idx ON redrives (refused_id, id);
""" + append_only("redrives")


# Revision 0006: low-balance notices (`infinite.pack.low`). Each pack row carries its
# crossings under way or ahead (`projections.fold.low_crossings`) with their notice ids;
# the notices share the exhaustion outbox (`exhaustion_notices`, ids `low-...`).
LOW_BALANCE = """
ALTER TABLE packs ADD COLUMN IF NOT EXISTS low_balance jsonb NOT NULL DEFAULT '[]';
COMMENT ON COLUMN exhaustion_notices.exhausted_at IS
    'the notice''s instant: exhaustedAt, or crossedAt of an infinite.pack.low notice';
"""


# Revision 0007: leases (CONTRACT.md section 2). An open session whose lease end passed
# stays open in the read model until a later event of its pack is applied (the fold then
# closes it at its lease end, reason 'leaseExpired'); reads take it as lapsed at that
# instant: `open_lease_ends` beside `open_starts` on packs, `lease_ends_at` on usage
# records, and read functions that take them. The partial index finds the open sessions
# by lease end (the lapse notices). The functions of READ_FUNCTIONS stay, for sessions
# without leases; these overloads take the lease ends.
LEASES = """
ALTER TABLE packs ADD COLUMN IF NOT EXISTS open_lease_ends timestamptz[] NOT NULL DEFAULT '{}';
-- The sessions open before this revision have no lease: a NULL beside each start, so that
-- the arrays stay parallel (as the consumer writes them, and `ledger verify` expects).
UPDATE packs SET open_lease_ends = array_fill(NULL::timestamptz, ARRAY[cardinality(open_starts)])
WHERE cardinality(open_starts) > 0 AND cardinality(open_lease_ends) = 0;
ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS lease_seconds integer;
ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS lease_ends_at timestamptz;
CREATE INDEX IF NOT EXISTS usage_records_lease_idx
    ON usage_records (lease_ends_at) WHERE end_time IS NULL AND lease_ends_at IS NOT NULL;
""" + USAGE_INDEXES_WITH_END_TIME.replace("INCLUDE (end_time)", "INCLUDE (end_time, lease_ends_at)")
# (The list's indexes carry the lease end too: a page is still chosen from an index
# alone, its end times and durations as of the read computed from it.)

# Values as of `at` with leases: a session counts up to least(at, lease end) (least()
# skips NULL: no lease), and runs at `at` unless its lease end is <= at. The lease ends
# are beside the starts (unnest pairs them; a shorter array pads with NULL: no lease).
LEASE_READ_FUNCTIONS = """
CREATE OR REPLACE FUNCTION ledger_open_seconds(
    open_starts timestamptz[], open_lease_ends timestamptz[], at timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(ledger_elapsed(s, least(at, e))), 0)::bigint
    FROM unnest(open_starts, open_lease_ends) AS u(s, e)
$$;

CREATE OR REPLACE FUNCTION ledger_lapsed_count(open_lease_ends timestamptz[], at timestamptz)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT count(*) FROM unnest(open_lease_ends) AS e WHERE e <= at
$$;

CREATE OR REPLACE FUNCTION ledger_running(
    open_starts timestamptz[], open_lease_ends timestamptz[], at timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN cardinality(open_lease_ends) = 0 THEN cardinality(open_starts)::bigint
        ELSE cardinality(open_starts) - ledger_lapsed_count(open_lease_ends, at)
    END
$$;

CREATE OR REPLACE FUNCTION ledger_remaining(
    duration_type text, granted bigint, charged bigint, open_starts timestamptz[],
    open_lease_ends timestamptz[], at timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN duration_type <> 'type.timing' THEN 0::bigint
        WHEN cardinality(open_starts) = 0 THEN greatest(0, granted - charged)
        ELSE greatest(0, granted - charged - ledger_open_seconds(open_starts, open_lease_ends, at))
    END
$$;

CREATE OR REPLACE FUNCTION ledger_status(
    duration_type text, granted bigint, charged bigint, open_starts timestamptz[],
    open_lease_ends timestamptz[], activity_end_time timestamptz, at timestamptz
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN duration_type = 'type.timing'
             AND ledger_remaining(duration_type, granted, charged, open_starts,
                                  open_lease_ends, at) = 0
            THEN 'status.outOfTime'
        WHEN duration_type = 'type.activity'
             AND activity_end_time IS NOT NULL AND activity_end_time <= at
            THEN 'status.outOfTime'
        WHEN ledger_running(open_starts, open_lease_ends, at) > 0 THEN 'status.training'
        ELSE 'status.free'
    END
$$;

-- The trainIds of the open sessions still running at `at` (an exhaustion notice names
-- those: a session whose lease ended before has lapsed), in their stored order.
CREATE OR REPLACE FUNCTION ledger_running_train_ids(
    open_train_ids bigint[], open_lease_ends timestamptz[], at timestamptz
) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(t ORDER BY n), '{}')
    FROM unnest(open_train_ids, open_lease_ends) WITH ORDINALITY AS u(t, e, n)
    WHERE t IS NOT NULL AND (e IS NULL OR e > at)
$$;

CREATE OR REPLACE FUNCTION ledger_session_end(
    end_time timestamptz, lease_ends_at timestamptz, at timestamptz
) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(end_time, CASE WHEN lease_ends_at <= at THEN lease_ends_at END)
$$;

CREATE OR REPLACE FUNCTION ledger_session_seconds(
    start_time timestamptz, end_time timestamptz, lease_ends_at timestamptz, at timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ledger_elapsed(start_time, coalesce(end_time, least(at, lease_ends_at)))
$$;
"""


# Revision 0008: the lapse outbox (`infinite.training.lapsed`), a table of its own: a
# lapse names a session, not a pack's instant, and is recorded by (log_id, lapsed_at)
# so that the notifier's SQL finds the lapses not recorded without computing their ids.
LAPSE_NOTICES = """
CREATE TABLE IF NOT EXISTS lapse_notices (
    notice_id     text        PRIMARY KEY,  -- rules.lapse_notice_id: stable across replays
    user_pack_id  bigint      NOT NULL,
    log_id        bigint      NOT NULL,     -- the session's usage record
    train_id      bigint      NOT NULL,
    lapsed_at     timestamptz NOT NULL,     -- its lease end
    payload       jsonb       NOT NULL,     -- the CloudEvent to publish
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    CONSTRAINT lapse_notices_lapse_key UNIQUE (log_id, lapsed_at)
);
CREATE INDEX IF NOT EXISTS lapse_notices_unpublished_idx
    ON lapse_notices (created_at) WHERE published_at IS NULL;
""" + LAPSE_INDEXES.format(suffix="")

"""A folded pack as lines of COPY text for `packs` and `usage_records` (their column order
in `projection_sql.PACK_COLUMNS` / `USAGE_COLUMNS`), without intermediate row objects."""

from __future__ import annotations

from projections.fold import FoldResult
from projections.read_models import pack_row
from services.store import copy_text as c
from services.store.projection_sql import pack_fields

NULL = c.NULL


def pack_line(result: FoldResult) -> str:
    return "\t".join(pack_fields(pack_row(result.state))) + "\n"


def usage_lines(result: FoldResult, times: dict[int, str] | None = None) -> list[str]:
    """The pack's usage records, as `projections.read_models.usage_row` describes them.

    `times`: text of the start and stop times by their id() (`stream.PackInput.times`).
    """
    state = result.state
    assert state.purchase is not None
    known = times or {}
    head = f"\t{state.user_pack_id}\t{state.purchase.user_id}\t"
    text = c.text
    out = []
    for record in result.records.values():
        end = record.end_time
        if end is None:
            closed = f"{NULL}\t{NULL}\t{NULL}\t{NULL}"
            stop_event = NULL
        else:
            closed = (
                f"{known.get(id(end)) or end.isoformat()}\t{record.charged_seconds}\t"
                f"{record.overrun_seconds}\t{text(record.stop_reason)}"
            )
            stop_event = text(record.stop_event_id)
        start = record.start_time
        lease = record.lease_seconds
        lease_end = record.lease_ends_at
        out.append(
            f"{record.log_id}{head}{record.train_id}\t{text(record.train_name)}\t"
            f"{record.user_id}\t{text(record.user_name)}\t"
            f"{known.get(id(start)) or start.isoformat()}\t"
            f"{closed}\t{text(record.start_event_id)}\t{stop_event}\t"
            f"{NULL if lease is None else lease}\t"
            f"{NULL if lease_end is None else lease_end.isoformat()}\n"
        )
    return out

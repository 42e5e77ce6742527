"""The stream's pieces without a server: payload chunks, per-client queues, frames."""

from __future__ import annotations

import orjson

from api.auth import Caller
from api.live import Subscriber, frame
from services.store.live_sql import PAYLOAD_LIMIT, parse_payload, payload_chunks


def test_chunks_stay_under_the_payload_limit_and_keep_every_id() -> None:
    ids = [2**63 - 1 - n for n in range(2000)] + [1, 22, 333]
    chunks = list(payload_chunks(ids))
    assert len(chunks) > 1
    assert all(len(chunk.encode()) <= PAYLOAD_LIMIT < 8000 for chunk in chunks)
    assert [i for chunk in chunks for i in parse_payload(chunk)] == ids
    assert list(payload_chunks([])) == []


def test_a_client_holds_one_frame_per_pack_the_newest() -> None:
    client = Subscriber(Caller(user_id=1, is_admin=False), limit=3)
    client.offer(10, b"a")
    client.offer(11, b"b")
    client.offer(10, b"c")
    assert client.wake.is_set()
    assert client.take() == [b"c", b"b"]
    assert not client.wake.is_set() and not client.dropped


def test_a_client_too_far_behind_is_dropped_and_holds_nothing() -> None:
    client = Subscriber(Caller(user_id=1, is_admin=False), limit=3)
    for pack in range(3):
        client.offer(pack, b"x")
    client.offer(2, b"y")  # a newer state of a pending pack still fits
    assert not client.dropped
    client.offer(3, b"z")
    assert client.dropped and client.pending == {}
    client.offer(4, b"w")
    assert client.pending == {}


def test_a_frame_is_one_event_with_its_json_on_one_line() -> None:
    text = frame("pack", {"packName": "两\n行"})
    event, data, end = text.split(b"\n", 2)
    assert event == b"event: pack"
    assert orjson.loads(data.removeprefix(b"data: ")) == {"packName": "两\n行"}
    assert end == b"\n"

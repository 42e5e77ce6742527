"""Schemathesis fuzzing of the OpenAPI document: always HTTP 200 and the envelope.

Requests are generated from the published request shapes (valid and, in the coverage
phase, invalid ones); answers must never be a server error, must match the published
answer shapes and always be the `{code, data, msg}` envelope.

`@schema.parametrize()` needs the schema when the module is imported, before any
fixture: it is loaded from an app built the same way but without a database (its
lifespan, which loading starts, is shut down at once); every fuzzed call goes to the
module's app (`case.call(app=...)`), on the session's database with data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from tests.api.support import FixedClock, bearer, insert_pack, insert_record, settings_for
from tests.support.examples import examples

USER = 1
NOWHERE = "postgresql://nobody@127.0.0.1:1/nothing"  # refused at once, never reached

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings_for(NOWHERE)))
asgi.shutdown_lifespans()
SEEN: defaultdict[str, set[str]] = defaultdict(set)  # path -> codes answered


@pytest.fixture(scope="module")
def fuzzed_app(api_database: str) -> Iterator[FastAPI]:
    """The app over data of USER (ids 1-5), so that small fuzzed ids find some."""
    now = datetime.now(UTC)
    with psycopg.connect(api_database, autocommit=True) as db:
        db.execute("DELETE FROM usage_records")
        db.execute("DELETE FROM packs")
        for pack in range(1, 6):
            start = now - timedelta(minutes=pack)
            running = pack % 2 == 1
            insert_pack(db, user_pack_id=pack, user_id=USER, open_starts=[start] * running)
            insert_record(
                db,
                log_id=pack,
                user_pack_id=pack,
                owner_user_id=USER,
                start_time=start,
                end_time=None if running else now,
            )
    yield create_app(settings_for(api_database), clock=FixedClock())
    asgi.shutdown_lifespans()


# The stream answers events, not one envelope, and does not end while its token holds:
# tests/integration/test_stream.py tests it over a real server.
@schema.exclude(path="/api/userPack/stream").parametrize()
@settings(max_examples=examples(100), deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_the_documented_envelope(
    case: schemathesis.Case, fuzzed_app: FastAPI
) -> None:
    response = case.call(app=fuzzed_app, headers=bearer(USER))
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    answer = orjson.loads(response.content)
    SEEN[case.path].add(answer["code"])
    assert set(answer) == {"code", "data", "msg"}
    assert isinstance(answer["code"], str) and isinstance(answer["msg"], str)
    if case.path.startswith("/api/"):
        assert response.status_code == 200
        if answer["code"] not in ("General.Success", "General.ParameterInvalid"):
            assert answer["data"] == {}
    else:
        assert response.status_code == 200, case.path  # the database is up: ready


def test_the_fuzzing_reached_the_database() -> None:
    """Runs after the fuzzing: answers came from data, not from an unreachable database."""
    for path in ("/api/userPack/getUserPackList", "/api/pack/getTrainPackLogList"):
        assert "General.Success" in SEEN[path], SEEN
    for path in ("/api/userPack/getUserPackDetail", "/api/pack/getTrainPackLogDetail"):
        assert {"General.Success", "General.ParameterInvalid"} <= SEEN[path], SEEN
    assert all("General.RpcServerError" not in codes for codes in SEEN.values()), SEEN
    assert all("General.InternalServerError" not in codes for codes in SEEN.values()), SEEN

"""Schemathesis fuzzing of the OpenAPI document: always HTTP 200 and the envelope.

Requests are generated from the published request shapes (valid and, in the coverage
phase, invalid ones); answers must never be a server error, must match the published
answer shapes and always be the `{code, data, msg}` envelope.

The schema is loaded from the app at import time (`@schema.parametrize()` needs it
then), before the module's database exists: the lifespan that loading starts is shut
down at once, and the first fuzzed call starts it again, on the seeded database.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from psycopg import sql
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from services.store.migrate import migrate
from tests.api.support import (
    FixedClock,
    bearer,
    insert_pack,
    insert_record,
    server_url,
    settings_for,
    with_database,
)

USER = 1
DATABASE = f"api_fuzz_{uuid.uuid4().hex[:12]}"
app = create_app(settings_for(with_database(server_url(), DATABASE)), clock=FixedClock())
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
asgi.shutdown_lifespans()
SEEN: defaultdict[str, set[str]] = defaultdict(set)  # path -> codes answered


@pytest.fixture(scope="module", autouse=True)
def fuzzed_database() -> Iterator[None]:
    """The app's database, with data of USER (ids 1-5) so that small fuzzed ids find some."""
    server = server_url()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    url = with_database(server, DATABASE)
    try:
        migrate(url)
        now = datetime.now(UTC)
        with psycopg.connect(url, autocommit=True) as db:
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
        yield
    finally:
        asgi.shutdown_lifespans()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
            )


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_the_documented_envelope(case: schemathesis.Case) -> None:
    response = case.call(headers=bearer(USER))
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

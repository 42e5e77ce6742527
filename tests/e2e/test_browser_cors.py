"""A real browser on another origin calls a real `ledger api` over a real database.

Headless Chromium loads tests/e2e/pages/calls.html from a static site on its own port
(another origin than the API's): the page's `fetch()` calls, with an `Authorization`
header and so a CORS preflight each, must read the envelopes when the API lists the
page's origin in LEDGER_CORS_ORIGINS, and be refused by the browser (a TypeError) when
it does not. The same real server serves the OpenAPI document where the platform looks.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import psycopg
import pytest

from services.store.migrate import migrate
from tests.api.support import SECRET, insert_pack, insert_record, node, token
from tests.support.api_process import api_process
from tests.support.browser import dump_dom
from tests.support.static_site import static_site

PAGES = Path(__file__).parent / "pages"
USER = 1001
PACK = 9001
LOG = 4242
CALLS = ("packList", "packDetail", "logList", "logDetail")
Serve = Callable[[str], AbstractContextManager[str]]  # LEDGER_CORS_ORIGINS -> API's URL
_RESULT = re.compile(r'<pre id="result">(.*?)</pre>', re.S)


@pytest.fixture
def ledger_data(fresh_database: str) -> str:
    """A migrated database with one pack and one usage record of USER, and another's pack."""
    migrate(fresh_database)
    bought = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    with psycopg.connect(fresh_database, autocommit=True) as db:
        insert_pack(
            db,
            user_pack_id=PACK,
            user_id=USER,
            pack_name="跨域资源包",
            buy_datetime=bought,
            nodes=[node(31, name="gpu-node-31")],
        )
        insert_pack(db, user_pack_id=9002, user_id=2002, pack_name="not yours")
        insert_record(
            db,
            log_id=LOG,
            user_pack_id=PACK,
            owner_user_id=USER,
            start_time=bought,
            end_time=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
            train_name="浏览器训练",
        )
    return fresh_database


@pytest.fixture
def sites() -> Iterator[tuple[str, str]]:
    """Two origins serving the same pages: one the API lists, one it does not."""
    with ExitStack() as stack:
        yield stack.enter_context(static_site(PAGES)), stack.enter_context(static_site(PAGES))


@pytest.fixture
def ledger_api(ledger_data: str, tmp_path: Path) -> Serve:
    """`ledger api` over the data, with LEDGER_CORS_ORIGINS = the given text."""

    def serve(origins: str) -> AbstractContextManager[str]:
        return api_process(
            database_url=ledger_data,
            log=tmp_path / "api.log",
            LEDGER_JWT_SECRET=SECRET,
            LEDGER_CORS_ORIGINS=origins,
        )

    return serve


def page_results(site: str, api: str, **query: str) -> dict[str, Any]:
    """What calls.html, loaded from `site`, read from `api`."""
    url = f"{site}/calls.html?" + urlencode({"api": api, "token": token(USER), **query})
    dom = dump_dom(url)
    assert 'data-done="yes"' in dom, dom  # printed before the page's calls all ended
    found = _RESULT.search(dom)
    assert found, dom
    results: dict[str, Any] = orjson.loads(html.unescape(found.group(1)))
    assert set(results) == set(CALLS), results
    return results


def successes(results: dict[str, Any]) -> dict[str, Any]:
    """Each call's `data`, after checking it was HTTP 200 and `General.Success`."""
    data = {}
    for call, result in results.items():
        assert result.get("status") == 200, (call, result)
        envelope = result["envelope"]
        assert set(envelope) == {"code", "data", "msg"}, (call, envelope)
        assert envelope["code"] == "General.Success", (call, envelope)
        data[call] = envelope["data"]
    return data


@pytest.mark.slow
def test_a_listed_origin_reads_the_api_and_an_unlisted_one_is_refused(
    ledger_api: Serve, sites: tuple[str, str]
) -> None:
    listed, unlisted = sites
    with ledger_api(listed) as api:
        data = successes(page_results(listed, api))
        refused = page_results(unlisted, api)

    (pack,) = data["packList"]["userPackList"]  # not user 2002's pack
    assert (pack["userPackId"], pack["packName"]) == (str(PACK), "跨域资源包")
    assert pack["nodeList"][0]["nodeName"] == "gpu-node-31"
    assert (data["packDetail"]["userPackId"], data["packDetail"]["buyDatetime"]) == (
        PACK,
        "2026-03-01 16:00:00",
    )
    (record,) = data["logList"]["list"]
    assert (record["logId"], record["trainName"]) == (str(LOG), "浏览器训练")
    assert (data["logDetail"]["duration"], data["logDetail"]["pack"]["packId"]) == (3600, PACK)

    assert refused == {call: {"error": "TypeError"} for call in CALLS}


@pytest.mark.slow
def test_any_origin_reads_the_api_without_credentials(
    ledger_api: Serve, sites: tuple[str, str]
) -> None:
    """`*`: every origin's plain fetch works; one with credentials is refused, as chosen."""
    site, _ = sites
    with ledger_api("*") as api:
        data = successes(page_results(site, api, credentials="same-origin"))
        refused = page_results(site, api, credentials="include")

    assert data["packList"]["total"] == "1"
    assert refused == {call: {"error": "TypeError"} for call in CALLS}


def test_the_real_server_serves_the_document_where_the_platform_looks(ledger_api: Serve) -> None:
    """`/v2/api-docs?group=资源管理` as a browser or HTTP client sends it (URL-encoded)."""
    with ledger_api("") as api:
        expected = httpx.get(f"{api}/openapi.json", timeout=10).json()
        response = httpx.get(f"{api}/v2/api-docs", params={"group": "资源管理"}, timeout=10)
    assert "group=%E8%B5%84%E6%BA%90%E7%AE%A1%E7%90%86" in str(response.url)
    assert response.status_code == 200
    assert response.json() == expected

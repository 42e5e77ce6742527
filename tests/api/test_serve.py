"""`ledger api`: refuses to start without a key, else runs uvicorn with the settings."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from api import serve
from tests.api.support import settings_for


def test_ledger_api_refuses_to_start_without_a_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for("postgresql://nobody@127.0.0.1:1/none", jwt_secret=None)
    monkeypatch.setattr(serve, "get_settings", lambda: settings)
    started: list[Any] = []
    monkeypatch.setattr(serve.uvicorn, "run", lambda *a, **k: started.append(k))
    assert serve.run_api(argparse.Namespace(workers=1)) == 2
    assert started == []
    assert "LEDGER_JWT_SECRET" in capsys.readouterr().err


def test_ledger_api_serves_on_the_configured_address(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for("postgresql://nobody@127.0.0.1:1/none", api_port=18081)
    monkeypatch.setattr(serve, "get_settings", lambda: settings)
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(serve.uvicorn, "run", lambda app, **k: started.append({"app": app, **k}))
    assert serve.run_api(argparse.Namespace(workers=3)) == 0
    (options,) = started
    assert options["app"] == "api.serve:app_from_environment"
    assert options["factory"] is True
    assert (options["host"], options["port"], options["workers"]) == ("127.0.0.1", 18081, 3)
    monkeypatch.setattr(serve, "configure_logging", lambda: None)  # keep pytest's log capture
    app = serve.app_from_environment()
    assert "/api/pack/getTrainPackLogDetail" in app.openapi()["paths"]

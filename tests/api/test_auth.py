"""Who may call: bearer or bare token headers, HS256 or RS256, expiry, roles."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from api.app import create_app
from api.auth import ConfigurationError
from tests.api.support import (
    ENDPOINTS,
    PACK_DETAIL,
    PACK_LIST,
    SECRET,
    VALID_BODY,
    bearer,
    call,
    insert_pack,
    ok,
    settings_for,
    token,
)

USER = 31


def _unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]


def _future() -> int:
    return int(time.time()) + 600


BAD_TOKENS: dict[str, tuple[dict[str, str], str]] = {
    "no header": ({}, "General.Unauthorized"),
    "empty bearer": ({"Authorization": "Bearer "}, "General.Unauthorized"),
    "blank token header": ({"token": "  "}, "General.Unauthorized"),
    "expired": (bearer(USER, expires_in=-30), "General.TokenExpired"),
    "expired, bare header": ({"token": token(USER, expires_in=-1)}, "General.TokenExpired"),
    "other secret": (
        bearer(USER, secret="not-the-secret-not-the-secret-00"),
        "General.TokenInvalid",
    ),
    "expired, other secret": (
        bearer(USER, secret="not-the-secret-not-the-secret-00", expires_in=-30),
        "General.TokenInvalid",
    ),
    "garbage": ({"Authorization": "Bearer abc.def.ghi"}, "General.TokenInvalid"),
    "not a jwt": ({"token": "hello"}, "General.TokenInvalid"),
    "basic scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, "General.TokenInvalid"),
    "alg none": (
        {"Authorization": f"Bearer {_unsigned({'sub': str(USER), 'exp': _future()})}"},
        "General.TokenInvalid",
    ),
    "no exp": (
        {"Authorization": f"Bearer {jwt.encode({'sub': str(USER)}, SECRET, algorithm='HS256')}"},
        "General.TokenInvalid",
    ),
    "no sub": (
        {"Authorization": f"Bearer {jwt.encode({'exp': _future()}, SECRET, algorithm='HS256')}"},
        "General.TokenInvalid",
    ),
    "sub not digits": (bearer("alice"), "General.TokenInvalid"),
    "sub zero": (bearer("0"), "General.TokenInvalid"),
    "sub too big": (bearer(str(2**63)), "General.TokenInvalid"),
    "sub a number": (
        {
            "Authorization": "Bearer "
            + jwt.encode({"sub": USER, "exp": _future()}, SECRET, algorithm="HS256")
        },
        "General.TokenInvalid",
    ),
    "not yet valid": (bearer(USER, nbf=_future()), "General.TokenInvalid"),
    "HS384": (bearer(USER, algorithm="HS384"), "General.TokenInvalid"),
}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_refused_tokens(client: httpx.AsyncClient, path: str, case: str) -> None:
    headers, code = BAD_TOKENS[case]
    answer = await call(client, path, VALID_BODY[path], headers)
    assert answer["code"] == code
    assert answer["data"] == {}
    assert (
        answer["msg"]
        == {
            "General.Unauthorized": "请求未授权",
            "General.TokenExpired": "账户Token已超时",
            "General.TokenInvalid": "账户Token无效",
        }[code]
    )


@pytest.mark.parametrize(
    "headers",
    [
        bearer(USER),
        {"Authorization": f"bearer {token(USER)}"},
        {"Authorization": f"  Bearer   {token(USER)}  "},
        {"token": token(USER)},
        {"token": f" {token(USER)} "},
        bearer(USER, name="张三", aud="someone", iss="platform"),
    ],
)
async def test_accepted_token_headers(
    client: httpx.AsyncClient, db: psycopg.Connection, headers: dict[str, str]
) -> None:
    insert_pack(db, user_pack_id=5, user_id=USER)
    data = await ok(client, PACK_DETAIL, {"userPackId": 5}, headers)
    assert data["userPackId"] == 5


async def test_authorization_header_wins_over_token_header(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(db, user_pack_id=5, user_id=USER)
    headers = {**bearer(USER), "token": token(USER + 1)}
    assert (await ok(client, PACK_DETAIL, {"userPackId": 5}, headers))["userPackId"] == 5


@pytest.mark.parametrize(
    ("roles", "sees_all"),
    [
        (["admin"], True),
        (["user", "admin"], True),
        (["user"], False),
        ("admin", False),
        ([], False),
    ],
)
async def test_only_an_admin_role_sees_everyone(
    client: httpx.AsyncClient, db: psycopg.Connection, roles: Any, sees_all: bool
) -> None:
    insert_pack(db, user_pack_id=5, user_id=USER + 1)
    answer = await call(client, PACK_DETAIL, {"userPackId": 5}, bearer(USER, roles=roles))
    assert answer["code"] == ("General.Success" if sees_all else "General.NotFound")


def test_the_app_refuses_to_start_without_a_key(db_url: str) -> None:
    with pytest.raises(ConfigurationError, match="LEDGER_JWT_SECRET"):
        create_app(settings_for(db_url, jwt_secret=None))
    with pytest.raises(ConfigurationError, match="LEDGER_JWT_SECRET"):
        create_app(settings_for(db_url, jwt_secret=""))


def test_the_app_refuses_a_bad_public_key_or_zone(db_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigurationError, match="LEDGER_JWT_PUBLIC_KEY_FILE"):
        create_app(settings_for(db_url, jwt_secret=None, jwt_public_key_file=missing))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ConfigurationError, match="LEDGER_JWT_PUBLIC_KEY_FILE"):
        create_app(settings_for(db_url, jwt_secret=None, jwt_public_key_file=junk))
    with pytest.raises(ConfigurationError, match="LEDGER_TIMEZONE"):
        create_app(settings_for(db_url, timezone="Mars/Olympus"))


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def _answer(app: FastAPI, headers: dict[str, str]) -> dict[str, Any]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        return await call(http, PACK_LIST, {}, headers)


async def test_rs256_with_a_public_key_file(
    make_app: Callable[..., FastAPI], tmp_path: Path, rsa_keys: tuple[str, str]
) -> None:
    private, public = rsa_keys
    key_file = tmp_path / "public.pem"
    key_file.write_text(public)
    app = make_app(jwt_secret=None, jwt_public_key_file=key_file)
    signed = jwt.encode({"sub": str(USER), "exp": _future()}, private, algorithm="RS256")
    assert (await _answer(app, {"Authorization": f"Bearer {signed}"}))["code"] == "General.Success"
    # Without a secret, HS256 tokens are refused, including one "signed" with the public key.
    assert (await _answer(app, bearer(USER)))["code"] == "General.TokenInvalid"
    forged = _hmac_with_public_key(public)
    assert (await _answer(app, {"Authorization": f"Bearer {forged}"}))["code"] == (
        "General.TokenInvalid"
    )
    expired = jwt.encode({"sub": str(USER), "exp": 1}, private, algorithm="RS256")
    answer = await _answer(app, {"Authorization": f"Bearer {expired}"})
    assert answer["code"] == "General.TokenExpired"


async def test_both_keys_accept_both_algorithms(
    make_app: Callable[..., FastAPI], tmp_path: Path, rsa_keys: tuple[str, str]
) -> None:
    private, public = rsa_keys
    key_file = tmp_path / "public.pem"
    key_file.write_text(public)
    app = make_app(jwt_public_key_file=key_file)
    signed = jwt.encode({"sub": str(USER), "exp": _future()}, private, algorithm="RS256")
    assert (await _answer(app, {"Authorization": f"Bearer {signed}"}))["code"] == "General.Success"
    assert (await _answer(app, bearer(USER)))["code"] == "General.Success"
    assert (await _answer(app, {"token": _hmac_with_public_key(public)}))["code"] == (
        "General.TokenInvalid"
    )


def _hmac_with_public_key(public: str) -> str:
    """The classic algorithm-confusion forgery: HS256 keyed with the RSA public key."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": str(USER), "exp": _future()}).encode())
    signature = hmac.new(public.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"

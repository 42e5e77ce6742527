"""Who is calling: the bearer JWT, verified with HS256 (shared secret) and/or RS256."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt.types import Options

from api.envelope import ApiError, Code
from api.inputs import ID_MAX

_USER_ID = re.compile(r"[0-9]{1,19}")
_OPTIONS: Options = {"require": ["exp", "sub"], "verify_aud": False}


class ConfigurationError(RuntimeError):
    """The API cannot start: a setting is missing or wrong."""


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: int
    is_admin: bool
    name: str | None = None

    @property
    def owner_scope(self) -> int | None:
        """The owner whose data the caller may read; None for every owner (admin)."""
        return None if self.is_admin else self.user_id


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer <JWT>`, else of a bare `token: <JWT>` header."""
    authorization = headers.get("authorization")
    if authorization is not None and authorization.strip():
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError(Code.TOKEN_INVALID)
        return token.strip() or None
    bare = headers.get("token")
    if bare is not None and bare.strip():
        return bare.strip()
    return None


class TokenVerifier:
    """Verifies tokens; refuses to exist without a key, so the API cannot start without one.

    A verified token is remembered (up to `cache_size` of them) with its caller and its
    `exp`: a client sends the same token with every request, and checking a signature
    costs more than answering a detail. A remembered token is still refused once expired.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        cache_size: int = 10_000,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret and not public_key:
            raise ConfigurationError(
                "no JWT key: set LEDGER_JWT_SECRET (HS256) or LEDGER_JWT_PUBLIC_KEY_FILE (RS256)"
            )
        self._keys: dict[str, Any] = {}
        if secret:
            self._keys["HS256"] = secret
        if public_key:
            self._keys["RS256"] = _rsa_public_key(public_key)
        self._cache_size = cache_size
        self._wall_clock = wall_clock
        self._verified: dict[str, tuple[Caller, float]] = {}  # token -> (caller, exp)

    @property
    def algorithms(self) -> list[str]:
        return sorted(self._keys)

    def caller(self, headers: Mapping[str, str]) -> Caller:
        token = bearer_token(headers)
        if token is None:
            raise ApiError(Code.UNAUTHORIZED)
        return self.verify(token)

    def verify(self, token: str) -> Caller:
        return self.verify_until(token)[0]

    def verify_until(self, token: str) -> tuple[Caller, float]:
        """The caller and the token's `exp` (Unix seconds): a stream ends then."""
        known = self._verified.get(token)
        if known is not None:
            if known[1] > self._wall_clock():
                return known
            del self._verified[token]
            raise ApiError(Code.TOKEN_EXPIRED)
        claims = self._decode(token)
        verified = (_caller(claims), float(claims["exp"]))
        if len(self._verified) >= self._cache_size:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[token] = verified
        return verified

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if not isinstance(algorithm, str) or algorithm not in self._keys:
                raise ApiError(Code.TOKEN_INVALID)
            key = self._keys[algorithm]
            return jwt.decode(token, key, algorithms=[algorithm], options=_OPTIONS)
        except jwt.ExpiredSignatureError:  # a subclass of InvalidTokenError: first
            raise ApiError(Code.TOKEN_EXPIRED) from None
        except jwt.InvalidTokenError:
            raise ApiError(Code.TOKEN_INVALID) from None


def _rsa_public_key(pem: str) -> RSAPublicKey:
    rsa = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    try:
        key = rsa.prepare_key(pem)
    except (ValueError, TypeError, jwt.InvalidKeyError) as error:
        raise ConfigurationError(f"LEDGER_JWT_PUBLIC_KEY_FILE is not an RSA key: {error}") from None
    return key.public_key() if isinstance(key, RSAPrivateKey) else key


def _caller(claims: Mapping[str, Any]) -> Caller:
    subject = claims["sub"]
    if not isinstance(subject, str) or not _USER_ID.fullmatch(subject):
        raise ApiError(Code.TOKEN_INVALID)
    user_id = int(subject)
    if not 1 <= user_id <= ID_MAX:
        raise ApiError(Code.TOKEN_INVALID)
    roles = claims.get("roles")
    is_admin = isinstance(roles, list) and "admin" in roles
    name = claims.get("name")
    return Caller(user_id=user_id, is_admin=is_admin, name=name if isinstance(name, str) else None)

"""The verifier remembers verified tokens, never past their `exp`."""

from __future__ import annotations

import time

import jwt
import pytest

from api.auth import TokenVerifier
from api.envelope import ApiError
from tests.api.support import SECRET


def _token(sub: str, exp: float) -> str:
    return jwt.encode({"sub": sub, "exp": int(exp)}, SECRET, algorithm="HS256")


def test_a_remembered_token_still_expires() -> None:
    now = time.time()
    clock = [now]
    verifier = TokenVerifier(secret=SECRET, wall_clock=lambda: clock[0])
    token = _token("5", now + 60)
    assert verifier.verify(token).user_id == 5
    assert verifier.verify(token).user_id == 5  # from memory
    clock[0] = now + 61
    with pytest.raises(ApiError) as raised:
        verifier.verify(token)
    assert raised.value.code == "General.TokenExpired"
    clock[0] = now  # forgotten: verified again (pyjwt reads the real clock: still valid)
    assert verifier.verify(token).user_id == 5


def test_memory_is_bounded_and_forgets_the_oldest() -> None:
    verifier = TokenVerifier(secret=SECRET, cache_size=2)
    tokens = [_token(str(user), time.time() + 60) for user in (1, 2, 3)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._verified) == 2
    assert tokens[0] not in verifier._verified
    assert [verifier.verify(token).user_id for token in tokens] == [1, 2, 3]


def test_refused_tokens_are_not_remembered() -> None:
    verifier = TokenVerifier(secret=SECRET)
    bad = jwt.encode({"sub": "1", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(ApiError) as raised:
            verifier.verify(bad)
        assert raised.value.code == "General.TokenInvalid"
    assert verifier._verified == {}

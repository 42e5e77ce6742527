"""U+0000 in a record's strings: the one value PostgreSQL's text and jsonb cannot store.

JSON can carry it only as the escape `\\u0000` (a raw control character is not valid
JSON), so a value without that substring has no U+0000 and costs one substring search.
The substring alone proves nothing: `"a\\\\u0000b"` is an escaped backslash followed by
the text `u0000`, a valid string that the ledger stores. Only then is the value decoded
and its strings - keys included, at any depth - looked at.
"""

from __future__ import annotations

import json
from typing import Any

NUL_REASON = "contains the character U+0000, which the ledger cannot store"

_NUL = "\x00"
_NUL_ESCAPE = "\\u0000"
_NUL_ESCAPE_BYTES = _NUL_ESCAPE.encode()


class _Members(list[tuple[str, Any]]):
    """A JSON object as all its (key, value) pairs, even those a later duplicate key hides."""


def nul_refusal(value: bytes | str) -> str | None:
    """Why a record value (JSON text) is refused for a U+0000 in one of its strings, naming
    where (`data.trainName: contains ...`); None when it has none.

    A value that is not JSON has none: the parser refuses it for that reason.
    """
    if isinstance(value, bytes):
        if _NUL_ESCAPE_BYTES not in value:  # the common path: nothing to decode
            return None
    elif _NUL_ESCAPE not in value:
        return None
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        decoded = json.loads(
            text,
            # Numbers stay text: no work, and no limit on their digits (int() refuses
            # more than 4300), so that no number hides a string from the check.
            parse_int=str,
            parse_float=str,
            parse_constant=str,
            object_pairs_hook=_Members,
        )
    except (ValueError, RecursionError):  # not UTF-8 or not JSON, or nested absurdly deep
        return None
    return _nul_reason(decoded)


def _nul_reason(node: Any) -> str | None:
    """`PATH: contains ...` for the first string holding U+0000 (`PATH: a key contains
    ...` for a key of the object at PATH), or None."""
    pending: list[tuple[str, Any]] = [("", node)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if _NUL in item:
                return f"{path or 'event'}: {NUL_REASON}"
        elif isinstance(item, _Members):
            for key, member in reversed(item):
                if _NUL in key:
                    return f"{path or 'event'}: a key {NUL_REASON}"
                pending.append((_join(path, key), member))
        elif isinstance(item, list):
            pending.extend((_join(path, str(i)), sub) for i, sub in reversed(list(enumerate(item))))
    return None


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part

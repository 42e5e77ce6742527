"""The `{code, data, msg}` envelope every answer is wrapped in, and its business codes."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson
from starlette.responses import Response


class Code(StrEnum):
    SUCCESS = "General.Success"
    FAILURE = "General.Failure"
    INTERNAL_SERVER_ERROR = "General.InternalServerError"
    RPC_SERVER_ERROR = "General.RpcServerError"
    TOKEN_EXPIRED = "General.TokenExpired"
    TOKEN_INVALID = "General.TokenInvalid"
    UNAUTHORIZED = "General.Unauthorized"
    PARAMETER_INVALID = "General.ParameterInvalid"
    NOT_FOUND = "General.NotFound"


# The document's 说明 column. ParameterInvalid's message names the first violation instead.
DEFAULT_MSG: dict[Code, str] = {
    Code.SUCCESS: "接口调用成功",
    Code.FAILURE: "接口调用失败",
    Code.INTERNAL_SERVER_ERROR: "服务器异常",
    Code.RPC_SERVER_ERROR: "Rpc服务异常",
    Code.TOKEN_EXPIRED: "账户Token已超时",
    Code.TOKEN_INVALID: "账户Token无效",
    Code.UNAUTHORIZED: "请求未授权",
    Code.PARAMETER_INVALID: "参数校验失败",
    Code.NOT_FOUND: "NotFound",
}


class ApiError(Exception):
    """A business failure: answered as its envelope (HTTP 200), never as a stack trace."""

    def __init__(
        self, code: Code, *, data: dict[str, Any] | None = None, msg: str | None = None
    ) -> None:
        super().__init__(code.value)
        self.code = code
        self.data: dict[str, Any] = data if data is not None else {}
        self.msg = msg if msg is not None else DEFAULT_MSG[code]


class EnvelopeResponse(Response):
    """A JSON response serialized with orjson (UTF-8, no escaping of Chinese text)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def envelope(
    code: Code, data: dict[str, Any] | None = None, msg: str | None = None
) -> dict[str, Any]:
    return {
        "code": code.value,
        "data": data if data is not None else {},
        "msg": msg if msg is not None else DEFAULT_MSG[code],
    }


def success(data: dict[str, Any]) -> EnvelopeResponse:
    return EnvelopeResponse(envelope(Code.SUCCESS, data))


def failure(error: ApiError, status_code: int = 200) -> EnvelopeResponse:
    return EnvelopeResponse(envelope(error.code, error.data, error.msg), status_code=status_code)

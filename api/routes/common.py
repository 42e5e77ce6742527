"""What every `/api` route shares: a lean route class, the body reader, OpenAPI extras."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response

from api.validation import Rule, parameter_invalid, parse_body

MAX_BODY_BYTES = 64 * 1024  # a request of this API is a few hundred bytes
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"tokenHeader": []}]

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    """A route whose endpoint takes the request and returns the response itself.

    FastAPI keeps documenting it (request model via `openapi_extra`, `response_model`),
    but skips what these endpoints do not use: dependency solving, body parsing and
    response validation. That is a sizeable share of a detail request's CPU time.
    """

    def get_route_handler(self) -> Endpoint:
        endpoint: Endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            return await endpoint(request)

        return handler


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object of the body; `body: max` past MAX_BODY_BYTES (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise parameter_invalid({"body": [Rule.MAX]})
        chunks.append(chunk)
    return parse_body(b"".join(chunks))


def documented(request_model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route that validates its JSON body itself (`api.validation`)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{request_model.__name__}"}
                }
            },
        },
        "security": SECURITY,
    }


ANSWER_DESCRIPTION = (
    "Always HTTP 200 with the envelope: the success shape, `General.ParameterInvalid` with "
    "`data.ruleViolated`, or another code with `data` = `{}`."
)

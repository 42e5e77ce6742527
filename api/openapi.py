"""The OpenAPI document: FastAPI's, plus the request models (`api.params`) and the auth."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.params import REQUEST_MODELS

DESCRIPTION = """
The read-only API of the INFINITE resource ledger (see docs/api.md).

Every `/api` answer is HTTP 200 with the envelope `{"code", "data", "msg"}`; the business
code is the status. Send the JWT as `Authorization: Bearer <JWT>` (or a bare
`token: <JWT>` header).

This document is also served at `/v2/api-docs` (any `group` query), where the platform's
own document says it is.
"""

# The platform's document gives its 接口路径 as `/v2/api-docs?group=资源管理` (the path of
# springfox, which serves one document per group); this API has one document for all.
PLATFORM_DOCS_PATH = "/v2/api-docs"

SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "tokenHeader": {"type": "apiKey", "in": "header", "name": "token"},
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=DESCRIPTION,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for model in REQUEST_MODELS:
            document = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(document.pop("$defs", {}))
            schemas[model.__name__] = document
        components["securitySchemes"] = SECURITY_SCHEMES
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def platform_docs(request: Request) -> JSONResponse:
        return JSONResponse(app.openapi())  # as FastAPI serves `/openapi.json`

    app.add_route(PLATFORM_DOCS_PATH, platform_docs, methods=["GET"], include_in_schema=False)

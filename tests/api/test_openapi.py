"""The OpenAPI document describes the real shapes; FastAPI's own 422 never leaks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request

from api.errors import _validation_error
from tests.api.support import ENDPOINTS


async def test_every_endpoint_documents_its_body_answers_and_auth(
    client: httpx.AsyncClient,
) -> None:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "tokenHeader"}
    for path in ENDPOINTS:
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body.rsplit("/", 1)[1] in schemas
        assert operation["security"] == [{"bearerAuth": []}, {"tokenHeader": []}]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        names = {option["$ref"].rsplit("/", 1)[1] for option in answer["anyOf"]}
        assert {"ParameterInvalidAnswer", "FailureAnswer"} < names
        assert "422" not in operation["responses"]
    assert schemas["UserPackDetailRequest"]["required"] == ["userPackId"]
    assert set(schemas["TrainPackLogListRequest"]["required"]) == {"order", "pageNum", "pageSize"}
    item = schemas["UserPackListItem"]["properties"]
    assert item["userPackId"]["pattern"] == "^[0-9]+$"
    detail = schemas["UserPackDetailData"]["properties"]
    assert detail["userPackId"]["type"] == "integer"
    assert set(document["paths"]) == {*ENDPOINTS, "/healthz", "/readyz", "/api/userPack/stream"}
    stream = document["paths"]["/api/userPack/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]


async def test_swagger_ui_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


async def test_fastapi_validation_errors_become_parameter_invalid(app: FastAPI) -> None:
    error = RequestValidationError(
        [
            {"type": "missing", "loc": ("body", "userPackId"), "msg": "Field required"},
            {"type": "int_parsing", "loc": ("body", "pageNum"), "msg": "not an int"},
            {"type": "less_than_equal", "loc": ("body", "pageSize"), "msg": "too big"},
            {"type": "json_invalid", "loc": ("body",), "msg": "bad json"},
        ]
    )
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
    response = await _validation_error(request, error)
    assert response.status_code == 200
    assert bytes(response.body).decode() == (
        '{"code":"General.ParameterInvalid","data":{"ruleViolated":{"userPackId":["notNull"],'
        '"pageNum":["typeMismatch"],"pageSize":["max"],"body":["malformedJson"]}},'
        '"msg":"request params[userPackId] notNull."}'
    )


@pytest.mark.parametrize(
    "query",
    [
        "?group=%E8%B5%84%E6%BA%90%E7%AE%A1%E7%90%86",  # 资源管理, as the platform's path has it
        "?group=default",
        "",
    ],
)
async def test_the_document_is_also_where_the_platform_looks(
    client: httpx.AsyncClient, query: str
) -> None:
    expected = (await client.get("/openapi.json")).json()
    response = await client.get(f"/v2/api-docs{query}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected
    assert "/v2/api-docs" in expected["info"]["description"]

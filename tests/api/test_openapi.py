"""The OpenAPI document describes the real shapes; FastAPI's own 422 never leaks."""

from __future__ import annotations

from typing import Any

import httpx
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
    assert set(document["paths"]) == {*ENDPOINTS, "/healthz", "/readyz"}


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

"""What every `/api` route declares in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"tokenHeader": []}]


def documented(request_model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route whose JSON body is validated by hand."""
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

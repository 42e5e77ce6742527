"""`/api/userPack/*`: the caller's packs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from api import as_of, reads
from api.context import ApiContext
from api.envelope import success
from api.models import (
    FailureAnswer,
    ParameterInvalidAnswer,
    UserPackDetailAnswer,
    UserPackListAnswer,
)
from api.params import UserPackDetailRequest, UserPackListRequest
from api.routes.common import ANSWER_DESCRIPTION, DirectRoute, documented, json_body
from api.validation import validate


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/userPack", tags=["资源管理"], route_class=DirectRoute)

    @router.post(
        "/getUserPackList",
        summary="资源列表",
        description="The caller's packs, one page, filtered and ordered as of the request.",
        response_model=UserPackListAnswer | ParameterInvalidAnswer | FailureAnswer,
        response_description=ANSWER_DESCRIPTION,
        openapi_extra=documented(UserPackListRequest),
    )
    async def get_user_pack_list(request: Request) -> Response:
        caller = ctx.verifier.caller(request.headers)
        now = ctx.clock()
        query = validate(UserPackListRequest, await json_body(request), ctx.zone, now)
        async with as_of.reader(ctx.db, caller, query.as_of, terms=ctx.terms) as db:
            answer = await reads.pack_list(db, caller, query, query.as_of or now)
        return success(answer)

    @router.post(
        "/getUserPackDetail",
        summary="获取资源详情",
        description="One of the caller's packs; another user's pack is General.NotFound.",
        response_model=UserPackDetailAnswer | ParameterInvalidAnswer | FailureAnswer,
        response_description=ANSWER_DESCRIPTION,
        openapi_extra=documented(UserPackDetailRequest),
    )
    async def get_user_pack_detail(request: Request) -> Response:
        caller = ctx.verifier.caller(request.headers)
        now = ctx.clock()
        query = validate(UserPackDetailRequest, await json_body(request), ctx.zone, now)
        pack_id = query.user_pack_id
        async with as_of.reader(
            ctx.db, caller, query.as_of, user_pack_id=pack_id, terms=ctx.terms
        ) as db:
            answer = await reads.pack_detail(db, caller, pack_id, query.as_of or now)
        return success(answer)

    return router

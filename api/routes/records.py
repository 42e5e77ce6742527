"""`/api/pack/*`: usage records (training sessions) on the caller's packs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from api import as_of, reads
from api.context import ApiContext
from api.envelope import success
from api.models import (
    FailureAnswer,
    ParameterInvalidAnswer,
    TrainPackLogDetailAnswer,
    TrainPackLogListAnswer,
)
from api.params import TrainPackLogDetailRequest, TrainPackLogListRequest
from api.routes.common import ANSWER_DESCRIPTION, DirectRoute, documented, json_body
from api.validation import validate


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/pack", tags=["资源管理"], route_class=DirectRoute)

    @router.post(
        "/getTrainPackLogList",
        summary="资源使用记录列表",
        description="Usage records on the caller's packs, one page, ordered as of the request.",
        response_model=TrainPackLogListAnswer | ParameterInvalidAnswer | FailureAnswer,
        response_description=ANSWER_DESCRIPTION,
        openapi_extra=documented(TrainPackLogListRequest),
    )
    async def get_train_pack_log_list(request: Request) -> Response:
        caller = ctx.verifier.caller(request.headers)
        now = ctx.clock()
        query = validate(TrainPackLogListRequest, await json_body(request), ctx.zone, now)
        pack_id = query.user_pack_id
        async with as_of.reader(
            ctx.db, caller, query.as_of, user_pack_id=pack_id, terms=ctx.terms
        ) as db:
            answer = await reads.record_list(db, caller, query, query.as_of or now)
        return success(answer)

    @router.post(
        "/getTrainPackLogDetail",
        summary="训练资源使用记录详情",
        description="One usage record on one of the caller's packs, with its pack.",
        response_model=TrainPackLogDetailAnswer | ParameterInvalidAnswer | FailureAnswer,
        response_description=ANSWER_DESCRIPTION,
        openapi_extra=documented(TrainPackLogDetailRequest),
    )
    async def get_train_pack_log_detail(request: Request) -> Response:
        caller = ctx.verifier.caller(request.headers)
        now = ctx.clock()
        query = validate(TrainPackLogDetailRequest, await json_body(request), ctx.zone, now)
        log_id = query.log_id
        async with as_of.reader(ctx.db, caller, query.as_of, log_id=log_id, terms=ctx.terms) as db:
            answer = await reads.record_detail(db, caller, log_id, query.as_of or now)
        return success(answer)

    return router

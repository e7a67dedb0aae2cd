"""HTTP for planning's code lists: reference data, not client data (authenticated, not
audited)."""

from __future__ import annotations

from fastapi import APIRouter

from services.planning.code_lists.catalogue import (
    CLOSURE_REASONS,
    DESTINATIONS,
    CodeList,
    catalogue,
)
from shared.auth.guard import GuardDep
from shared.http.problems import problem_responses

router = APIRouter(prefix="/v1/code-lists", tags=["code lists"])


@router.get(
    "/closure-reasons",
    response_model=CodeList,
    responses=problem_responses(401, 403),
    summary="Why a case can be closed",
)
async def closure_reasons(guard: GuardDep) -> CodeList:
    await guard.require("code_list.read", resource_type="code_list", resource_id=CLOSURE_REASONS)
    return catalogue().code_list(CLOSURE_REASONS)


@router.get(
    "/destinations",
    response_model=CodeList,
    responses=problem_responses(401, 403),
    summary="Where a client went when their case closed (HMIS 3.12 Destination)",
)
async def destinations(guard: GuardDep) -> CodeList:
    await guard.require("code_list.read", resource_type="code_list", resource_id=DESTINATIONS)
    return catalogue().code_list(DESTINATIONS)

"""HTTP for code lists: reference data, not client data (authenticated, not audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from services.intake.code_lists.catalogue import CodeList, catalogue
from shared.auth.guard import GuardDep
from shared.http.problems import ProblemError, problem_responses

router = APIRouter(prefix="/v1/code-lists", tags=["code lists"])


@router.get(
    "",
    response_model=list[CodeList],
    responses=problem_responses(401, 403),
    summary="Every code list, with the version in force",
)
async def list_code_lists(guard: GuardDep) -> list[CodeList]:
    await guard.require("code_list.read", resource_type="code_list")
    current = catalogue()
    return [
        CodeList(name=name, version=current.version, codes=codes)
        for name, codes in current.lists.items()
    ]


@router.get(
    "/{name}",
    response_model=CodeList,
    responses=problem_responses(401, 403, 404),
    summary="One code list",
)
async def get_code_list(name: Annotated[str, Path(max_length=64)], guard: GuardDep) -> CodeList:
    await guard.require("code_list.read", resource_type="code_list", resource_id=name)
    found = catalogue().code_list(name)
    if found is None:
        raise ProblemError(404, "not-found", "Not found", detail=f"No code list named {name}.")
    return found

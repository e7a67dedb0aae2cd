"""HTTP for code lists."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/code-lists", tags=["code lists"])

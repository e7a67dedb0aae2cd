"""HTTP for assessments, safety flags and the equity report."""

from fastapi import APIRouter

router = APIRouter(tags=["assessments"])

"""HTTP for identity links."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/clients", tags=["identity links"])

"""HTTP for the consent ledger."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/clients", tags=["consents"])

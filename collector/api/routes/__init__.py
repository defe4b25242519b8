"""``/api/v1``: every route here needs the bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from collector.api.deps import require_token
from collector.api.responses import BUSY, UNAUTHORIZED
from collector.api.routes import (
    caregivers,
    dead_letters,
    devices,
    dispatches,
    households,
    life_signs,
    privacy,
    silence,
    sos_tests,
)

api_router = APIRouter(
    prefix="/api/v1", dependencies=[Depends(require_token)], responses=UNAUTHORIZED | BUSY
)
for module in (
    caregivers,
    households,
    devices,
    dispatches,
    dead_letters,
    life_signs,
    privacy,
    silence,
    sos_tests,
):
    api_router.include_router(module.router)

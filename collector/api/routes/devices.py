"""Devices: the edge agents in homes, with what the collector last heard from each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from sqlalchemy.orm import Session

from collector.api import crud
from collector.api.deps import DbDep, HouseholdFilter, PaginationDep
from collector.api.models import DeviceCreate, DevicePublic, Page
from collector.api.responses import CONFLICT, NOT_FOUND, json_page
from firmware_config.topics import ID_PATTERN

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="the device's id, e.g. d0001")]


@router.get("", response_model=Page[DevicePublic])
async def list_devices(
    request: Request, db: DbDep, page: PaginationDep, household_id: HouseholdFilter = None
) -> Response:
    """Ordered by id."""

    def work(session: Session) -> Response:
        listing = crud.list_devices(
            session,
            household_id=household_id,
            limit=page.limit,
            offset=page.offset,
            cursor=page.cursor,
        )
        data = [DevicePublic.model_validate(d) for d in listing.items]
        return json_page(Page[DevicePublic], data, listing, page)

    return await db.page(request, work, crud.DEVICE_TABLES)


@router.get("/{device_id}", responses=NOT_FOUND)
async def get_device(db: DbDep, device_id: DeviceId) -> DevicePublic:
    return await db.run(lambda s: DevicePublic.model_validate(crud.get_device(s, device_id)))


@router.post("", status_code=status.HTTP_201_CREATED, responses=NOT_FOUND | CONFLICT)
async def register_device(db: DbDep, body: DeviceCreate) -> DevicePublic:
    return await db.run(lambda s: DevicePublic.model_validate(crud.register_device(s, body)))

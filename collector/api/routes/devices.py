"""Devices: the edge agents in homes, with what the collector last heard from each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from collector.api import crud
from collector.api.deps import PaginationDep, SessionDep
from collector.api.models import DeviceCreate, DevicePublic, Page

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("")
def list_devices(
    session: SessionDep,
    page: PaginationDep,
    household_id: Annotated[str | None, Query(description="only this household's")] = None,
) -> Page[DevicePublic]:
    items, count = crud.list_devices(
        session, household_id=household_id, limit=page.limit, offset=page.offset
    )
    data = [DevicePublic.model_validate(d) for d in items]
    return Page[DevicePublic](data=data, count=count, limit=page.limit, offset=page.offset)


@router.get("/{device_id}")
def get_device(session: SessionDep, device_id: str) -> DevicePublic:
    return DevicePublic.model_validate(crud.get_device(session, device_id))


@router.post("", status_code=status.HTTP_201_CREATED)
def register_device(session: SessionDep, body: DeviceCreate) -> DevicePublic:
    return DevicePublic.model_validate(crud.register_device(session, body))

"""Households: residents living alone, their caregiver, devices and recent dispatches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from collector.api import crud
from collector.api.deps import NowDep, PaginationDep, SessionDep
from collector.api.models import (
    CaregiverPublic,
    DevicePublic,
    DispatchPublic,
    HouseholdCreate,
    HouseholdDetail,
    HouseholdPublic,
    Page,
)

router = APIRouter(prefix="/households", tags=["households"])


@router.get("")
def list_households(
    session: SessionDep,
    page: PaginationDep,
    district: Annotated[str | None, Query(description="only this district")] = None,
) -> Page[HouseholdPublic]:
    items, count = crud.list_households(
        session, district=district, limit=page.limit, offset=page.offset
    )
    data = [HouseholdPublic.model_validate(h) for h in items]
    return Page[HouseholdPublic](data=data, count=count, limit=page.limit, offset=page.offset)


@router.get("/{household_id}")
def get_household(session: SessionDep, household_id: str) -> HouseholdDetail:
    household = crud.get_household(session, household_id)
    caregiver = household.caregiver
    load = crud.household_counts(session, [caregiver.id]) if caregiver else {}
    return HouseholdDetail.model_validate(
        HouseholdPublic.model_validate(household).model_dump()
        | {
            "caregiver": CaregiverPublic.of(caregiver, load[caregiver.id]) if caregiver else None,
            "devices": [DevicePublic.model_validate(d) for d in household.devices],
            "recent_dispatches": [
                DispatchPublic.model_validate(d)
                for d in crud.recent_dispatches(session, household_id)
            ],
        }
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_household(session: SessionDep, now: NowDep, body: HouseholdCreate) -> HouseholdPublic:
    return HouseholdPublic.model_validate(crud.create_household(session, body, now=now))

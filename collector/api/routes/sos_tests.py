"""Test SOS: the ones devices send (``anbu agent verify``), marking a dispatch as a test, and
SOS counts that keep tests apart."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from collector.api import crud
from collector.api.deps import NowDep, SessionDep
from collector.api.models import DispatchDetail, Name
from collector.api.responses import NOT_FOUND
from collector.api.routes.dispatches import DispatchId
from collector.domain.sos_test import NotATest
from collector.sos_tests import list_test_sos, mark_dispatch_as_test, sos_report

router = APIRouter(tags=["test SOS"])


class TestSosPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    message_id: str
    device_id: str
    household_id: str
    source: str | None
    device_ts: dt.datetime
    received_at: dt.datetime
    dispatched: bool = Field(description="whether any dispatch names it (never, by design)")


class MarkTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    by: Name | None = Field(default=None, description="who says it was a test")
    note: str | None = Field(default=None, max_length=4000)


@router.get("/sos-tests")
def get_test_sos(
    session: SessionDep,
    device_id: Annotated[str | None, Query(description="only this device's")] = None,
    household_id: Annotated[str | None, Query(description="only this household's")] = None,
    message_id: Annotated[str | None, Query(description="only this SOS")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TestSosPublic]:
    """Test SOS received from devices, newest first. They opened no dispatch."""
    records = list_test_sos(
        session,
        device_id=device_id,
        household_id=household_id,
        message_id=message_id,
        limit=limit,
    )
    return [TestSosPublic.model_validate(r) for r in records]


@router.get("/reports/sos")
def get_sos_report(
    session: SessionDep,
    district: Annotated[str | None, Query(description="only this district")] = None,
) -> dict[str, Any]:
    """SOS counted apart: real SOS events, test SOS from devices, dispatches marked as tests."""
    return sos_report(session, district=district)


@router.post(
    "/dispatches/{dispatch_id}/mark-test",
    responses=NOT_FOUND | {409: {"description": "not an SOS dispatch, or changed meanwhile"}},
)
def mark_test(
    session: SessionDep, now: NowDep, dispatch_id: DispatchId, body: MarkTestRequest
) -> DispatchDetail:
    """Mark an SOS dispatch as someone trying the alarm: resolved with outcome ``test`` (open or
    acknowledged), or relabelled ``test`` (resolved). Marking twice changes nothing."""
    for _ in range(3):
        dispatch = crud.get_dispatch(session, dispatch_id)
        try:
            written = mark_dispatch_as_test(
                session, dispatch, crud.lifecycle_of(dispatch), by=body.by, note=body.note, now=now
            )
        except NotATest as exc:
            raise crud.Conflict(str(exc)) from exc
        if written:
            session.commit()
            session.refresh(dispatch)
            return DispatchDetail.model_validate(crud.get_dispatch(session, dispatch_id))
        session.rollback()
    raise crud.Conflict(f"dispatch {dispatch_id} kept changing; try again")

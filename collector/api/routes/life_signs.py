"""Life signs from outside the device: a telecom "phone used" feed, a smart-meter reading.

    POST /api/v1/households/{household_id}/life-signs   {"source": "telecom", "at": "…Z"}

202 once the silence schedule has it (the home's quiet stretch restarts at ``at``). Posting the
same signal twice changes nothing (a stretch restarts at the newest sign only), so feeds may
retry freely. 503 while the silence runtime is not running (``app.state.silence`` unset).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Protocol

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from collector.api.deps import NowDep, SessionDep
from collector.api.responses import NOT_FOUND
from collector.api.routes.households import HouseholdId
from collector.domain.silence import LifeSignKind
from collector.store.models import Household

router = APIRouter(tags=["silence"])

MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


class LifeSignSink(Protocol):
    def on_life_sign(self, household_id: str, kind: LifeSignKind, at: dt.datetime) -> None: ...


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("give the time with its zone, e.g. 2026-03-02T09:00:00+09:00")
    return value.astimezone(dt.UTC)


class ExternalLifeSign(BaseModel):
    """One outside signal that the resident is active."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["telecom", "smart_meter", "other"] = Field(
        description="telecom: the phone was used; smart_meter: a reading moved"
    )
    at: Annotated[dt.datetime, AfterValidator(_aware)] = Field(
        description="when the activity happened (ISO 8601 with a zone)"
    )


class LifeSignAccepted(BaseModel):
    household_id: str
    kind: LifeSignKind
    at: dt.datetime
    corrected: str | None = None
    """Why ``at`` is not what was posted (a clock ahead), or None."""


def _sink(request: Request) -> LifeSignSink:
    sink: LifeSignSink | None = getattr(request.app.state, "silence", None)
    if sink is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "silence schedule not running")
    return sink


@router.post(
    "/households/{household_id}/life-signs",
    status_code=status.HTTP_202_ACCEPTED,
    responses=NOT_FOUND,
)
def post_life_sign(
    request: Request,
    session: SessionDep,
    now: NowDep,
    household_id: HouseholdId,
    body: ExternalLifeSign,
) -> LifeSignAccepted:
    if session.get(Household, household_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
    at, corrected = body.at, None
    if at > now + MAX_CLOCK_SKEW:
        # a feed's clock ahead is recorded and overruled, as a device's is: the sign counts now
        at, corrected = now, f"'at' was {body.at.isoformat()}, in the future: taken as now"
    _sink(request).on_life_sign(household_id, LifeSignKind.EXTERNAL, at)
    return LifeSignAccepted(
        household_id=household_id, kind=LifeSignKind.EXTERNAL, at=at, corrected=corrected
    )

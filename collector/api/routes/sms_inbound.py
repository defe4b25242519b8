"""``POST /sms/inbound``: a resident or guardian texted the district's number (a request for a
call). Called by the SMS adapter with its own token (``ANBU_SMS_INBOUND_TOKEN``), not the staff
API token; see docs/sms-gateway.md."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from collector.api.deps import NowDep, SessionDep
from collector.api.responses import BUSY, NOT_FOUND, UNAUTHORIZED
from collector.requests import file_request
from collector.store.models import Household

router = APIRouter(tags=["requests"])
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="SmsInboundToken",
    description="ANBU_SMS_INBOUND_TOKEN, sent by the SMS adapter as a bearer token.",
)


def _digits(number: str) -> str:
    d = re.sub(r"\D", "", number)
    return "0" + d[2:] if d.startswith("82") else d


async def require_inbound_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected: str | None = request.app.state.sms_inbound_token
    if expected is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "inbound SMS is not configured")
    if credentials is None or not secrets.compare_digest(
        credentials.credentials.encode(), expected.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token (ANBU_SMS_INBOUND_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )


class InboundSms(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    message_id: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9._:-]+$")
    sender: str = Field(alias="from", min_length=3, max_length=20, pattern=r"^\+?[0-9 -]+$")
    to: str = Field(min_length=3, max_length=20, pattern=r"^\+?[0-9 -]+$")
    text: str = Field(default="", max_length=2000)


class FiledPublic(BaseModel):
    request_id: int | None = Field(description="None: this message_id was filed before")
    dispatch_id: int | None
    routed_to: str
    due_at: dt.datetime | None
    duplicate: bool


@router.post(
    "/sms/inbound",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_inbound_token)],
    responses=UNAUTHORIZED
    | BUSY
    | {404: {**NOT_FOUND[404], "description": "Not configured, or no district has that number"}},
)
def inbound_sms(
    body: InboundSms, request: Request, session: SessionDep, now: NowDep
) -> FiledPublic:
    """File a text to the district's number as a request for a call (idempotent on
    ``message_id``): matched to a household by its guardian's number, routed to its caregiver,
    queued for office hours, due within one working day."""
    numbers: dict[str, str] = request.app.state.sms_district_numbers
    district = numbers.get(_digits(body.to))
    if district is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{body.to!r} is no district's number (ANBU_SMS_DISTRICT_NUMBERS)",
        )
    sender = _digits(body.sender)
    household = None
    rows = session.execute(
        select(Household.id, Household.guardian_phone)
        .where(Household.district == district, Household.guardian_phone.is_not(None))
        .order_by(Household.id)
    ).all()
    for household_id, phone in rows:
        if phone and _digits(phone) == sender:
            household = session.get(Household, household_id)
            break
    filed = file_request(
        session,
        message_id=f"sms:{body.message_id}",
        channel="sms",
        household=household,
        district=district,
        sender=sender,
        text=body.text,
        now=now,
        policy=request.app.state.escalation_policy,
        links=request.app.state.request_links,
    )
    return FiledPublic(
        request_id=filed.request_id,
        dispatch_id=filed.dispatch_id,
        routed_to=filed.routed_to,
        due_at=filed.due_at,
        duplicate=filed.request_id is None,
    )

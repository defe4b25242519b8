"""A resident's data on request: export, deletion, and the audit log that records both."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from collector import privacy
from collector.api.deps import NowDep, PaginationDep, SessionDep
from collector.store.audit import AuditRecord

router = APIRouter(tags=["privacy"])

ACTOR = "api-token"
"""Who asked: the staff API token is the only identity the API has for now."""
Reason = Annotated[str, Query(max_length=300, description="why (e.g. the request's reference)")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such household"}}


class AuditPublic(BaseModel):
    id: int
    at: str
    action: str
    household_id: str
    actor: str
    reason: str
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    data: list[AuditPublic]
    count: int
    limit: int
    offset: int


@router.get("/households/{household_id}/export", responses=NOT_FOUND)
def export_household(
    session: SessionDep, now: NowDep, household_id: str, reason: Reason = ""
) -> dict[str, Any]:
    """Everything stored about one household (recorded in the audit log)."""
    return privacy.export_household(session, household_id, now=now, actor=ACTOR, reason=reason)


@router.delete(
    "/households/{household_id}/personal-data",
    responses=NOT_FOUND | {409: {"description": "the household has an open dispatch"}},
)
def delete_household(
    session: SessionDep, now: NowDep, household_id: str, reason: Reason = ""
) -> dict[str, int]:
    """Delete the household and everything stored about it; the rows deleted per table."""
    return privacy.delete_household(session, household_id, now=now, actor=ACTOR, reason=reason)


@router.get("/audit")
def list_audit(
    session: SessionDep,
    page: PaginationDep,
    household_id: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPage:
    """Recorded exports and deletions, newest first."""
    where = [] if household_id is None else [AuditRecord.household_id == household_id]
    count = session.scalar(select(func.count()).select_from(AuditRecord).where(*where)) or 0
    rows = session.scalars(
        select(AuditRecord)
        .where(*where)
        .order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    ).all()
    data = [
        AuditPublic(
            id=r.id,
            at=r.at.isoformat(),
            action=r.action,
            household_id=r.household_id,
            actor=r.actor,
            reason=r.reason,
            details=r.details,
        )
        for r in rows
    ]
    return AuditPage(data=data, count=int(count), limit=page.limit, offset=page.offset)

"""Read queries that more than one layer needs (the API, seeding, imports)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from collector.domain.assignment import CaregiverLoad
from collector.store.models import Caregiver, Household


def caregiver_loads(session: Session, district: str) -> list[CaregiverLoad]:
    """The active caregivers of ``district`` with their household counts, for assignment."""
    counts = (
        select(Household.caregiver_id.label("caregiver_id"), func.count().label("n"))
        .group_by(Household.caregiver_id)
        .subquery()
    )
    rows = session.execute(
        select(Caregiver.id, Caregiver.district, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.caregiver_id == Caregiver.id)
        .where(Caregiver.district == district, Caregiver.active.is_(True))
    ).all()
    return [CaregiverLoad(id=cid, district=d, households=n) for cid, d, n in rows]

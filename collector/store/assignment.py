"""Applies a district's geographic assignment to the store (collector/domain/geo_assignment.py).

Reads the district's households and active caregivers, asks the pure plan, and writes only what
changed: moved households' ``caregiver_id`` and each caregiver's ``backup_id``. A supervisor's
override is :func:`pin`: the household gets that caregiver and keeps them through later runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from collector.domain.geo_assignment import (
    CAPACITY,
    Home,
    Plan,
    choose_backups,
    middles_of,
    partition,
    reassign,
)
from collector.store.models import Caregiver, Household


@dataclass(frozen=True, slots=True)
class AssignmentResult:
    district: str
    households: int
    caregivers: int
    moved: int
    unassigned: tuple[str, ...]
    over_capacity: dict[int, int]
    backups_changed: int


def assign_district(
    session: Session,
    district: str,
    *,
    capacity: int = CAPACITY,
    redraw: bool = False,
    dry_run: bool = False,
) -> AssignmentResult:
    """Reassign ``district`` (stable; ``redraw`` draws the rounds afresh) and set backups."""
    rows = session.execute(
        select(
            Household.id,
            Household.latitude,
            Household.longitude,
            Household.caregiver_id,
            Household.caregiver_pinned,
        ).where(Household.district == district)
    ).all()
    homes = [Home(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]
    carers = session.execute(
        select(Caregiver.id, Caregiver.backup_id).where(
            Caregiver.district == district, Caregiver.active.is_(True)
        )
    ).all()
    ids = [c[0] for c in carers]
    plan: Plan = (partition if redraw else reassign)(homes, ids, capacity)
    backups = choose_backups(middles_of(plan, homes, ids), {c[0]: c[1] for c in carers})
    changed_backups = {c: b for c, b in backups.items() if b != dict(carers)[c]}
    if not dry_run:
        moved_to = [(h, plan.caregiver_of[h]) for h in plan.moved]
        if moved_to:
            session.execute(
                update(Household),
                [{"id": h, "caregiver_id": c} for h, c in moved_to],
            )
        unassigned_now = [h.id for h in homes if h.id in plan.unassigned and h.caregiver_id]
        if unassigned_now:
            session.execute(
                update(Household),
                [{"id": h, "caregiver_id": None} for h in unassigned_now],
            )
        if changed_backups:
            session.execute(
                update(Caregiver),
                [{"id": c, "backup_id": b} for c, b in changed_backups.items()],
            )
    return AssignmentResult(
        district,
        len(homes),
        len(ids),
        len(plan.moved),
        plan.unassigned,
        plan.over_capacity,
        len(changed_backups),
    )


def pin(session: Session, household_id: str, caregiver_id: int | None) -> None:
    """A supervisor's choice: ``caregiver_id`` looks after the household from now on (None
    releases the pin, and the next assignment run places it like any other)."""
    household = session.get(Household, household_id)
    if household is None:
        raise LookupError(f"no household {household_id!r}")
    if caregiver_id is None:
        household.caregiver_pinned = False
        return
    caregiver = session.get(Caregiver, caregiver_id)
    if caregiver is None or not caregiver.active or caregiver.district != household.district:
        raise ValueError(
            f"caregiver {caregiver_id} is not an active caregiver of {household.district}"
        )
    household.caregiver_id = caregiver_id
    household.caregiver_pinned = True

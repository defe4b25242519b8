"""The store work behind the supervisor's office pages: texts from unknown numbers, and the
assignment of households to caregivers (pins and backups).

A supervisor acts on their own district only, an admin on any (chosen with ``?district=``);
every change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from collector.domain.escalation import EscalationPolicy
from collector.domain.geo_assignment import CAPACITY
from collector.domain.links import LinkSigner
from collector.requests import assign_request, mark_handled
from collector.store import assignment
from collector.store.accounts import Role
from collector.store.models import Caregiver, Household, ServiceRequest
from collector.web import audit
from collector.web.access import Forbidden, Viewer, check, may_manage_district
from collector.web.records import BadForm, Missing

SHOWN = 200
"""Most rows on one page (newest first)."""


def district_of(session: Session, viewer: Viewer, asked: str | None) -> str:
    """The district the page is about: the supervisor's own, or the one an admin asked for
    (else the first district with caregivers)."""
    if viewer.role is Role.SUPERVISOR:
        check(viewer.district is not None, "this supervisor account has no district")
        assert viewer.district is not None  # noqa: S101 - checked above
        check(asked in (None, "", viewer.district), f"district {asked} is not yours")
        return viewer.district
    check(viewer.role is Role.ADMIN, "this page is for supervisors")
    if asked:
        return asked
    first = session.scalar(select(Caregiver.district).order_by(Caregiver.district).limit(1))
    if first is None:
        raise Missing("no district has caregivers yet")
    return first


# Texts from numbers no household has


def texts(session: Session, district: str, *, handled_too: bool) -> Sequence[ServiceRequest]:
    """Texts that matched no household on arrival: those still waiting, oldest due first;
    with ``handled_too`` also the ones already assigned or closed (newest first)."""
    unmatched = or_(ServiceRequest.household_id.is_(None), ServiceRequest.handled_at.is_not(None))
    query = select(ServiceRequest).where(ServiceRequest.district == district, unmatched)
    if handled_too:
        query = query.order_by(ServiceRequest.received_at.desc(), ServiceRequest.id.desc())
    else:
        query = query.where(ServiceRequest.handled_at.is_(None)).order_by(
            ServiceRequest.due_at, ServiceRequest.id
        )
    return session.scalars(query.limit(SHOWN)).all()


def _text(session: Session, viewer: Viewer, request_id: int) -> ServiceRequest:
    row = session.get(ServiceRequest, request_id)
    if row is None or not may_manage_district(viewer, row.district):
        raise Missing(f"no text {request_id} in your district")
    return row


def assign_text(
    session: Session,
    viewer: Viewer,
    request_id: int,
    household_id: str,
    *,
    now: dt.datetime,
    policy: EscalationPolicy,
    links: LinkSigner,
) -> int:
    """File the text as ``household_id``'s request (its caregiver is told); the dispatch id."""
    row = _text(session, viewer, request_id)
    household = session.get(Household, household_id.strip())
    if household is None:
        raise BadForm(f"no household {household_id.strip()!r}")
    if household.district != row.district:
        raise Forbidden(f"household {household.id} is not in {row.district}")
    dispatch_id = assign_request(
        session, row.id, household, by=viewer.display_name, now=now, policy=policy, links=links
    )
    audit.record(
        session,
        viewer,
        "assign_text",
        now=now,
        district=row.district,
        household_id=household.id,
        dispatch_id=dispatch_id,
        detail=f"text {row.id}",
    )
    return dispatch_id


def close_text(
    session: Session, viewer: Viewer, request_id: int, note: str, *, now: dt.datetime
) -> None:
    note = note.strip()
    if not note:
        raise BadForm("say why the text needs no household")
    if len(note) > 500:
        raise BadForm("the note is longer than 500 characters")
    row = _text(session, viewer, request_id)
    mark_handled(session, row.id, by=viewer.display_name, note=note, now=now)
    audit.record(
        session, viewer, "close_text", now=now, district=row.district, detail=f"text {row.id}"
    )


# Assignment: who looks after which household, and who stands in


@dataclass(frozen=True, slots=True)
class CaregiverRow:
    caregiver: Caregiver
    households: int
    pinned: int


@dataclass(frozen=True, slots=True)
class AssignmentPage:
    district: str
    caregivers: Sequence[CaregiverRow]
    pinned: Sequence[Household]
    unassigned: int
    capacity: int
    looked_up: Household | None


def assignment_page(
    session: Session, district: str, *, household_id: str | None = None
) -> AssignmentPage:
    carers = session.scalars(
        select(Caregiver)
        .where(Caregiver.district == district, Caregiver.active.is_(True))
        .order_by(Caregiver.name, Caregiver.id)
    ).all()
    counts = dict(
        session.execute(
            select(Household.caregiver_id, func.count())
            .where(Household.district == district)
            .group_by(Household.caregiver_id)
        ).all()
    )
    pins = dict(
        session.execute(
            select(Household.caregiver_id, func.count())
            .where(Household.district == district, Household.caregiver_pinned.is_(True))
            .group_by(Household.caregiver_id)
        ).all()
    )
    pinned = session.scalars(
        select(Household)
        .where(Household.district == district, Household.caregiver_pinned.is_(True))
        .order_by(Household.id)
        .limit(SHOWN)
    ).all()
    looked_up = None
    if household_id:
        found = session.get(Household, household_id.strip())
        looked_up = found if found is not None and found.district == district else None
    return AssignmentPage(
        district,
        [CaregiverRow(c, int(counts.get(c.id, 0)), int(pins.get(c.id, 0))) for c in carers],
        pinned,
        int(counts.get(None, 0)),
        CAPACITY,
        looked_up,
    )


def _household(session: Session, viewer: Viewer, household_id: str) -> Household:
    household = session.get(Household, household_id.strip())
    if household is None:
        raise BadForm(f"no household {household_id.strip()!r}")
    check(
        may_manage_district(viewer, household.district),
        f"household {household.id} is not in your district",
    )
    return household


def _caregiver(session: Session, district: str, caregiver_id: str) -> Caregiver:
    try:
        found = session.get(Caregiver, int(caregiver_id))
    except ValueError:
        found = None
    if found is None or not found.active or found.district != district:
        raise BadForm(f"caregiver {caregiver_id!r} is not an active caregiver of {district}")
    return found


def pin_household(
    session: Session, viewer: Viewer, household_id: str, caregiver_id: str, *, now: dt.datetime
) -> Household:
    """``caregiver_id`` looks after the household from now on and keeps it through later
    assignment runs; an empty ``caregiver_id`` releases the pin."""
    household = _household(session, viewer, household_id)
    before = household.caregiver_id
    if caregiver_id.strip():
        caregiver = _caregiver(session, household.district, caregiver_id)
        assignment.pin(session, household.id, caregiver.id)
        detail = f"pinned to caregiver {caregiver.id} (was {before})"
    else:
        assignment.pin(session, household.id, None)
        detail = f"pin released (caregiver {before} stays until the next run)"
    audit.record(
        session,
        viewer,
        "pin_household",
        now=now,
        district=household.district,
        household_id=household.id,
        detail=detail,
    )
    return household


def set_backup(
    session: Session,
    viewer: Viewer,
    district: str,
    caregiver_id: str,
    backup_id: str,
    *,
    now: dt.datetime,
) -> None:
    """A caregiver's backup, chosen by the supervisor (assignment runs keep a valid one)."""
    check(may_manage_district(viewer, district), f"district {district} is not yours")
    caregiver = _caregiver(session, district, caregiver_id)
    backup = _caregiver(session, district, backup_id) if backup_id.strip() else None
    if backup is not None and backup.id == caregiver.id:
        raise BadForm("a caregiver cannot be their own backup")
    caregiver.backup_id = None if backup is None else backup.id
    audit.record(
        session,
        viewer,
        "set_backup",
        now=now,
        district=district,
        detail=f"caregiver {caregiver.id}: backup {caregiver.backup_id}",
    )


def run_assignment(
    session: Session, viewer: Viewer, district: str, *, now: dt.datetime, dry_run: bool
) -> assignment.AssignmentResult:
    """The stable assignment run (``anbu collector assign``); pins stand."""
    check(may_manage_district(viewer, district), f"district {district} is not yours")
    result = assignment.assign_district(session, district, dry_run=dry_run)
    if not dry_run:
        audit.record(
            session,
            viewer,
            "assign_district",
            now=now,
            district=district,
            detail=(
                f"moved {result.moved}, unassigned {len(result.unassigned)}, "
                f"backups changed {result.backups_changed}"
            ),
        )
    return result

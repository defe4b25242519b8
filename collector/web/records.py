"""The store work behind the pages: scoped reads, dispatch steps with their history, map data.

Every function takes the :class:`Viewer` and applies the scoping rules of ``access.py`` in the
query itself (lists) or with :func:`access.check` (single records), so a page cannot forget it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, case, false, func, select
from sqlalchemy.orm import Session, selectinload

from collector.domain import lifecycle, reports
from collector.domain.livestate import HomeSignals, LiveState, live_state
from collector.store.accounts import DispatchStep, HouseholdNote, Role
from collector.store.models import (
    Caregiver,
    Device,
    Dispatch,
    DispatchReason,
    DispatchStatus,
    Household,
    Notification,
    NotificationStatus,
    Priority,
    RiskLevel,
)
from collector.store.trail import record_change, write_lifecycle
from collector.web import audit
from collector.web.access import Forbidden, Viewer, check, may_see_household
from collector.web.snapshots import Built

_Q = TypeVar("_Q", bound="Select[*tuple[Any, ...]]")


class Missing(LookupError):
    """No such dispatch or household (404)."""


class BadForm(ValueError):
    """A form field is missing or wrong (400); the message says which."""


def _scope(query: _Q, viewer: Viewer) -> _Q:
    """``query`` (which must involve ``Household``) narrowed to what ``viewer`` may see."""
    if viewer.role is Role.ADMIN:
        return query
    if viewer.role is Role.SUPERVISOR and viewer.district is not None:
        return query.where(Household.district == viewer.district)
    if viewer.role is Role.CAREGIVER and viewer.caregiver_id is not None:
        return query.where(Household.caregiver_id == viewer.caregiver_id)
    return query.where(false())


def open_dispatches(session: Session, viewer: Viewer, *, limit: int = 200) -> Sequence[Dispatch]:
    """Not yet resolved, most urgent first (urgent before normal, SOS before silence), newest
    first within each."""
    query = (
        select(Dispatch)
        .join(Household, Household.id == Dispatch.household_id)
        .options(selectinload(Dispatch.household))
        .where(Dispatch.status != DispatchStatus.RESOLVED)
        .order_by(
            case((Dispatch.priority == Priority.URGENT, 0), else_=1),
            Dispatch.created_at.desc(),
            Dispatch.id.desc(),
        )
        .limit(limit)
    )
    return session.scalars(_scope(query, viewer)).all()


def _household_or_403(session: Session, viewer: Viewer, household_id: str) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise Missing(f"household {household_id!r} not found")
    check(
        may_see_household(viewer, district=household.district, caregiver_id=household.caregiver_id),
        f"household {household_id} is not one of yours",
    )
    return household


def _dispatch_or_403(session: Session, viewer: Viewer, dispatch_id: int) -> Dispatch:
    dispatch = session.get(Dispatch, dispatch_id, options=[selectinload(Dispatch.household)])
    if dispatch is None:
        raise Missing(f"dispatch {dispatch_id} not found")
    household = dispatch.household
    allowed = may_see_household(
        viewer, district=household.district, caregiver_id=household.caregiver_id
    ) or (viewer.role is Role.CAREGIVER and viewer.caregiver_id == dispatch.caregiver_id)
    check(allowed, f"dispatch {dispatch_id} is not one of yours")
    return dispatch


def steps_of(session: Session, dispatch_id: int) -> Sequence[DispatchStep]:
    return session.scalars(
        select(DispatchStep)
        .where(DispatchStep.dispatch_id == dispatch_id)
        .order_by(DispatchStep.at, DispatchStep.id)
    ).all()


def notified_at(session: Session, dispatch_id: int) -> dt.datetime | None:
    return session.scalar(
        select(func.min(Notification.sent_at)).where(
            Notification.dispatch_id == dispatch_id,
            Notification.status == NotificationStatus.SENT,
        )
    )


def lifecycle_of(dispatch: Dispatch, steps: Sequence[DispatchStep]) -> lifecycle.Lifecycle:
    """The stored row and its steps as the pure lifecycle's state."""
    arrived = next((s for s in steps if s.step == "on_site"), None)
    resolved = next((s for s in steps if s.step == "resolved"), None)
    return lifecycle.Lifecycle(
        status=lifecycle.Status(dispatch.status.value),
        acknowledged_at=dispatch.acknowledged_at,
        acknowledged_by=dispatch.acknowledged_by,
        resolved_at=dispatch.resolved_at,
        outcome=lifecycle.Outcome(dispatch.outcome) if dispatch.outcome else None,
        note=dispatch.note,
        on_site_at=arrived.at if arrived else None,
        on_site_by=arrived.by if arrived else None,
        resolved_by=resolved.by if resolved else None,
    )


@dataclass(frozen=True, slots=True)
class DispatchPage:
    dispatch: Dispatch
    household: Household
    state: lifecycle.Lifecycle
    stage: lifecycle.Stage
    timeline: tuple[lifecycle.Step, ...]
    steps: Sequence[DispatchStep]
    allowed: frozenset[str]
    """Which actions the page offers: acknowledge, on_site, resolve, note."""


def dispatch_page(
    session: Session, viewer: Viewer, dispatch_id: int, *, now: dt.datetime
) -> DispatchPage:
    """The dispatch with its timeline; the view is written to the audit log."""
    dispatch = _dispatch_or_403(session, viewer, dispatch_id)
    steps = steps_of(session, dispatch_id)
    state = lifecycle_of(dispatch, steps)
    sent = notified_at(session, dispatch_id)
    audit.record(
        session,
        viewer,
        "view_dispatch",
        now=now,
        district=dispatch.household.district,
        household_id=dispatch.household_id,
        dispatch_id=dispatch_id,
    )
    probe: dict[str, lifecycle.Event] = {
        "acknowledge": lifecycle.Acknowledge("x"),
        "on_site": lifecycle.ArriveOnSite("x"),
        "resolve": lifecycle.Resolve(lifecycle.Outcome.SAFE),
        "note": lifecycle.AddNote("x", "x"),
    }
    return DispatchPage(
        dispatch,
        dispatch.household,
        state,
        lifecycle.stage_of(state, notified_at=sent),
        lifecycle.timeline(state, raised_at=dispatch.created_at, notified_at=sent),
        steps,
        frozenset(name for name, event in probe.items() if state.allows(event)),
    )


def act(
    session: Session, viewer: Viewer, dispatch_id: int, event: lifecycle.Event, *, now: dt.datetime
) -> Dispatch:
    """Apply ``event`` as ``viewer``: the row, a step and an audit entry in one transaction.

    The row is written only if its status is still the one read, so two caregivers pressing
    "acknowledge" at once cannot both win: the second gets :class:`lifecycle.InvalidTransition`.
    """
    dispatch = _dispatch_or_403(session, viewer, dispatch_id)
    if viewer.role is Role.TECHNICIAN:
        raise Forbidden("technicians do not act on dispatches")
    before = lifecycle_of(dispatch, steps_of(session, dispatch_id))
    after = lifecycle.apply(before, event, now=now)
    if not isinstance(event, lifecycle.AddNote) and not write_lifecycle(
        session, dispatch_id, before, after
    ):
        session.refresh(dispatch)
        fresh = lifecycle_of(dispatch, steps_of(session, dispatch_id))
        raise lifecycle.InvalidTransition(fresh, event)
    record_change(
        session,
        dispatch_id=dispatch_id,
        household_id=dispatch.household_id,
        district=dispatch.household.district,
        event=event,
        by=viewer.display_name,
        actor=viewer.username,
        account_id=viewer.account_id,
        now=now,
    )
    session.flush()
    session.refresh(dispatch)
    return dispatch


@dataclass(frozen=True, slots=True)
class HouseholdPage:
    household: Household
    caregiver: Caregiver | None
    notes: Sequence[HouseholdNote]
    dispatches: Sequence[Dispatch]
    steps: dict[int, Sequence[DispatchStep]]
    live: LiveState


def household_page(
    session: Session, viewer: Viewer, household_id: str, *, now: dt.datetime
) -> HouseholdPage:
    """Details, needs notes and visit history; the view is written to the audit log."""
    household = _household_or_403(session, viewer, household_id)
    notes = session.scalars(
        select(HouseholdNote)
        .where(HouseholdNote.household_id == household_id)
        .order_by(HouseholdNote.at.desc(), HouseholdNote.id.desc())
    ).all()
    dispatches = session.scalars(
        select(Dispatch)
        .where(Dispatch.household_id == household_id)
        .order_by(Dispatch.created_at.desc(), Dispatch.id.desc())
        .limit(50)
    ).all()
    steps = {d.id: steps_of(session, d.id) for d in dispatches}
    audit.record(
        session, viewer, "view_household", now=now, district=household.district,
        household_id=household_id,
    )  # fmt: skip
    snapshot = map_snapshot(session, viewer, now=now, household_id=household_id)
    live = LiveState(snapshot[0]["state"]) if snapshot else LiveState.OK
    return HouseholdPage(household, household.caregiver, notes, dispatches, steps, live)


def add_household_note(
    session: Session, viewer: Viewer, household_id: str, text: str, *, now: dt.datetime
) -> None:
    household = _household_or_403(session, viewer, household_id)
    text = text.strip()
    if not text:
        raise ValueError("the note is empty")
    if len(text) > 4000:
        raise ValueError("a note has at most 4000 characters")
    session.add(
        HouseholdNote(
            household_id=household_id,
            at=now,
            account_id=viewer.account_id,
            by=viewer.display_name,
            text=text,
        )
    )
    audit.record(
        session, viewer, "household_note", now=now, district=household.district,
        household_id=household_id,
    )  # fmt: skip


def set_guardian_consent(
    session: Session, viewer: Viewer, household_id: str, agreed: bool, *, now: dt.datetime
) -> None:
    """The resident agreed (or no longer agrees) that their guardian is told of alarms; whoever
    may see the household records it, and the audit log says who and when."""
    household = _household_or_403(session, viewer, household_id)
    before = household.guardian_opt_in
    household.guardian_opt_in = agreed
    audit.record(
        session, viewer, "guardian_consent", now=now, district=household.district,
        household_id=household_id,
        detail=f"{'yes' if agreed else 'no'} (was {'yes' if before else 'no'})",
    )  # fmt: skip


def map_snapshot(
    session: Session,
    viewer: Viewer,
    *,
    now: dt.datetime,
    household_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every household ``viewer`` may see with its position, risk colour and live state.

    One query whatever the district's size: households left-joined to their devices and their
    unresolved dispatches, each already reduced to one row per household by the database.
    """
    devices = (
        select(
            Device.household_id.label("hid"),
            func.count().label("n"),
            func.min(case((Device.online, 1), else_=0)).label("all_online"),
            func.max(Device.last_life_sign_at).label("life"),
        )
        .group_by(Device.household_id)
        .subquery()
    )
    open_ = (
        select(
            Dispatch.household_id.label("hid"),
            func.max(case((Dispatch.reason == DispatchReason.SOS, 1), else_=0)).label("sos"),
            func.max(case((Dispatch.reason == DispatchReason.SILENCE, 1), else_=0)).label(
                "silence"
            ),
            func.max(Dispatch.id).label("dispatch_id"),
        )
        .where(Dispatch.status != DispatchStatus.RESOLVED)
        .group_by(Dispatch.household_id)
        .subquery()
    )
    query = _scope(
        select(
            Household.id,
            Household.resident_name,
            Household.latitude,
            Household.longitude,
            Household.risk_level,
            Household.silence_period_h,
            devices.c.n,
            devices.c.all_online,
            devices.c.life,
            open_.c.sos,
            open_.c.silence,
            open_.c.dispatch_id,
        )
        .outerjoin(devices, devices.c.hid == Household.id)
        .outerjoin(open_, open_.c.hid == Household.id)
        .order_by(Household.id),
        viewer,
    )
    if household_id is not None:
        query = query.where(Household.id == household_id)
    out: list[dict[str, Any]] = []
    for row in session.execute(query):
        reasons = frozenset(
            name for name, flag in (("sos", row.sos), ("silence", row.silence)) if flag
        )
        life = as_utc(row.life)
        online = (bool(row.all_online),) * int(row.n or 0)
        signals = HomeSignals(reasons, online, life, row.silence_period_h)
        state = live_state(signals, now=now)
        out.append(
            {
                "id": row.id,
                "name": row.resident_name,
                "lat": row.latitude,
                "lon": row.longitude,
                "risk": row.risk_level.value,
                "state": state.value,
                "dispatch_id": row.dispatch_id,
            }
        )
        if meta is not None and life is not None and not reasons:
            # What turns this home's state by itself: a life sign (silent), or time (not yet).
            turns = life + dt.timedelta(hours=row.silence_period_h)
            if state is LiveState.SILENT:
                meta.setdefault("silent_ids", set()).add(row.id)
                meta["silent_life"] = max(meta.get("silent_life") or life, life)
            elif turns > now:
                meta["valid_until"] = min(meta.get("valid_until") or turns, turns)
    return out


def as_utc(value: object) -> dt.datetime | None:
    """An aggregate's time as aware UTC (SQLite hands aggregates back as text)."""
    if value is None:
        return None
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(when, dt.datetime)  # noqa: S101
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


class StoreMapWatch:
    """What the map's data depends on, summarised by a few cheap aggregate queries (the
    snapshot cache compares it before rebuilding; see ``collector/web/snapshots.py``)."""

    def __init__(self, sessions: Callable[[], AbstractContextManager[Session]]) -> None:
        self._sessions = sessions

    def changes(self, viewer: Viewer) -> Hashable:
        del viewer  # the whole store: a change elsewhere only costs a needless rebuild
        with self._sessions() as session:
            dispatches = session.execute(
                select(func.count(), func.max(Dispatch.id), func.sum(Dispatch.id)).where(
                    Dispatch.status != DispatchStatus.RESOLVED
                )
            ).one()
            devices = session.execute(
                select(
                    func.count(),
                    func.sum(case((Device.online, 1), else_=0)),
                    func.max(Device.state_changed_at),
                )
            ).one()
            households = session.execute(
                select(
                    func.count(),
                    func.max(Household.created_at),
                    func.sum(case((Household.risk_level == RiskLevel.RED, 1), else_=0)),
                    func.sum(case((Household.risk_level == RiskLevel.ORANGE, 1), else_=0)),
                    func.sum(Household.caregiver_id),
                    # A moved marker, a renamed resident, a changed period: rebuild too.
                    func.sum(Household.latitude),
                    func.sum(Household.longitude),
                    func.sum(func.length(Household.resident_name)),
                    func.sum(Household.silence_period_h),
                )
            ).one()
        return (tuple(dispatches), tuple(devices), tuple(households))

    def silent_life(self, viewer: Viewer, ids: frozenset[str]) -> Hashable:
        del viewer
        if not ids:
            return None
        if len(ids) > 5000:
            return object()  # too many to ask about: rebuild
        with self._sessions() as session:
            latest = session.scalar(
                select(func.max(Device.last_life_sign_at)).where(
                    Device.household_id.in_(sorted(ids))
                )
            )
        return as_utc(latest)


def map_built(session: Session, viewer: Viewer, *, now: dt.datetime) -> Built:
    """The map's homes with what the snapshot cache watches for a change."""
    meta: dict[str, Any] = {}
    homes = map_snapshot(session, viewer, now=now, meta=meta)
    return Built(
        homes,
        frozenset(meta.get("silent_ids", ())),
        meta.get("silent_life"),
        meta.get("valid_until"),
    )


def monthly_reports(
    session: Session, viewer: Viewer, month: reports.Month
) -> list[reports.DistrictMonth]:
    """One report per district the viewer may see (a supervisor: theirs; an admin: all).

    "Homes" is the number of households registered today: the store keeps no history of it.
    """
    homes_query = _scope(
        select(Household.district, func.count()).group_by(Household.district), viewer
    )
    homes = {district: int(n) for district, n in session.execute(homes_query)}
    arrived = (
        select(DispatchStep.dispatch_id.label("did"), func.min(DispatchStep.at).label("at"))
        .where(DispatchStep.step == "on_site")
        .group_by(DispatchStep.dispatch_id)
        .subquery()
    )
    query = _scope(
        select(
            Household.district,
            Dispatch.reason,
            Dispatch.created_at,
            Dispatch.acknowledged_at,
            arrived.c.at,
            Dispatch.outcome,
        )
        .join(Household, Household.id == Dispatch.household_id)
        .outerjoin(arrived, arrived.c.did == Dispatch.id)
        .where(Dispatch.created_at >= month.start, Dispatch.created_at < month.end),
        viewer,
    )
    records: list[reports.DispatchRecord] = []
    for district, reason, created, acked, on_site, outcome in session.execute(query):
        if isinstance(on_site, str):  # SQLite hands an aggregate back untyped
            on_site = dt.datetime.fromisoformat(on_site)
        if on_site is not None and on_site.tzinfo is None:
            on_site = on_site.replace(tzinfo=dt.UTC)
        records.append(
            reports.DispatchRecord(district, reason.value, created, acked, on_site, outcome)
        )
        homes.setdefault(district, 0)
    return [
        reports.district_month(district, month, homes[district], records)
        for district in sorted(homes)
    ]

"""The database work behind the routes: queries, creation with caregiver assignment, transitions.

Routes stay thin by calling one function here each. Failures are :class:`NotFound` (404),
:class:`Conflict` (409) or :class:`collector.domain.lifecycle.InvalidTransition` (409); the app maps
them to HTTP in ``collector.main``.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from collector.api.cursor import decode_cursor, encode_cursor
from collector.api.models import CaregiverCreate, DeviceCreate, DispatchPublic, HouseholdCreate
from collector.domain import lifecycle
from collector.domain.assignment import CAPACITY, choose_caregiver
from collector.store.models import (
    Caregiver,
    DeadLetter,
    Device,
    Dispatch,
    DispatchStatus,
    Household,
)
from collector.store.queries import caregiver_loads
from collector.store.trail import record_change, write_lifecycle

RECENT_DISPATCHES = 20


class NotFound(LookupError):
    """The thing named in the path or body does not exist."""


class Conflict(Exception):
    """The request clashes with what is stored (duplicate id, no caregiver with room...)."""


@dataclass(frozen=True, slots=True)
class Order:
    """A list's sort order: ``keys`` (unique together), all ascending or all descending.

    Every order here has an index that starts with its keys (see ``collector.store.models``).
    """

    keys: tuple[InstrumentedAttribute[Any], ...]
    kinds: tuple[type, ...]
    descending: bool = False

    def clauses(self) -> list[ColumnElement[Any]]:
        return [k.desc() if self.descending else k.asc() for k in self.keys]

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """Rows that come after the row whose keys are ``values``."""
        beyond = operator.lt if self.descending else operator.gt
        pairs = list(zip(self.keys, values, strict=True))
        key, value = pairs[-1]
        clause: ColumnElement[bool] = beyond(key, value)
        for key, value in reversed(pairs[:-1]):
            clause = or_(beyond(key, value), and_(key == value, clause))
        return clause

    def cursor_of(self, item: Any) -> str:
        return encode_cursor([getattr(item, k.key) for k in self.keys])


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of rows, the count matching the filters, and the cursor of the next page."""

    items: Sequence[Any]
    count: int
    next_cursor: str | None


def _page(
    session: Session,
    query: Select[Any],
    order: Order,
    *,
    limit: int,
    offset: int,
    cursor: str | None = None,
    entities: bool = True,
    counted: Select[Any] | None = None,
) -> Listing:
    """``limit`` rows of ``query`` in ``order`` after ``cursor`` (or ``offset``), and the total.

    ``counted`` counts the matching rows when that is cheaper than counting ``query`` (no join).
    One row more than asked for is read, so the last page says so (``next_cursor`` None).
    """
    if counted is None:
        counted = query.with_only_columns(func.count(), maintain_column_froms=True)
    total = session.scalar(counted.order_by(None)) or 0
    if cursor is not None:
        query = query.where(order.after(decode_cursor(cursor, order.kinds)))
    query = query.order_by(*order.clauses()).limit(limit + 1).offset(offset)
    rows: Sequence[Any] = session.scalars(query).all() if entities else session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Listing(rows, total, order.cursor_of(rows[-1]) if more else None)


# Caregivers


def household_counts(session: Session, caregiver_ids: Sequence[int]) -> dict[int, int]:
    """How many households each of ``caregiver_ids`` looks after."""
    if not caregiver_ids:
        return {}
    rows = session.execute(
        select(Household.caregiver_id, func.count())
        .where(Household.caregiver_id.in_(caregiver_ids))
        .group_by(Household.caregiver_id)
    ).all()
    counts = {cid: 0 for cid in caregiver_ids}
    counts.update({cid: n for cid, n in rows if cid is not None})
    return counts


CAREGIVER_ORDER = Order((Caregiver.id,), (int,))
CAREGIVER_TABLES = frozenset({"caregivers", "households"})
"""What a caregiver list page is read from (``household_count`` comes from households)."""


def list_caregivers(
    session: Session, *, district: str | None, limit: int, offset: int, cursor: str | None = None
) -> Listing:
    query = select(Caregiver)
    if district is not None:
        query = query.where(Caregiver.district == district)
    return _page(session, query, CAREGIVER_ORDER, limit=limit, offset=offset, cursor=cursor)


def create_caregiver(session: Session, data: CaregiverCreate) -> Caregiver:
    caregiver = Caregiver(**data.model_dump())
    session.add(caregiver)
    session.commit()
    return caregiver


# Households


HOUSEHOLD_ORDER = Order((Household.id,), (str,))
HOUSEHOLD_TABLES = frozenset({"households"})


def list_households(
    session: Session, *, district: str | None, limit: int, offset: int, cursor: str | None = None
) -> Listing:
    query = select(Household)
    if district is not None:
        query = query.where(Household.district == district)
    return _page(session, query, HOUSEHOLD_ORDER, limit=limit, offset=offset, cursor=cursor)


def get_household(session: Session, household_id: str) -> Household:
    household = session.get(
        Household,
        household_id,
        options=[selectinload(Household.devices), selectinload(Household.caregiver)],
    )
    if household is None:
        raise NotFound(f"household {household_id!r} not found")
    return household


def recent_dispatches(session: Session, household_id: str) -> Sequence[Dispatch]:
    return session.scalars(
        select(Dispatch)
        .where(Dispatch.household_id == household_id)
        .options(selectinload(Dispatch.household))
        .order_by(Dispatch.created_at.desc(), Dispatch.id.desc())
        .limit(RECENT_DISPATCHES)
    ).all()


def create_household(session: Session, data: HouseholdCreate, *, now: dt.datetime) -> Household:
    """Store a household; assign the district's least-loaded caregiver with room if none given."""
    if session.get(Household, data.id) is not None:
        raise Conflict(f"household {data.id!r} already exists")
    caregiver_id = data.caregiver_id
    if caregiver_id is None:
        caregiver_id = _assign(session, data)
    else:
        caregiver = session.get(Caregiver, caregiver_id)
        if caregiver is None:
            raise NotFound(f"caregiver {caregiver_id} not found")
        if not caregiver.active:
            raise Conflict(f"caregiver {caregiver_id} ({caregiver.name}) is not active")
    household = Household(
        **data.model_dump(exclude={"caregiver_id"}), caregiver_id=caregiver_id, created_at=now
    )
    session.add(household)
    _commit(session, f"household {data.id!r} already exists")
    return household


def _assign(session: Session, data: HouseholdCreate) -> int:
    loads = caregiver_loads(session, data.district)
    where = (
        (data.latitude, data.longitude)
        if data.latitude is not None and data.longitude is not None
        else None
    )
    chosen = choose_caregiver(data.district, loads, where=where)
    if chosen is not None:
        return chosen
    if not loads:
        raise Conflict(
            f"district {data.district!r} has no active caregiver: add one "
            "(POST /api/v1/caregivers) or give caregiver_id"
        )
    raise Conflict(
        f"all {len(loads)} active caregivers of district {data.district!r} already look after "
        f"{CAPACITY} households: add a caregiver or give caregiver_id"
    )


# Devices


DEVICE_ORDER = Order((Device.id,), (str,))
DEVICE_TABLES = frozenset({"devices"})


def list_devices(
    session: Session,
    *,
    household_id: str | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
) -> Listing:
    query = select(Device)
    if household_id is not None:
        query = query.where(Device.household_id == household_id)
    return _page(session, query, DEVICE_ORDER, limit=limit, offset=offset, cursor=cursor)


def get_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"device {device_id!r} not found")
    return device


def register_device(session: Session, data: DeviceCreate) -> Device:
    if session.get(Household, data.household_id) is None:
        raise NotFound(f"household {data.household_id!r} not found")
    if session.get(Device, data.id) is not None:
        raise Conflict(f"device {data.id!r} is already registered")
    device = Device(id=data.id, household_id=data.household_id)
    session.add(device)
    _commit(session, f"device {data.id!r} is already registered")
    return device


# Dispatches


DISPATCH_ORDER = Order((Dispatch.created_at, Dispatch.id), (dt.datetime, int), descending=True)
DISPATCH_TABLES = frozenset({"dispatches", "households"})
DISPATCH_FIELDS = tuple(DispatchPublic.model_fields)
"""A dispatch list row's names, in the order of ``DispatchPublic`` (and so of its JSON)."""
DISPATCH_COLUMNS = tuple(
    getattr(Household if name in ("district", "resident_name") else Dispatch, name)
    for name in DISPATCH_FIELDS
)


@functools.cache
def _dispatch_statements(
    status: bool, district: bool, household: bool, after: bool
) -> tuple[Select[Any], Select[Any]]:
    """The count and page statements for one combination of filters, built once.

    Values come as bound parameters, so each request skips building the statement and its
    cache key, which cost more than running it.
    """
    filters: list[ColumnElement[bool]] = []
    if status:
        filters.append(Dispatch.status == bindparam("status"))
    if household:
        filters.append(Dispatch.household_id == bindparam("household_id"))
    counted = select(func.count()).select_from(Dispatch)
    if district:
        filters.append(Household.district == bindparam("district"))
        counted = counted.join(Household, Household.id == Dispatch.household_id)
    query = (
        select(*DISPATCH_COLUMNS)
        .join(Household, Household.id == Dispatch.household_id)
        .where(*filters)
    )
    if after:
        query = query.where(DISPATCH_ORDER.after([bindparam("after_0"), bindparam("after_1")]))
    query = (
        query.order_by(*DISPATCH_ORDER.clauses())
        .limit(bindparam("page_limit"))
        .offset(bindparam("page_offset"))
    )
    return counted.where(*filters), query


def list_dispatches(
    session: Session,
    *,
    status: DispatchStatus | None,
    district: str | None,
    household_id: str | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
) -> Listing:
    """Newest first, as rows of ``DISPATCH_FIELDS`` (the household's district and name joined).

    Plain rows from one joined query, not ORM objects: the busiest list is read the cheap way.
    """
    counted, query = _dispatch_statements(
        status is not None, district is not None, household_id is not None, cursor is not None
    )
    filters = {
        name: value
        for name, value in (
            ("status", status),
            ("district", district),
            ("household_id", household_id),
        )
        if value is not None
    }
    page: dict[str, Any] = {"page_limit": limit + 1, "page_offset": offset}
    if cursor is not None:
        created_at, dispatch_id = decode_cursor(cursor, DISPATCH_ORDER.kinds)
        page |= {"after_0": created_at, "after_1": dispatch_id}
    connection = session.connection()
    total = connection.execute(counted, filters).scalar() or 0
    rows = connection.execute(query, filters | page).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Listing(rows, total, DISPATCH_ORDER.cursor_of(rows[-1]) if more else None)


def get_dispatch(session: Session, dispatch_id: int) -> Dispatch:
    dispatch = session.get(
        Dispatch,
        dispatch_id,
        options=[selectinload(Dispatch.household), selectinload(Dispatch.notifications)],
    )
    if dispatch is None:
        raise NotFound(f"dispatch {dispatch_id} not found")
    # Oldest first; the collection has no order of its own and sorting it writes nothing.
    dispatch.notifications.sort(key=lambda n: (n.created_at, n.id))
    return dispatch


def lifecycle_of(dispatch: Dispatch) -> lifecycle.Lifecycle:
    outcome = lifecycle.Outcome(dispatch.outcome) if dispatch.outcome else None
    return lifecycle.Lifecycle(
        status=lifecycle.Status(dispatch.status.value),
        acknowledged_at=dispatch.acknowledged_at,
        acknowledged_by=dispatch.acknowledged_by,
        resolved_at=dispatch.resolved_at,
        outcome=outcome,
        note=dispatch.note,
    )


def transition_dispatch(
    session: Session, dispatch_id: int, event: lifecycle.Event, *, now: dt.datetime
) -> Dispatch:
    """Apply ``event`` to the stored dispatch; raises ``InvalidTransition`` if it is not allowed.

    The write is conditional on the status just read, so when two caregivers press "acknowledge"
    at once exactly one wins and the other is told who did.
    """
    dispatch = get_dispatch(session, dispatch_id)
    for _ in range(3):
        before = lifecycle_of(dispatch)
        after = lifecycle.apply(before, event, now=now)
        if write_lifecycle(session, dispatch_id, before, after):
            by = getattr(event, "by", None) or "api-token"
            record_change(
                session, dispatch_id=dispatch_id, household_id=dispatch.household_id,
                district=dispatch.household.district, event=event, by=by, actor="api-token",
                account_id=None, now=now,
            )  # fmt: skip
            session.commit()
            session.refresh(dispatch)
            return dispatch
        # Someone else moved it between our read and our write: look again.
        session.rollback()
        session.refresh(dispatch)
    raise Conflict(f"dispatch {dispatch_id} keeps changing; try again")


# Dead letters


DEAD_LETTER_ORDER = Order(
    (DeadLetter.received_at, DeadLetter.id), (dt.datetime, int), descending=True
)
DEAD_LETTER_TABLES = frozenset({"dead_letters"})


def list_dead_letters(
    session: Session, *, limit: int, offset: int, cursor: str | None = None
) -> Listing:
    query = select(DeadLetter)
    return _page(session, query, DEAD_LETTER_ORDER, limit=limit, offset=offset, cursor=cursor)


def _commit(session: Session, duplicate: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(duplicate) from exc

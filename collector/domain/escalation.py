"""When an open dispatch nobody acknowledged must be pushed further, and to whom.

Each kind of dispatch (``sos``, ``silence``, ``device_offline``, ``request``) follows an
**escalation chain**: a list of steps, each "after waiting this long, tell these people". A
district may replace any kind's chain with its own (:class:`EscalationBook`). For example::

    sos:     3 min → backup caregiver, 3 min → supervisor, 5 min → the district's emergency line
    request: 1 working day → supervisor and the welfare department

Rules (``level`` on the dispatch counts the steps already taken; its ``due_at`` is when the next
one is due; both are stored, so a restarted collector carries on where it stopped):

* A dispatch that is not ``open`` (acknowledged, on site, resolved) is never escalated.
* At ``due_at`` the step ``steps[level]`` is taken: its people are told, ``level`` goes up by
  one, and the next step is due ``after`` its own wait (counted from now); after the last step
  nothing further is due.
* A step whose people cannot be reached (no backup assigned, no emergency line configured) is
  not a step at all: the next one is taken at once, in the same decision, so a missing contact
  never swallows the alarm. Only when no step at all reaches anyone is the district staff told.
* A notification that failed (:func:`failure_brings_forward`) brings the next step forward to
  now: a caregiver whose SMS bounced has not been told, so the chain must not wait for them.
* A wait is seconds, or working days (``working_days``): those count office days only, through
  :class:`collector.domain.office_hours.OfficeCalendar` (weekends and configured holidays off).

Pure: ``now`` is an argument; no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from collector.domain import wording
from collector.domain.dispatch import Contact, HouseholdView, Message, messages_worded
from collector.domain.office_hours import OfficeCalendar

KINDS = ("sos", "silence", "device_offline", "request")
"""The dispatch kinds that have a chain (a dispatch's ``reason``)."""

ROLES = ("caregiver", "backup", "guardian", "supervisor", "department", "emergency", "staff")
"""Who a step can tell: the household's caregiver and their backup, the guardian, and the
district's supervisor, welfare department, emergency line, or (where none is set) staff."""


@dataclass(frozen=True, slots=True)
class ChainStep:
    """One step: after waiting ``after_s`` seconds (or ``working_days``), tell ``notify``."""

    notify: tuple[str, ...]
    after_s: float = 0.0
    working_days: int = 0
    """When > 0, the wait is this many working days instead of ``after_s``."""

    def __post_init__(self) -> None:
        unknown = [r for r in self.notify if r not in ROLES]
        if unknown or not self.notify:
            raise ValueError(f"notify={list(self.notify)}: each must be one of {list(ROLES)}")
        if self.after_s < 0 or self.working_days < 0:
            raise ValueError("after_s and working_days must not be negative")

    def due_after(self, start: dt.datetime, calendar: OfficeCalendar) -> dt.datetime:
        """When this step is due if the wait starts at ``start``."""
        if self.working_days:
            return calendar.add_working_days(start, self.working_days)
        return start + dt.timedelta(seconds=self.after_s)


@dataclass(frozen=True, slots=True)
class EscalationChain:
    steps: tuple[ChainStep, ...]

    def first_due_at(self, opened_at: dt.datetime, calendar: OfficeCalendar) -> dt.datetime | None:
        """When the first step is due for a dispatch opened at ``opened_at``."""
        return self.steps[0].due_after(opened_at, calendar) if self.steps else None


@dataclass(frozen=True, slots=True)
class DistrictContacts:
    """The people a district's chains can reach beyond the household's own."""

    supervisor: Contact | None = None
    department: Contact | None = None
    emergency: Contact | None = None


def legacy_chain(first_after_s: float = 60.0, repeat_after_s: float = 300.0) -> EscalationChain:
    """The ladder Anbu had before chains: guardian and staff, then staff again."""
    return EscalationChain(
        (
            ChainStep(("guardian", "staff"), after_s=first_after_s),
            ChainStep(("staff",), after_s=repeat_after_s),
        )
    )


DEFAULT_REQUEST_CHAIN = EscalationChain(
    (ChainStep(("supervisor", "department", "staff"), working_days=1),)
)
"""A request nobody answered within a working day goes to the district's office."""

DEFAULT_DEVICE_OFFLINE_CHAIN = EscalationChain(
    (ChainStep(("backup", "supervisor", "department"), after_s=2 * 3600.0),)
)
"""A device-offline dispatch nobody took in two hours goes to the backup and the district's
office (staff, where neither is configured). Not the legacy ladder: a dead device is no reason to
alarm the guardian within a minute."""

_DEFAULT_CHAINS = {"request": DEFAULT_REQUEST_CHAIN, "device_offline": DEFAULT_DEVICE_OFFLINE_CHAIN}


@dataclass(frozen=True, slots=True)
class EscalationBook:
    """Every kind's chain, with per-district replacements and each district's contacts."""

    defaults: Mapping[str, EscalationChain] = field(default_factory=dict)
    districts: Mapping[str, Mapping[str, EscalationChain]] = field(default_factory=dict)
    contacts: Mapping[str, DistrictContacts] = field(default_factory=dict)
    fallback: EscalationChain = field(default_factory=legacy_chain)
    """The chain of a kind nobody configured."""

    def chain_for(self, district: str, kind: str) -> EscalationChain:
        own = self.districts.get(district, {})
        if kind in own:
            return own[kind]
        if kind in self.defaults:
            return self.defaults[kind]
        return _DEFAULT_CHAINS.get(kind, self.fallback)

    def contacts_for(self, district: str) -> DistrictContacts:
        return self.contacts.get(district, DistrictContacts())


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    repeat_after_s: float = 300.0
    """The legacy ladder's second wait (used when ``book`` is not given)."""
    staff: Contact | None = None
    dashboard_url: str = "http://localhost:8000"
    book: EscalationBook | None = None
    calendar: OfficeCalendar = field(default_factory=OfficeCalendar)
    first_after_s: float = 60.0
    """The legacy ladder's first wait (the SOS acknowledgement timeout)."""

    @property
    def effective_book(self) -> EscalationBook:
        if self.book is not None:
            return self.book
        return EscalationBook(fallback=legacy_chain(self.first_after_s, self.repeat_after_s))

    def chain_for(self, district: str, kind: str) -> EscalationChain:
        return self.effective_book.chain_for(district, kind)

    def first_due_at(self, district: str, kind: str, opened_at: dt.datetime) -> dt.datetime | None:
        """When a dispatch of ``kind`` opened in ``district`` at ``opened_at`` first escalates."""
        return self.chain_for(district, kind).first_due_at(opened_at, self.calendar)


@dataclass(frozen=True, slots=True)
class DispatchState:
    id: int
    status: str  # "open" | "acknowledged" | "on_site" | "resolved"
    level: int
    due_at: dt.datetime | None
    created_at: dt.datetime
    kind: str = "sos"


@dataclass(frozen=True, slots=True)
class Escalation:
    dispatch_id: int
    new_level: int
    messages: tuple[Message, ...]
    next_due_at: dt.datetime | None
    skipped: tuple[int, ...] = ()
    """Steps (1-based levels) passed over because nobody in them could be reached."""


def _people(
    roles: tuple[str, ...],
    household: HouseholdView,
    contacts: DistrictContacts,
    staff: Contact | None,
) -> list[Contact]:
    found: dict[str, Contact | None] = {
        "caregiver": household.caregiver,
        "backup": household.backup,
        "guardian": household.guardian,
        "supervisor": contacts.supervisor,
        "department": contacts.department,
        "emergency": contacts.emergency,
        "staff": staff,
    }
    people: list[Contact] = []
    for role in roles:
        person = found[role]
        if person is None or not (person.phone or person.email):
            continue
        if role != person.role:
            person = Contact(role, person.name, person.phone, person.email)
        if all((p.phone, p.email) != (person.phone, person.email) for p in people):
            people.append(person)
    return people


def decide_escalation(
    dispatch: DispatchState, household: HouseholdView, *, now: dt.datetime, policy: EscalationPolicy
) -> Escalation | None:
    """The escalation due for ``dispatch`` at ``now``, or None."""
    if dispatch.status != "open" or dispatch.due_at is None or now < dispatch.due_at:
        return None
    steps = policy.chain_for(household.district, dispatch.kind).steps
    if dispatch.level >= len(steps):
        return None
    contacts = policy.effective_book.contacts_for(household.district)
    waited = int((now - dispatch.created_at).total_seconds())
    level = dispatch.level
    skipped: list[int] = []
    people: list[Contact] = []
    while level < len(steps) and not people:
        people = _people(steps[level].notify, household, contacts, policy.staff)
        level += 1
        if not people:
            skipped.append(level)
    if not people and policy.staff is not None:
        # Nobody in the whole chain could be reached: the district office must know.
        people = [policy.staff]
    messages = messages_worded(
        people,
        f"escalation-{level}",
        lambda role: wording.escalation_text(
            role,
            household_id=household.id,
            level=level,
            waited_s=waited,
            dispatch_id=dispatch.id,
            dashboard_url=policy.dashboard_url,
            kind=dispatch.kind,
        ),
    )
    next_due = steps[level].due_after(now, policy.calendar) if level < len(steps) else None
    return Escalation(dispatch.id, level, messages, next_due, tuple(skipped))


FAILED_ATTEMPTS_ESCALATE = 3
"""Transient failures in a row after which a notification counts as failed for escalation."""


def failure_brings_forward(
    *,
    dispatch_status: str,
    due_at: dt.datetime | None,
    permanent: bool,
    attempts: int,
    now: dt.datetime,
) -> dt.datetime | None:
    """The new ``due_at`` when a notification of the dispatch failed, or None to leave it.

    A permanent failure, or ``FAILED_ATTEMPTS_ESCALATE`` transient ones, of an open dispatch
    whose chain still has a step waiting makes that step due now.
    """
    if dispatch_status != "open" or due_at is None or due_at <= now:
        return None
    if not permanent and attempts < FAILED_ATTEMPTS_ESCALATE:
        return None
    return now

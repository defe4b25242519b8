"""A dispatch's life after it opens: a caregiver acknowledges it, then resolves it with an outcome.

Rules (the whole machine is the ``TRANSITIONS`` table below):

==============  ===============  ==============  ===========================================
from            event            to              what is recorded
==============  ===============  ==============  ===========================================
open            Acknowledge(by)  acknowledged    acknowledged_at = now, acknowledged_by = by
open            Resolve(...)     resolved        acknowledged_* too (resolving implies it),
                                                 resolved_at = now, outcome, note
acknowledged    Resolve(...)     resolved        resolved_at = now, outcome, note
==============  ===============  ==============  ===========================================

Everything else raises :class:`InvalidTransition`: a dispatch is acknowledged once (the first
caregiver to answer owns it), and a resolved dispatch is final — a new alarm opens a new dispatch.

Only an ``open`` dispatch escalates: whoever applies a transition out of ``open`` must also stop the
escalation timer (``next_escalation_at = None``); :attr:`Lifecycle.escalates` says so.

Pure: no clock, no database. ``now`` is an argument and must be timezone-aware.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    """Where a dispatch is; the values are those stored in ``dispatches.status``."""

    OPEN = "open"
    """Nobody has answered yet; escalation runs."""
    ACKNOWLEDGED = "acknowledged"
    """A caregiver said "I am on it"; escalation stops."""
    RESOLVED = "resolved"
    """Closed with an outcome; final."""


class Outcome(enum.StrEnum):
    """What the caregiver found or did, recorded when the dispatch is resolved."""

    VISITED_OK = "visited_ok"
    """Went to the home; the resident is all right."""
    PHONED_OK = "phoned_ok"
    """Reached the resident by phone; the resident is all right."""
    TAKEN_TO_HOSPITAL = "taken_to_hospital"
    """The resident was taken to hospital (by the caregiver, family or ambulance)."""
    EMERGENCY_SERVICES_CALLED = "emergency_services_called"
    """119 or 112 was called and handled it."""
    NO_ANSWER_ESCALATED = "no_answer_escalated"
    """Could not reach the resident; handed to the welfare office or emergency services."""
    FALSE_ALARM = "false_alarm"
    """Pressed or said by mistake, or a device fault; nobody needed help."""
    TEST = "test"
    """The resident or a technician was trying the SOS out; counted apart in reports."""
    OTHER = "other"
    """Anything else; say what in the note."""


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """A caregiver takes the dispatch."""

    by: str


@dataclass(frozen=True, slots=True)
class Resolve:
    """A caregiver closes the dispatch. ``by`` is recorded as the acknowledger if nobody was."""

    outcome: Outcome
    note: str | None = None
    by: str | None = None


Event = Acknowledge | Resolve

TRANSITIONS: dict[Status, dict[type[Acknowledge] | type[Resolve], Status]] = {
    Status.OPEN: {Acknowledge: Status.ACKNOWLEDGED, Resolve: Status.RESOLVED},
    Status.ACKNOWLEDGED: {Resolve: Status.RESOLVED},
    Status.RESOLVED: {},
}
"""``TRANSITIONS[state][type(event)]`` is the next state; a missing entry is not allowed."""

_VERB = {Acknowledge: "acknowledge", Resolve: "resolve"}


class InvalidTransition(ValueError):
    """The event is not allowed in the dispatch's current state; the message says why."""

    def __init__(self, state: Lifecycle, event: Event) -> None:
        verb = _VERB[type(event)]
        if state.status is Status.ACKNOWLEDGED:
            who = f" by {state.acknowledged_by}" if state.acknowledged_by else ""
            when = f" at {state.acknowledged_at.isoformat()}" if state.acknowledged_at else ""
            reason = f"it was already acknowledged{who}{when}"
        elif state.status is Status.RESOLVED:
            outcome = f" ({state.outcome})" if state.outcome else ""
            when = f" at {state.resolved_at.isoformat()}" if state.resolved_at else ""
            reason = f"it is already resolved{outcome}{when}"
        else:  # pragma: no cover - every event is allowed from open
            reason = f"it is {state.status}"
        super().__init__(f"cannot {verb} this dispatch: {reason}")
        self.status = state.status
        self.event = event


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The lifecycle fields of one dispatch, as stored in its row."""

    status: Status = Status.OPEN
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: dt.datetime | None = None
    outcome: Outcome | None = None
    note: str | None = None

    @property
    def escalates(self) -> bool:
        """Whether the escalation timer may run: only while nobody has answered."""
        return self.status is Status.OPEN

    def allows(self, event: Event) -> bool:
        return type(event) in TRANSITIONS[self.status]


def apply(state: Lifecycle, event: Event, *, now: dt.datetime) -> Lifecycle:
    """The lifecycle after ``event`` at ``now``; :class:`InvalidTransition` if not allowed."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    target = TRANSITIONS[state.status].get(type(event))
    if target is None:
        raise InvalidTransition(state, event)
    if isinstance(event, Acknowledge):
        by = _name(event.by, "by")
        return dataclasses.replace(state, status=target, acknowledged_at=now, acknowledged_by=by)
    by_resolver = _name(event.by, "by") if event.by is not None else None
    note = (event.note.strip() or None) if event.note is not None else None
    after = dataclasses.replace(
        state, status=target, resolved_at=now, outcome=Outcome(event.outcome), note=note
    )
    if state.acknowledged_at is None:
        after = dataclasses.replace(after, acknowledged_at=now, acknowledged_by=by_resolver)
    return after


def acknowledge(state: Lifecycle, *, by: str, now: dt.datetime) -> Lifecycle:
    """Shorthand for ``apply(state, Acknowledge(by), now=now)``."""
    return apply(state, Acknowledge(by), now=now)


def resolve(
    state: Lifecycle,
    *,
    outcome: Outcome,
    note: str | None = None,
    by: str | None = None,
    now: dt.datetime,
) -> Lifecycle:
    """Shorthand for ``apply(state, Resolve(outcome, note, by), now=now)``."""
    return apply(state, Resolve(outcome, note, by), now=now)


def _name(value: str, field: str) -> str:
    name = value.strip()
    if not name:
        raise ValueError(f"{field} must name the person (it was empty)")
    return name

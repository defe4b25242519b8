"""A dispatch's life after it opens: raised → notified → acknowledged → on site → resolved.

Rules (the whole machine is the ``TRANSITIONS`` table below):

==============  ===============  ==============  ===========================================
from            event            to              what is recorded
==============  ===============  ==============  ===========================================
open            Acknowledge(by)  acknowledged    acknowledged_at = now, acknowledged_by = by
open            ArriveOnSite(by) on_site         acknowledged_* too (arriving implies it),
                                                 on_site_at = now, on_site_by = by
open            Resolve(...)     resolved        acknowledged_* too (resolving implies it),
                                                 resolved_at = now, outcome, note, resolved_by;
                                                 not when the collector closed it by itself
                                                 (``by_itself``): nobody acknowledged it
acknowledged    ArriveOnSite(by) on_site         on_site_at = now, on_site_by = by
acknowledged    Resolve(...)     resolved        resolved_at = now, outcome, note, resolved_by
on_site         Resolve(...)     resolved        resolved_at = now, outcome, note, resolved_by
any             AddNote(...)     (unchanged)     nothing here: the note is kept in the history
==============  ===============  ==============  ===========================================

Everything else raises :class:`InvalidTransition`: a dispatch is acknowledged once (the first
caregiver to answer owns it), nobody arrives twice, and a resolved dispatch is final — a new alarm
opens a new dispatch (notes may still be added to it).

"Raised" and "notified" are both ``open``: a dispatch is raised when it is created and notified
when its first message was delivered; :func:`stage_of` tells them apart from that timestamp.

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
    ON_SITE = "on_site"
    """The caregiver is at the home."""
    RESOLVED = "resolved"
    """Closed with an outcome; final."""


class Stage(enum.StrEnum):
    """The five steps a caregiver and a supervisor see on a dispatch's page, in order."""

    RAISED = "raised"
    NOTIFIED = "notified"
    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    RESOLVED = "resolved"


class Outcome(enum.StrEnum):
    """What the caregiver found or did, recorded when the dispatch is resolved.

    The first eight are the outcomes districts count (:data:`PAGE_OUTCOMES`, offered on the
    caregiver's page); the rest are kept so dispatches resolved through the API stay readable.
    """

    SAFE = "safe"
    """The resident is all right."""
    HELP_GIVEN = "help_given"
    """The resident needed help and was given it."""
    DOOR_OPENED = "door_opened"
    """No answer: the door was opened with the police or 119."""
    TEST = "test"
    """The resident or a technician was trying the SOS out; counted apart in reports."""
    DEVICE_PROBLEM = "device_problem"
    """The device misbehaved; nobody asked for help."""
    DECEASED = "deceased"
    """The resident was found dead."""

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
    OTHER = "other"
    """Anything else; say what in the note."""


PAGE_OUTCOMES: tuple[Outcome, ...] = (
    Outcome.SAFE,
    Outcome.HELP_GIVEN,
    Outcome.TAKEN_TO_HOSPITAL,
    Outcome.DOOR_OPENED,
    Outcome.FALSE_ALARM,
    Outcome.TEST,
    Outcome.DEVICE_PROBLEM,
    Outcome.DECEASED,
)
"""The outcomes of the issue's list, in the order the caregiver's page offers them."""


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """A caregiver takes the dispatch."""

    by: str


@dataclass(frozen=True, slots=True)
class ArriveOnSite:
    """The caregiver is at the home."""

    by: str


@dataclass(frozen=True, slots=True)
class AddNote:
    """A note on the dispatch; changes no state and is allowed in every state."""

    note: str
    by: str


@dataclass(frozen=True, slots=True)
class Resolve:
    """A caregiver closes the dispatch. ``by`` is recorded as the acknowledger if nobody was."""

    outcome: Outcome
    note: str | None = None
    by: str | None = None
    by_itself: bool = False
    """The collector closed it with nobody having answered (the device came back): no
    acknowledgement is recorded, so the reports' acknowledgement times count people only."""


Event = Acknowledge | ArriveOnSite | Resolve | AddNote
EventType = type[Acknowledge] | type[ArriveOnSite] | type[Resolve] | type[AddNote]

TRANSITIONS: dict[Status, dict[EventType, Status]] = {
    Status.OPEN: {
        Acknowledge: Status.ACKNOWLEDGED,
        ArriveOnSite: Status.ON_SITE,
        Resolve: Status.RESOLVED,
        AddNote: Status.OPEN,
    },
    Status.ACKNOWLEDGED: {
        ArriveOnSite: Status.ON_SITE,
        Resolve: Status.RESOLVED,
        AddNote: Status.ACKNOWLEDGED,
    },
    Status.ON_SITE: {Resolve: Status.RESOLVED, AddNote: Status.ON_SITE},
    Status.RESOLVED: {AddNote: Status.RESOLVED},
}
"""``TRANSITIONS[state][type(event)]`` is the next state; a missing entry is not allowed."""

_VERB: dict[EventType, str] = {
    Acknowledge: "acknowledge",
    ArriveOnSite: "mark on site",
    Resolve: "resolve",
    AddNote: "add a note to",
}


class InvalidTransition(ValueError):
    """The event is not allowed in the dispatch's current state; the message says why."""

    def __init__(self, state: Lifecycle, event: Event) -> None:
        verb = _VERB[type(event)]
        if state.status is Status.ACKNOWLEDGED:
            who = f" by {state.acknowledged_by}" if state.acknowledged_by else ""
            when = f" at {state.acknowledged_at.isoformat()}" if state.acknowledged_at else ""
            reason = f"it was already acknowledged{who}{when}"
        elif state.status is Status.ON_SITE:
            who = f" ({state.on_site_by})" if state.on_site_by else ""
            when = f" since {state.on_site_at.isoformat()}" if state.on_site_at else ""
            reason = f"the caregiver{who} is already on site{when}"
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
    on_site_at: dt.datetime | None = None
    on_site_by: str | None = None
    resolved_by: str | None = None

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
    if isinstance(event, AddNote):
        _name(event.by, "by")
        if not event.note.strip():
            raise ValueError("note is empty")
        return state
    if isinstance(event, Acknowledge):
        by = _name(event.by, "by")
        return dataclasses.replace(state, status=target, acknowledged_at=now, acknowledged_by=by)
    if isinstance(event, ArriveOnSite):
        by = _name(event.by, "by")
        after = dataclasses.replace(state, status=target, on_site_at=now, on_site_by=by)
        if state.acknowledged_at is None:
            after = dataclasses.replace(after, acknowledged_at=now, acknowledged_by=by)
        return after
    by_resolver = _name(event.by, "by") if event.by is not None else None
    note = (event.note.strip() or None) if event.note is not None else None
    after = dataclasses.replace(
        state,
        status=target,
        resolved_at=now,
        outcome=Outcome(event.outcome),
        note=note,
        resolved_by=by_resolver,
    )
    if state.acknowledged_at is None and not event.by_itself:
        after = dataclasses.replace(after, acknowledged_at=now, acknowledged_by=by_resolver)
    return after


def stage_of(state: Lifecycle, *, notified_at: dt.datetime | None) -> Stage:
    """The step a dispatch has reached; ``notified_at`` is when its first message was delivered."""
    if state.status is Status.OPEN:
        return Stage.NOTIFIED if notified_at is not None else Stage.RAISED
    return Stage(state.status.value)


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a dispatch's timeline: which stage, when, and by whom (if a person)."""

    stage: Stage
    at: dt.datetime
    by: str | None = None


def timeline(
    state: Lifecycle, *, raised_at: dt.datetime, notified_at: dt.datetime | None
) -> tuple[Step, ...]:
    """The stages reached so far, in order, each with its time and who did it."""
    steps = [Step(Stage.RAISED, raised_at)]
    if notified_at is not None:
        steps.append(Step(Stage.NOTIFIED, notified_at))
    if state.acknowledged_at is not None:
        steps.append(Step(Stage.ACKNOWLEDGED, state.acknowledged_at, state.acknowledged_by))
    if state.on_site_at is not None:
        steps.append(Step(Stage.ON_SITE, state.on_site_at, state.on_site_by))
    if state.resolved_at is not None:
        steps.append(Step(Stage.RESOLVED, state.resolved_at, state.resolved_by))
    return tuple(steps)


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

"""Device supervision: a sick or silent *device* opens a technician ticket, not a dispatch.

Rules (each row is one :class:`TicketKind`; a ticket opens when its condition holds and no
ticket of that kind is open for the device, and closes when the condition has cleared):

=================  ===========================================================================
ticket             condition
=================  ===========================================================================
offline            the broker published the device's last will (``state: offline``), or no
                   heartbeat for ``missed_heartbeats`` × the heartbeat interval
audio_overruns     more than ``max_overruns_per_h`` dropped audio blocks an hour, over each of
                   the last ``sick_heartbeats`` heartbeats
outbox_backlog     ``outbox_depth`` above ``max_outbox_depth`` on each of the last
                   ``sick_heartbeats`` heartbeats (events are stuck on the device)
microphone_silent  no voice activity or interaction for ``mic_silent_days`` while the PIR saw
                   motion within the last day (the resident is about, the microphone hears
                   nothing: unplugged, muted or broken)
=================  ===========================================================================

A home whose devices are all offline for ``offline_dispatch_after_s`` also opens a
``device_offline`` **dispatch** for its caregiver (once per outage: the dispatch is linked to the
home's open ``offline`` tickets; :func:`home_offline_since`, :func:`offline_dispatch_due`). When a
device comes back, :func:`when_device_back` says what becomes of that dispatch: still open, it is
resolved as a device problem (nobody needs to go); already taken by a caregiver, it gets a note and
stays theirs to close.

Offline and silence: while a device is offline its home's *learned routine* must not flag
(no life signs are expected from a dead device), but the fixed period still runs: a device
offline that long with no other life sign (an outside signal, a check-in) counts as silence,
as a switched-off phone does in the district programmes. :func:`silence_while_offline` says
which limit applies and relabels the reason.

Pure: no clock, no I/O; ``now`` is an argument (aware datetimes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass

from collector.domain.silence import SilenceFlag, SilenceLimit
from firmware_config.messages import Heartbeat


class TicketKind(enum.StrEnum):
    """Why a technician is asked to look at a device."""

    OFFLINE = "offline"
    """Last will received, or heartbeats stopped."""
    AUDIO_OVERRUNS = "audio_overruns"
    """The agent keeps dropping audio: the Pi is overloaded or the microphone misbehaves."""
    OUTBOX_BACKLOG = "outbox_backlog"
    """Events wait on the device's disk and are not being delivered or confirmed."""
    MICROPHONE_SILENT = "microphone_silent"
    """No voice activity for days while motion continues."""


@dataclass(frozen=True, slots=True)
class SupervisionSettings:
    """Thresholds for technician tickets; every field has its unit in the name."""

    heartbeat_interval_s: float = 300.0
    missed_heartbeats: int = 3
    max_overruns_per_h: float = 60.0
    max_outbox_depth: int = 20
    sick_heartbeats: int = 3
    mic_silent_days: float = 3.0
    motion_recent_h: float = 24.0
    offline_dispatch_after_s: float = 4 * 3600.0
    """A home with no device up this long gets a ``device_offline`` dispatch; 0 turns it off."""

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s <= 0 or self.missed_heartbeats < 1 or self.sick_heartbeats < 1:
            raise ValueError(
                "heartbeat_interval_s > 0, missed_heartbeats >= 1, sick_heartbeats >= 1"
            )
        if self.offline_dispatch_after_s < 0:
            raise ValueError("offline_dispatch_after_s must not be negative (0 turns it off)")

    @property
    def offline_after_s(self) -> float:
        return self.heartbeat_interval_s * self.missed_heartbeats


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """What the collector remembers about a device between heartbeats (one row per device)."""

    device_id: str
    household_id: str
    state: str = "online"  # "online" | "offline", from the retained state / last will
    state_at: dt.datetime | None = None
    first_heartbeat_at: dt.datetime | None = None
    last_heartbeat_at: dt.datetime | None = None
    last_overruns: int | None = None
    last_uptime_s: float | None = None
    sick_overrun_streak: int = 0
    sick_outbox_streak: int = 0
    last_speech_at: dt.datetime | None = None
    last_motion_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatFacts:
    """The heartbeat fields supervision reads (see ``firmware_config.messages.Heartbeat``)."""

    interval_s: float
    uptime_s: float
    audio_overruns: int
    """Cumulative since the agent started; a smaller uptime means it restarted."""
    outbox_depth: int
    motion_count: int
    speech_s: float
    interactions: int


def facts_of(heartbeat: Heartbeat) -> HeartbeatFacts:
    """The fields supervision reads, from a heartbeat as received."""
    return HeartbeatFacts(
        interval_s=heartbeat.interval_s,
        uptime_s=heartbeat.uptime_s,
        audio_overruns=heartbeat.audio_overruns,
        outbox_depth=heartbeat.outbox_depth,
        motion_count=heartbeat.motion_count,
        speech_s=heartbeat.speech_s,
        interactions=heartbeat.interactions,
    )


def observe_heartbeat(
    health: DeviceHealth, beat: HeartbeatFacts, *, now: dt.datetime, settings: SupervisionSettings
) -> DeviceHealth:
    """The device's health after a heartbeat received at ``now``."""
    restarted = health.last_uptime_s is None or beat.uptime_s < health.last_uptime_s
    previous = 0 if restarted or health.last_overruns is None else health.last_overruns
    new_overruns = max(0, beat.audio_overruns - previous)
    hours = max(beat.interval_s, 1.0) / 3600.0
    overrun_sick = new_overruns / hours > settings.max_overruns_per_h
    outbox_sick = beat.outbox_depth > settings.max_outbox_depth
    return dataclasses.replace(
        health,
        state="online",
        state_at=health.state_at if health.state == "online" else now,
        first_heartbeat_at=health.first_heartbeat_at or now,
        last_heartbeat_at=now,
        last_overruns=beat.audio_overruns,
        last_uptime_s=beat.uptime_s,
        sick_overrun_streak=health.sick_overrun_streak + 1 if overrun_sick else 0,
        sick_outbox_streak=health.sick_outbox_streak + 1 if outbox_sick else 0,
        last_speech_at=now if beat.speech_s > 0 or beat.interactions > 0 else health.last_speech_at,
        last_motion_at=now if beat.motion_count > 0 else health.last_motion_at,
    )


def observe_state(health: DeviceHealth, state: str, *, now: dt.datetime) -> DeviceHealth:
    """The retained state or the last will (``offline``) arrived."""
    if state not in ("online", "offline"):
        raise ValueError(f"device state must be 'online' or 'offline', got {state!r}")
    if state == health.state and health.state_at is not None:
        return health
    return dataclasses.replace(health, state=state, state_at=now)


def merge_stored(
    health: DeviceHealth,
    *,
    online: bool,
    state_at: dt.datetime | None,
    last_heartbeat_at: dt.datetime | None,
) -> DeviceHealth:
    """``health`` brought up to what the store knows (another collector heard the device).

    With a shared subscription each collector hears only its share of a device's messages, so
    its own view can say "offline" (heartbeats missed, or the last will it alone heard) while
    the store holds a newer heartbeat or state. Only newer facts are taken.
    """
    if last_heartbeat_at is not None and (
        health.last_heartbeat_at is None or last_heartbeat_at > health.last_heartbeat_at
    ):
        health = dataclasses.replace(health, last_heartbeat_at=last_heartbeat_at)
    if state_at is not None and (health.state_at is None or state_at > health.state_at):
        health = dataclasses.replace(
            health, state="online" if online else "offline", state_at=state_at
        )
    return health


@dataclass(frozen=True, slots=True)
class OpenTicket:
    kind: TicketKind
    device_id: str
    household_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class CloseTicket:
    kind: TicketKind
    device_id: str
    detail: str


def is_offline(health: DeviceHealth, *, now: dt.datetime, settings: SupervisionSettings) -> bool:
    if health.state == "offline":
        return True
    if health.last_heartbeat_at is None:
        return False  # never heard from yet: provisioning, not a fault
    return (now - health.last_heartbeat_at).total_seconds() >= settings.offline_after_s


def offline_since(
    health: DeviceHealth, *, now: dt.datetime, settings: SupervisionSettings
) -> dt.datetime | None:
    """When the device went offline (last will, or its last heartbeat), or None if online."""
    if not is_offline(health, now=now, settings=settings):
        return None
    if health.state == "offline" and health.state_at is not None:
        return health.state_at
    return health.last_heartbeat_at


def decide_tickets(
    health: DeviceHealth,
    open_kinds: frozenset[TicketKind],
    *,
    now: dt.datetime,
    settings: SupervisionSettings,
) -> list[OpenTicket | CloseTicket]:
    """Tickets to open and close for one device at ``now``."""
    conditions: dict[TicketKind, str | None] = {}
    since = offline_since(health, now=now, settings=settings)
    conditions[TicketKind.OFFLINE] = (
        None
        if since is None
        else ("last will received" if health.state == "offline" else "heartbeats stopped")
        + f" at {since:%Y-%m-%d %H:%M} UTC"
    )
    conditions[TicketKind.AUDIO_OVERRUNS] = (
        f"over {settings.max_overruns_per_h:g} dropped audio blocks an hour, "
        f"{health.sick_overrun_streak} heartbeats running"
        if health.sick_overrun_streak >= settings.sick_heartbeats
        else None
    )
    conditions[TicketKind.OUTBOX_BACKLOG] = (
        f"more than {settings.max_outbox_depth} events waiting on the device, "
        f"{health.sick_outbox_streak} heartbeats running"
        if health.sick_outbox_streak >= settings.sick_heartbeats
        else None
    )
    conditions[TicketKind.MICROPHONE_SILENT] = _microphone_silent(health, now, settings)
    decisions: list[OpenTicket | CloseTicket] = []
    for kind, detail in conditions.items():
        if detail is not None and kind not in open_kinds:
            decisions.append(OpenTicket(kind, health.device_id, health.household_id, detail))
        elif detail is None and kind in open_kinds:
            decisions.append(CloseTicket(kind, health.device_id, "condition cleared"))
    return decisions


def _microphone_silent(
    health: DeviceHealth, now: dt.datetime, settings: SupervisionSettings
) -> str | None:
    window = dt.timedelta(days=settings.mic_silent_days)
    if health.first_heartbeat_at is None or now - health.first_heartbeat_at < window:
        return None  # not watched long enough to say
    if health.last_speech_at is not None and now - health.last_speech_at < window:
        return None
    recent = dt.timedelta(hours=settings.motion_recent_h)
    if health.last_motion_at is None or now - health.last_motion_at > recent:
        return None  # nobody moving either: that is the silence detector's business
    heard = "never" if health.last_speech_at is None else f"{health.last_speech_at:%Y-%m-%d %H:%M}"
    return f"no voice activity since {heard} UTC while motion continues"


def silence_while_offline(
    flag: SilenceFlag, offline_from: dt.datetime | None
) -> SilenceFlag | None:
    """Apply the device's state to a silence flag.

    Online: the flag stands. Offline when the quiet stretch began or since: a routine flag is
    dropped (the device, not the resident, went quiet; the technician ticket covers it and the
    fixed period still runs), a period flag stands, relabelled ``device_offline`` so staff see
    why nothing was heard.
    """
    if offline_from is None:
        return flag
    if flag.reason.limit is SilenceLimit.ROUTINE:
        return None
    reason = dataclasses.replace(flag.reason, limit=SilenceLimit.DEVICE_OFFLINE)
    return dataclasses.replace(flag, reason=reason)


def home_offline_since(
    devices: list[DeviceHealth], *, now: dt.datetime, settings: SupervisionSettings
) -> dt.datetime | None:
    """When the home lost its last device, or None while any of its devices is up."""
    since: dt.datetime | None = None
    for health in devices:
        went = offline_since(health, now=now, settings=settings)
        if went is None:
            return None
        since = went if since is None or went > since else since
    return since


def offline_dispatch_due(
    home_since: dt.datetime | None, *, now: dt.datetime, settings: SupervisionSettings
) -> bool:
    """Whether a home offline since ``home_since`` is due its ``device_offline`` dispatch."""
    if home_since is None or settings.offline_dispatch_after_s <= 0:
        return False
    return (now - home_since).total_seconds() >= settings.offline_dispatch_after_s


class WhenBack(enum.StrEnum):
    """What becomes of a home's ``device_offline`` dispatch when a device comes back."""

    RESOLVE = "resolve"
    """Nobody took it yet: resolved as a device problem, and the caregiver told."""
    NOTE = "note"
    """A caregiver has it (acknowledged or on site), or the home was silent too: a note, and
    theirs to close."""
    NOTHING = "nothing"
    """Already resolved."""


def when_device_back(dispatch_status: str, *, silent_too: bool = False) -> WhenBack:
    """``silent_too``: the dispatch also stands for the home's silence (one was added to the
    other); a device back says nothing of the resident, so a person must close it."""
    if dispatch_status == "open":
        return WhenBack.NOTE if silent_too else WhenBack.RESOLVE
    if dispatch_status in ("acknowledged", "on_site"):
        return WhenBack.NOTE
    return WhenBack.NOTHING

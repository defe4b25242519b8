"""Device supervision: technician tickets from the last will and heartbeats, and offline silence."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from collector.domain.silence import SilenceLimit, decide_silence
from collector.domain.silence_routine import RoutineObservations, RoutineSettings
from collector.domain.silence_schedule import SilenceTracker
from collector.domain.supervision import (
    CloseTicket,
    DeviceHealth,
    HeartbeatFacts,
    OpenTicket,
    SupervisionSettings,
    TicketKind,
    decide_tickets,
    merge_stored,
    observe_heartbeat,
    observe_state,
    offline_since,
    silence_while_offline,
)

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
S = SupervisionSettings(heartbeat_interval_s=300, missed_heartbeats=3, sick_heartbeats=2)
NONE: frozenset[TicketKind] = frozenset()


def beat(**overrides: float) -> HeartbeatFacts:
    values: dict[str, float] = {
        "interval_s": 300,
        "uptime_s": 1000,
        "audio_overruns": 0,
        "outbox_depth": 0,
        "motion_count": 1,
        "speech_s": 2.0,
        "interactions": 0,
    }
    values.update(overrides)
    return HeartbeatFacts(**values)  # type: ignore[arg-type]


def healthy(at: dt.datetime = T0) -> DeviceHealth:
    return observe_heartbeat(DeviceHealth("d1", "h1"), beat(), now=at, settings=S)


def kinds(decisions: list[OpenTicket | CloseTicket]) -> set[tuple[str, TicketKind]]:
    return {(type(d).__name__, d.kind) for d in decisions}


def test_a_healthy_device_opens_nothing() -> None:
    assert decide_tickets(healthy(), NONE, now=T0 + dt.timedelta(minutes=5), settings=S) == []


def test_last_will_opens_an_offline_ticket_and_coming_back_closes_it() -> None:
    gone = observe_state(healthy(), "offline", now=T0 + dt.timedelta(minutes=1))
    opened = decide_tickets(gone, NONE, now=T0 + dt.timedelta(minutes=2), settings=S)
    assert kinds(opened) == {("OpenTicket", TicketKind.OFFLINE)}
    assert "last will" in opened[0].detail  # type: ignore[union-attr]
    back = observe_heartbeat(gone, beat(uptime_s=10), now=T0 + dt.timedelta(minutes=9), settings=S)
    closed = decide_tickets(
        back, frozenset({TicketKind.OFFLINE}), now=T0 + dt.timedelta(minutes=9), settings=S
    )
    assert kinds(closed) == {("CloseTicket", TicketKind.OFFLINE)}


def test_missed_heartbeats_count_as_offline_after_the_configured_number() -> None:
    device = healthy()
    just_before = T0 + dt.timedelta(seconds=3 * 300 - 1)
    assert decide_tickets(device, NONE, now=just_before, settings=S) == []
    late = decide_tickets(device, NONE, now=T0 + dt.timedelta(seconds=900), settings=S)
    assert kinds(late) == {("OpenTicket", TicketKind.OFFLINE)}
    assert offline_since(device, now=T0 + dt.timedelta(hours=1), settings=S) == T0
    # An open ticket is not opened twice.
    assert decide_tickets(device, frozenset({TicketKind.OFFLINE}), now=late_at(), settings=S) == []


def late_at() -> dt.datetime:
    return T0 + dt.timedelta(hours=2)


def test_audio_overruns_open_a_ticket_only_when_they_persist_and_survive_a_restart() -> None:
    device = healthy()
    at = T0
    # 10 dropped blocks per 5 min = 120/h > 60/h.
    for i, total in enumerate((10, 20)):
        at += dt.timedelta(minutes=5)
        device = observe_heartbeat(
            device, beat(audio_overruns=total, uptime_s=1300 + 300 * i), now=at, settings=S
        )
    assert kinds(decide_tickets(device, NONE, now=at, settings=S)) == {
        ("OpenTicket", TicketKind.AUDIO_OVERRUNS)
    }
    # The agent restarts (uptime falls, counter restarts at 0): 3 new overruns are few.
    at += dt.timedelta(minutes=5)
    device = observe_heartbeat(device, beat(audio_overruns=3, uptime_s=30), now=at, settings=S)
    assert device.sick_overrun_streak == 0
    assert kinds(
        decide_tickets(device, frozenset({TicketKind.AUDIO_OVERRUNS}), now=at, settings=S)
    ) == {("CloseTicket", TicketKind.AUDIO_OVERRUNS)}


def test_a_growing_outbox_opens_a_ticket() -> None:
    device = healthy()
    device = observe_heartbeat(device, beat(outbox_depth=50), now=T0, settings=S)
    assert decide_tickets(device, NONE, now=T0, settings=S) == []  # one heartbeat is a blip
    device = observe_heartbeat(device, beat(outbox_depth=60), now=T0, settings=S)
    assert kinds(decide_tickets(device, NONE, now=T0, settings=S)) == {
        ("OpenTicket", TicketKind.OUTBOX_BACKLOG)
    }


def test_a_microphone_silent_for_days_while_motion_continues() -> None:
    device = healthy(T0)
    at = T0
    for _ in range(4 * 24):  # four days of hourly heartbeats: motion, never a voice
        at += dt.timedelta(hours=1)
        device = observe_heartbeat(
            device, beat(speech_s=0, uptime_s=at.timestamp()), now=at, settings=S
        )
    opened = decide_tickets(device, NONE, now=at, settings=S)
    assert kinds(opened) == {("OpenTicket", TicketKind.MICROPHONE_SILENT)}
    # Without motion either it is not the microphone's ticket (silence handles the home).
    still = dataclasses.replace(device, last_motion_at=T0)
    assert decide_tickets(still, NONE, now=at, settings=S) == []


def test_bad_state_is_refused() -> None:
    with pytest.raises(ValueError, match="online' or 'offline'"):
        observe_state(healthy(), "asleep", now=T0)


def test_offline_device_turns_a_period_flag_into_device_offline_and_drops_a_routine_flag() -> None:
    flag = decide_silence(
        "h1",
        last_sign_at=T0,
        last_kind=None,
        period_h=10,
        routine=None,
        now=T0 + dt.timedelta(hours=11),
    )
    assert flag is not None
    assert silence_while_offline(flag, None) is flag
    relabelled = silence_while_offline(flag, T0 + dt.timedelta(hours=1))
    assert relabelled is not None and relabelled.reason.limit is SilenceLimit.DEVICE_OFFLINE
    routine_flag = dataclasses.replace(
        flag, reason=dataclasses.replace(flag.reason, limit=SilenceLimit.ROUTINE)
    )
    assert silence_while_offline(routine_flag, T0) is None


def test_tracker_falls_back_to_the_period_while_the_device_is_offline() -> None:
    settings = RoutineSettings(
        learning_days=0, margin_factor=1, margin_h=1, smooth_slots=0, utc_offset_h=0
    )
    observations = RoutineObservations(settings)
    day = T0.replace(hour=0).timestamp()
    observations.observe_signs(day + i * 1800 for i in range(48 * 3))  # a sign every 30 min
    routine = observations.routine()
    assert routine is not None
    tracker = SilenceTracker()
    last = T0.timestamp() + 3 * 86400
    tracker.life_sign("h1", last, period_h=10)
    tracker.configure("h1", period_h=10, routine=routine, now_s=last)
    flags = tracker.due(last + 2 * 3600)
    assert [f.reason.limit for f in flags] == [SilenceLimit.ROUTINE]
    tracker.suspend_routine("h1")  # the device turned out to be offline
    assert tracker.due(last + 9 * 3600) == []
    flags = tracker.due(last + 10 * 3600)
    assert [f.reason.limit for f in flags] == [SilenceLimit.DEVICE_OFFLINE]
    tracker.life_sign("h1", last + 11 * 3600)  # an outside signal: the phone was used
    tracker.resume_routine("h1")
    deadline = tracker.deadline("h1")
    assert deadline is not None and deadline.limit is SilenceLimit.ROUTINE


def test_stored_facts_are_merged_only_when_newer() -> None:
    t0 = T0
    later = t0 + dt.timedelta(minutes=5)
    health = DeviceHealth("d", "h", state="offline", state_at=t0, last_heartbeat_at=t0)
    merged = merge_stored(health, online=True, state_at=later, last_heartbeat_at=later)
    assert (merged.state, merged.state_at, merged.last_heartbeat_at) == ("online", later, later)
    older = t0 - dt.timedelta(minutes=5)
    assert merge_stored(health, online=True, state_at=older, last_heartbeat_at=older) == health
    assert merge_stored(health, online=True, state_at=None, last_heartbeat_at=None) == health

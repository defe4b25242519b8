"""What a batch of device messages means for the store, decided without touching it.

Rules:

* A device clock is trusted only within a plausible window around the time the collector received
  the message: at most ``max_ahead_s`` in the future (clock drift, no NTP yet) and at most
  ``max_behind_s`` in the past (an SOS held on disk through a long outage is legitimately old).
  Outside it the device time is replaced by the receive time, and the reason says by how much the
  clock was off, so a technician can mend the device.
* Heartbeats are idempotent: a device's latest state is the one with the highest ``seq`` (the
  outbox hands out strictly increasing numbers, also across restarts), so redelivery or reordering
  changes nothing. Counters of one batch are summed per device and day for the staff's rollups.
* A heartbeat is a life sign when it counted motion, speech, an interaction or a button press.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

KST = dt.timezone(dt.timedelta(hours=9), "KST")
"""Rollup days are Korean calendar days (Korea keeps no daylight saving time)."""


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    max_ahead_s: float = 300.0
    max_behind_s: float = 30 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class DeviceTime:
    at: dt.datetime
    """The time to record: the device's own, or the receive time when that was implausible."""
    offset_s: float
    """Device time minus receive time, as the device claimed it."""
    correction: str | None
    """Why the device time was not used; None when it was."""


def device_time(device_ts: float, received_at: dt.datetime, policy: ClockPolicy) -> DeviceTime:
    """The time a message is recorded at, and whether the device clock had to be overruled."""
    offset = device_ts - received_at.timestamp()
    if offset > policy.max_ahead_s:
        return DeviceTime(received_at, offset, f"device clock {offset:.0f} s ahead")
    if -offset > policy.max_behind_s:
        return DeviceTime(received_at, offset, f"device clock {-offset:.0f} s behind")
    return DeviceTime(dt.datetime.fromtimestamp(device_ts, dt.UTC), offset, None)


@dataclass(frozen=True, slots=True)
class HeartbeatFacts:
    """The parts of one validated heartbeat the decisions need."""

    device_id: str
    seq: int
    at: dt.datetime
    motion_count: int
    speech_s: float
    wake_word_count: int
    interactions: int
    button_presses: int
    audio_overruns: int
    outbox_depth: int
    uptime_s: float
    agent_version: str

    @property
    def life_sign_kind(self) -> str | None:
        """The strongest life sign this heartbeat carries (a ``LifeSignKind`` value), if any."""
        if self.button_presses:
            return "button"
        if self.interactions or self.wake_word_count:
            return "interaction"
        if self.motion_count:
            return "motion"
        if self.speech_s > 0:
            return "speech"
        return None

    @property
    def is_life_sign(self) -> bool:
        return self.life_sign_kind is not None


@dataclass(frozen=True, slots=True)
class DeviceLatest:
    """What one batch changes in a device's latest state."""

    device_id: str
    seq: int
    heard_at: dt.datetime
    life_sign_at: dt.datetime | None
    agent_version: str
    outbox_depth: int
    audio_overruns: int


@dataclass(frozen=True, slots=True)
class DailyRollup:
    """Counters one batch adds to a device's day."""

    device_id: str
    day: dt.date
    heartbeats: int
    motion_count: int
    speech_s: float
    wake_word_count: int
    interactions: int
    button_presses: int
    max_outbox_depth: int
    last_seq: int


def latest_per_device(heartbeats: Iterable[HeartbeatFacts]) -> list[DeviceLatest]:
    """Each device's state after this batch: the highest ``seq`` wins, life sign is the latest."""
    best: dict[str, HeartbeatFacts] = {}
    alive: dict[str, dt.datetime] = {}
    heard: dict[str, dt.datetime] = {}
    for hb in heartbeats:
        current = best.get(hb.device_id)
        if current is None or hb.seq > current.seq:
            best[hb.device_id] = hb
        if hb.device_id not in heard or hb.at > heard[hb.device_id]:
            heard[hb.device_id] = hb.at
        if hb.is_life_sign and (hb.device_id not in alive or hb.at > alive[hb.device_id]):
            alive[hb.device_id] = hb.at
    return [
        DeviceLatest(
            device_id,
            hb.seq,
            heard[device_id],
            alive.get(device_id),
            hb.agent_version,
            hb.outbox_depth,
            hb.audio_overruns,
        )
        for device_id, hb in best.items()
    ]


def daily_rollups(heartbeats: Iterable[HeartbeatFacts]) -> list[DailyRollup]:
    """Counters summed per device and Korean calendar day."""
    sums: dict[tuple[str, dt.date], list[float]] = {}
    for hb in heartbeats:
        key = (hb.device_id, hb.at.astimezone(KST).date())
        row = sums.get(key)
        if row is None:
            sums[key] = [
                1,
                hb.motion_count,
                hb.speech_s,
                hb.wake_word_count,
                hb.interactions,
                hb.button_presses,
                hb.outbox_depth,
                hb.seq,
            ]
            continue
        row[0] += 1
        row[1] += hb.motion_count
        row[2] += hb.speech_s
        row[3] += hb.wake_word_count
        row[4] += hb.interactions
        row[5] += hb.button_presses
        row[6] = max(row[6], hb.outbox_depth)
        row[7] = max(row[7], hb.seq)
    return [
        DailyRollup(
            device,
            day,
            int(r[0]),
            int(r[1]),
            float(r[2]),
            int(r[3]),
            int(r[4]),
            int(r[5]),
            int(r[6]),
            int(r[7]),
        )
        for (device, day), r in sums.items()
    ]

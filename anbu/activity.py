"""A resident's day, for the fleet simulator: what a home's sensors would count, hour by hour.

Pure: every function takes the simulated time (seconds since the epoch) and a random generator,
and returns numbers; nothing here reads a clock or does I/O.

The shape, in the home's local time (Korea, UTC+9, no daylight saving):

========================  ===================  ============================================
hours                     motion episodes/h    voice activity (TV, phone, talking), s/h
========================  ===================  ============================================
asleep (bed → wake)       0.3 (night toilet)   0
first 3 h after waking    14                   150
until 13:00               8                    90
13:00–15:00 (rest, nap)   3                    30
15:00–18:00               7                    90
18:00 → bed               9                    240
========================  ===================  ============================================

Each resident scales that by their own ``activity`` and ``talk`` factors and has their own
waking and bed times, drawn once from the home's number and the seed, so a home behaves the same
in every run. Wake words and recognised phrases are rare and only happen while awake.

A check-in ("are you all right?" from the speaker, :func:`checkin_reply`) is answered while the
resident is awake, after a few seconds, except one time in ten (in the bathroom, the TV loud);
asleep, nobody answers. The model has no outings: the resident is always home.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

LOCAL_UTC_OFFSET_S = 9 * 3600
"""Korea Standard Time; the country has no daylight saving."""

_NIGHT_MOTION_PER_H = 0.3
# (until local hour, motion episodes per hour, voice activity seconds per hour) while awake; the
# first row ends three hours after the resident's own waking time.
_DAY = (
    (13.0, 8.0, 90.0),
    (15.0, 3.0, 30.0),
    (18.0, 7.0, 90.0),
    (24.0, 9.0, 240.0),
)
_MORNING = (3.0, 14.0, 150.0)
_WAKE_WORDS_PER_AWAKE_H = 0.15
_INTERACTIONS_PER_WAKE_WORD = 1.3
_CHECKIN_MISSED_WHILE_AWAKE = 0.1
_CHECKIN_REPLY_S = (2.0, 15.0)
"""Seconds from the prompt to an awake resident's answer (uniform)."""


@dataclass(frozen=True, slots=True)
class Resident:
    """One resident's habits."""

    wake_h: float
    """Local hour they get up (about 5:00-7:30)."""
    bed_h: float
    """Local hour they go to bed (about 20:30-23:00)."""
    activity: float
    """Multiplies motion: frail and house-bound residents move less (0.3-1.6)."""
    talk: float
    """Multiplies voice activity: TV all evening or a quiet house (0.2-2.0)."""


@dataclass(frozen=True, slots=True)
class Counts:
    """What a home's sensors counted over one stretch of time."""

    motion_count: int = 0
    speech_s: float = 0.0
    wake_word_count: int = 0
    interactions: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.motion_count + other.motion_count,
            round(self.speech_s + other.speech_s, 1),
            self.wake_word_count + other.wake_word_count,
            self.interactions + other.interactions,
        )


def resident_for(seed: int, home_number: int) -> Resident:
    """The resident of home ``home_number``: the same habits for the same seed, every run."""
    rng = random.Random(f"anbu-sim:{seed}:{home_number}")  # noqa: S311 - a simulation, not security
    return Resident(
        wake_h=round(rng.uniform(5.0, 7.5), 2),
        bed_h=round(rng.uniform(20.5, 23.0), 2),
        activity=round(rng.lognormvariate(0.0, 0.35), 3),
        talk=round(rng.lognormvariate(0.0, 0.5), 3),
    )


def local_hour(at_s: float) -> float:
    """The hour of the day (0 ≤ h < 24) in the home's local time."""
    return ((at_s + LOCAL_UTC_OFFSET_S) % 86400) / 3600


def is_awake(resident: Resident, hour: float) -> bool:
    return resident.wake_h <= hour < resident.bed_h


def rates_at(resident: Resident, hour: float) -> tuple[float, float]:
    """Expected (motion episodes per hour, voice seconds per hour) at local ``hour``."""
    if not is_awake(resident, hour):
        return _NIGHT_MOTION_PER_H * resident.activity, 0.0
    morning_h, motion, speech = _MORNING
    if hour >= resident.wake_h + morning_h:
        motion, speech = next((m, s) for until, m, s in _DAY if hour < until)
    return motion * resident.activity, speech * resident.talk


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: exact (Knuth) for small means, a rounded normal beyond 30."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def counts_between(
    rng: random.Random, resident: Resident, start_s: float, end_s: float, *, step_s: float = 900
) -> Counts:
    """Draw what the sensors counted from ``start_s`` to ``end_s`` (simulated epoch seconds).

    The stretch is cut at ``step_s`` so that an interval spanning waking up, or a coalesced
    heartbeat covering hours, follows the day's shape.
    """
    if end_s <= start_s:
        return Counts()
    motion_mean = speech_mean = awake_h = 0.0
    t = start_s
    while t < end_s:
        dt_s = min(step_s, end_s - t)
        hour = local_hour(t + dt_s / 2)
        motion_per_h, speech_per_h = rates_at(resident, hour)
        motion_mean += motion_per_h * dt_s / 3600
        speech_mean += speech_per_h * dt_s / 3600
        if is_awake(resident, hour):
            awake_h += dt_s / 3600
        t += dt_s
    # Voice activity comes in bursts: a gamma draw around the mean, never more than the interval.
    speech_s = 0.0
    if speech_mean > 0:
        speech_s = min(end_s - start_s, rng.gammavariate(2.0, speech_mean / 2.0))
    wake_words = poisson(rng, _WAKE_WORDS_PER_AWAKE_H * awake_h)
    interactions = wake_words + poisson(rng, wake_words * (_INTERACTIONS_PER_WAKE_WORD - 1))
    return Counts(poisson(rng, motion_mean), round(speech_s, 1), wake_words, interactions)


def checkin_reply(
    rng: random.Random, resident: Resident, at_s: float, listen_s: float
) -> float | None:
    """Seconds after a check-in prompt at ``at_s`` (simulated) that the resident answers, or
    None when nobody answers within ``listen_s``: asleep, or awake but missed it."""
    if not is_awake(resident, local_hour(at_s)) or rng.random() < _CHECKIN_MISSED_WHILE_AWAKE:
        return None
    reply_s = rng.uniform(*_CHECKIN_REPLY_S)
    return round(reply_s, 1) if reply_s <= listen_s else None

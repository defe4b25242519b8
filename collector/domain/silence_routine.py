"""A home's learned routine: how long it normally stays quiet at each time of day.

What is learned: for every time-of-day slot (default 15 minutes, in the home's local time) the
longest quiet stretch *in progress* at that moment on any learning day — at 05:00 a sleeping
resident has been quiet since bedtime, at 11:00 only since breakfast. Unlike "the longest gap
that started in this hour", this pools every gap over every slot it covers, so ten days are
enough to see most nights and most afternoons.

How it is used: the allowed stretch at a moment is ``factor × (longest seen nearby) + margin``,
where "nearby" is the slot and ``smooth_slots`` slots either side (one odd evening should not
leave a hole next to it). The fixed silence period stays the upper bound. A home is flagged at
the first moment its current stretch is longer than what is allowed at that moment.

Day of week: weekdays and weekend days are learned apart, and a group's own curve is used once
both have ``min_days_per_group`` days of data; before that they share one curve.

Context: each quiet stretch can carry the *context* of the life sign that began it — a short
label such as the life-sign kind, or the sensor and whether it turned on or off. A stretch that
begins as the resident lies down on the bed is sleep; one that begins at the fridge is not. For
every context seen at least ``min_context_gaps`` times the routine keeps the longest stretch
that ever followed it, and allows ``factor × that + margin`` after a sign of that context at any
time of day. The stretch is flagged at the first moment it exceeds *either* limit (the time of
day's or the context's): each is a stretch this home has never shown. A home whose signs all
carry one context gets nothing from it (its context limit is its longest stretch of all, never
below the time-of-day curve), so the time-of-day routine is unchanged for it.

A home with fewer than ``learning_days`` days observed has no routine and uses the fixed period.

Pure: no clock, no I/O; times are float seconds since the epoch (UTC).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

HOUR_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class RoutineSettings:
    """How routines are learned and how much margin they get."""

    learning_days: float = 14.0
    """Days of observation before a home's routine is used."""
    slot_min: int = 15
    """Width of a time-of-day slot, minutes; must divide a day."""
    smooth_slots: int = 8
    """Slots either side whose longest stretch also counts (8 × 15 min = ±2 h)."""
    margin_factor: float = 1.25
    """The longest stretch seen is multiplied by this..."""
    margin_h: float = 1.5
    """...and this many hours are added."""
    min_days_per_group: float = 4.0
    """Days a weekday/weekend group needs before its own curve is used."""
    utc_offset_h: float = 9.0
    """The home's local time (Korea: +9), so that slots follow the resident's day."""
    by_context: bool = True
    """Also limit a stretch by the longest one that followed a sign of the same context."""
    min_context_gaps: int = 5
    """Stretches a context needs before it has its own limit (fewer: the time of day alone)."""
    max_contexts: int = 32
    """Contexts learned per home; signs of further contexts count for the time of day only."""

    def __post_init__(self) -> None:
        if self.slot_min <= 0 or (24 * 60) % self.slot_min:
            raise ValueError(f"slot_min={self.slot_min} must divide 1440")
        if self.learning_days < 0 or self.smooth_slots < 0 or self.min_days_per_group < 0:
            raise ValueError("learning_days, smooth_slots and min_days_per_group must be >= 0")
        if self.margin_factor < 1 or self.margin_h < 0:
            raise ValueError("margin_factor must be >= 1 and margin_h >= 0")
        if self.min_context_gaps < 1 or self.max_contexts < 0:
            raise ValueError("min_context_gaps must be >= 1 and max_contexts >= 0")

    @property
    def slot_s(self) -> float:
        return self.slot_min * 60.0

    @property
    def slots_per_day(self) -> int:
        return (24 * 60) // self.slot_min


WEEKDAY, WEEKEND = 0, 1


def _local_day(at_s: float, offset_s: float) -> int:
    return math.floor((at_s + offset_s) / DAY_S)


def _group_of_day(day: int) -> int:
    # Day 0 of the epoch (1970-01-01) was a Thursday: weekday index (Mon=0) is (day + 3) % 7.
    return WEEKEND if (day + 3) % 7 >= 5 else WEEKDAY


@dataclass(slots=True)
class RoutineObservations:
    """What a home has shown so far: per group and slot, the longest stretch in progress.

    Feed it every quiet stretch (``observe_gap``) in any order; ask for a :class:`Routine` when
    enough days are covered. Small (about 1 KB a home): two groups × ``slots_per_day`` 32-bit
    floats, and the days seen as one bit per day.
    """

    settings: RoutineSettings = field(default_factory=RoutineSettings)
    longest_h: list[array[float]] = field(default_factory=list)
    day_bits: list[int] = field(default_factory=lambda: [0, 0])
    """Per group, bit ``d - base_day`` is set when local day ``d`` was observed."""
    base_day: int | None = None
    first_s: float | None = None
    last_s: float | None = None
    context_longest_h: dict[str, float] = field(default_factory=dict)
    """Per context, the longest stretch that began with a sign of that context."""
    context_gaps: dict[str, int] = field(default_factory=dict)
    """Per context, how many stretches began with it."""

    def __post_init__(self) -> None:
        n = self.settings.slots_per_day
        if not self.longest_h:
            self.longest_h = [array("f", bytes(4 * n)), array("f", bytes(4 * n))]
        else:
            self.longest_h = [array("f", row) for row in self.longest_h]

    def _see_day(self, group: int, day: int) -> None:
        if self.base_day is None:
            self.base_day = day
        elif day < self.base_day:
            shift = self.base_day - day
            self.day_bits = [bits << shift for bits in self.day_bits]
            self.base_day = day
        self.day_bits[group] |= 1 << (day - self.base_day)

    @property
    def days(self) -> dict[int, set[int]]:
        """The local days observed, per group (weekday, weekend)."""
        base = self.base_day or 0
        return {
            group: {base + i for i in range(bits.bit_length()) if bits >> i & 1}
            for group, bits in enumerate(self.day_bits)
        }

    def observe_gap(self, start_s: float, end_s: float, context: str | None = None) -> None:
        """Record that nothing happened between ``start_s`` and ``end_s`` (two life signs);
        ``context`` labels the sign at ``start_s``."""
        if end_s < start_s:
            raise ValueError(f"gap ends before it starts ({start_s} > {end_s})")
        s = self.settings
        if context is not None and (
            context in self.context_gaps or len(self.context_gaps) < s.max_contexts
        ):
            hours = (end_s - start_s) / HOUR_S
            self.context_gaps[context] = self.context_gaps.get(context, 0) + 1
            self.context_longest_h[context] = max(self.context_longest_h.get(context, 0.0), hours)
        offset = s.utc_offset_h * HOUR_S
        slot_s = s.slot_s
        n = s.slots_per_day
        self.first_s = start_s if self.first_s is None else min(self.first_s, start_s)
        self.last_s = end_s if self.last_s is None else max(self.last_s, end_s)
        # The stretch in progress peaks at the end of each slot it covers, and at end_s.
        k = math.floor((start_s + offset) / slot_s) + 1
        while True:
            boundary = k * slot_s - offset
            at = min(boundary, end_s)
            slot_index = (k - 1) % n
            day = _local_day(at - 1e-6, offset) if at == boundary else _local_day(at, offset)
            group = _group_of_day(day)
            elapsed_h = (at - start_s) / HOUR_S
            row = self.longest_h[group]
            if elapsed_h > row[slot_index]:
                row[slot_index] = elapsed_h
            self._see_day(group, day)
            if boundary >= end_s:
                break
            k += 1

    def observe_signs(self, signs_s: Iterable[float]) -> None:
        """Record the gaps between consecutive life signs (sorted or not)."""
        ordered = sorted(signs_s)
        for a, b in itertools.pairwise(ordered):
            self.observe_gap(a, b)

    @property
    def observed_days(self) -> float:
        if self.first_s is None or self.last_s is None:
            return 0.0
        return (self.last_s - self.first_s) / DAY_S

    def to_json(self) -> str:
        """Compact form for the store: longest stretches in whole minutes (rounded up)."""
        return json.dumps(
            {
                "v": 1,
                "slot_min": self.settings.slot_min,
                "longest_min": [[math.ceil(h * 60 - 1e-9) for h in row] for row in self.longest_h],
                "days": [sorted(self.days[WEEKDAY]), sorted(self.days[WEEKEND])],
                "first_s": self.first_s,
                "last_s": self.last_s,
                "contexts": {
                    name: [self.context_gaps[name], math.ceil(hours * 60 - 1e-9)]
                    for name, hours in sorted(self.context_longest_h.items())
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, settings: RoutineSettings) -> RoutineObservations:
        """Inverse of :meth:`to_json`; raise ``ValueError`` for anything malformed."""
        try:
            data = json.loads(text)
            if data.get("v") != 1 or data["slot_min"] != settings.slot_min:
                raise ValueError("observations: version or slot width differs")
            longest = [[float(m) / 60 for m in row] for row in data["longest_min"]]
            if len(longest) != 2 or any(len(r) != settings.slots_per_day for r in longest):
                raise ValueError("observations: wrong number of slots")
            days = [list(map(int, data["days"][0])), list(map(int, data["days"][1]))]
            first = None if data["first_s"] is None else float(data["first_s"])
            last = None if data["last_s"] is None else float(data["last_s"])
            # Absent in observations stored before contexts were learned.
            contexts = {
                str(name): (int(count), float(minutes) / 60)
                for name, (count, minutes) in dict(data.get("contexts", {})).items()
            }
            if any(count < 0 or hours < 0 for count, hours in contexts.values()):
                raise ValueError("observations: negative context count or stretch")
        except (
            json.JSONDecodeError,
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
            ValueError,
        ) as exc:
            raise ValueError(f"observations are malformed: {exc}") from exc
        observations = cls(
            settings,
            [array("f", row) for row in longest],
            first_s=first,
            last_s=last,
            context_longest_h={name: hours for name, (_, hours) in contexts.items()},
            context_gaps={name: count for name, (count, _) in contexts.items()},
        )
        for group, group_days in enumerate(days):
            for day in group_days:
                observations._see_day(group, day)
        return observations

    def routine(self) -> Routine | None:
        """The routine once ``learning_days`` are covered, else None (use the fixed period)."""
        s = self.settings
        if self.observed_days < s.learning_days or self.first_s is None:
            return None
        pooled = [max(a, b) for a, b in zip(*self.longest_h, strict=True)]
        # Split only when both groups have enough days: a weekday curve that lost the weekend's
        # samples while the weekend still borrows the pooled one would be the worst of both.
        split = all(bits.bit_count() >= max(s.min_days_per_group, 1) for bits in self.day_bits)
        curves = [
            pack_minutes(_allowed(self.longest_h[group] if split else pooled, s))
            for group in (WEEKDAY, WEEKEND)
        ]
        contexts = {}
        if s.by_context:
            for name, hours in self.context_longest_h.items():
                if self.context_gaps.get(name, 0) >= s.min_context_gaps:
                    allowed_h = hours * s.margin_factor + s.margin_h
                    contexts[name] = min(MAX_ALLOWED_MIN, math.ceil(allowed_h * 60 - 1e-9))
        return Routine(s, curves[WEEKDAY], curves[WEEKEND], contexts or _NO_CONTEXTS)


def _allowed(longest_h: Sequence[float], s: RoutineSettings) -> list[float]:
    n = len(longest_h)
    w = s.smooth_slots
    out = []
    for k in range(n):
        nearby = max(longest_h[(k + j) % n] for j in range(-w, w + 1))
        out.append(nearby * s.margin_factor + s.margin_h)
    return out


MAX_ALLOWED_MIN = 0xFFFF
_NO_CONTEXTS: Mapping[str, int] = MappingProxyType({})  # shared: most homes have none
# Curves are read back with memoryview.cast("H"), which uses the machine's byte order.
_BYTE_ORDER = sys.byteorder


def pack_minutes(hours: Iterable[float]) -> bytes:
    """Allowed hours as whole minutes (rounded up, so never stricter than learned), 2 bytes each."""
    return b"".join(
        min(MAX_ALLOWED_MIN, math.ceil(h * 60 - 1e-9)).to_bytes(2, _BYTE_ORDER) for h in hours
    )


def unpack_hours(packed: bytes) -> tuple[float, ...]:
    return tuple(
        int.from_bytes(packed[i : i + 2], _BYTE_ORDER) / 60 for i in range(0, len(packed), 2)
    )


@dataclass(frozen=True, slots=True)
class Routine:
    """Allowed quiet per time-of-day slot, for weekdays and for weekend days.

    Stored as minutes in two bytes per slot (192 slots: 384 bytes a home), because a district
    keeps a routine in memory for every home it schedules. ``contexts`` holds, per context, the
    quiet allowed after a sign of that context at any time of day, in whole minutes.
    """

    settings: RoutineSettings
    weekday: bytes
    weekend: bytes
    contexts: Mapping[str, int] = field(default_factory=lambda: _NO_CONTEXTS)

    @property
    def weekday_h(self) -> tuple[float, ...]:
        return unpack_hours(self.weekday)

    @property
    def weekend_h(self) -> tuple[float, ...]:
        return unpack_hours(self.weekend)

    def allowed_h(self, at_s: float, context: str | None = None) -> float:
        """The quiet stretch allowed at the moment ``at_s`` (before the fixed cap), for a
        stretch that began with a sign of ``context``."""
        s = self.settings
        offset = s.utc_offset_h * HOUR_S
        k = math.floor((at_s + offset) / s.slot_s)
        curve = self.weekend if _group_of_day(_local_day(at_s, offset)) else self.weekday
        i = 2 * (k % s.slots_per_day)
        by_time = int.from_bytes(curve[i : i + 2], _BYTE_ORDER) / 60
        by_context = self.contexts.get(context) if context is not None else None
        return by_time if by_context is None else min(by_time, by_context / 60)

    def deadline_s(
        self, last_sign_s: float, period_h: float, context: str | None = None
    ) -> float | None:
        """The first moment the stretch since ``last_sign_s`` (a sign of ``context``) exceeds
        what is allowed then.

        None if that does not happen before the fixed period ends. Walks at most
        ``period_h`` worth of slots, so a life sign costs O(period / slot), independent of the
        number of homes.
        """
        cap_s = last_sign_s + period_h * HOUR_S
        by_context = self.contexts.get(context) if context is not None else None
        if by_context is not None and last_sign_s + by_context * 60.0 < cap_s:
            # The context's limit, unless the time of day's comes before it.
            context_s = last_sign_s + by_context * 60.0
            walked = self._walk(last_sign_s, context_s)
            return context_s if walked is None else walked
        return self._walk(last_sign_s, cap_s)

    def _walk(self, last_sign_s: float, cap_s: float) -> float | None:
        s = self.settings
        offset = s.utc_offset_h * HOUR_S
        slot_s = s.slot_s
        n = s.slots_per_day
        weekday = memoryview(self.weekday).cast("H")
        weekend = memoryview(self.weekend).cast("H")
        k = math.floor((last_sign_s + offset) / slot_s)
        start = last_sign_s
        day = -1
        curve = weekday
        while start < cap_s:
            if k // n != day:
                day = k // n
                curve = weekend if _group_of_day(day) else weekday
            end = (k + 1) * slot_s - offset
            due = last_sign_s + curve[k % n] * 60.0
            if due < end:
                at = max(due, start)
                return at if at < cap_s else None
            start = end
            k += 1
        return None

    def to_json(self) -> str:
        """Compact form for the store (``household_silence.routine``)."""
        s = self.settings
        return json.dumps(
            {
                "v": 1,
                "slot_min": s.slot_min,
                "utc_offset_h": s.utc_offset_h,
                "weekday_min": [round(h * 60) for h in self.weekday_h],
                "weekend_min": [round(h * 60) for h in self.weekend_h],
                "contexts": dict(sorted(self.contexts.items())),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, settings: RoutineSettings | None = None) -> Routine:
        """Inverse of :meth:`to_json`; raise ``ValueError`` for anything malformed."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"routine is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("routine: expected an object with v=1")
        base = settings or RoutineSettings()
        try:
            s = dataclasses.replace(
                base, slot_min=int(data["slot_min"]), utc_offset_h=float(data["utc_offset_h"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"routine: bad slot_min or utc_offset_h ({exc})") from exc
        curves = []
        for key in ("weekday_min", "weekend_min"):
            values = data.get(key)
            if not isinstance(values, list) or len(values) != s.slots_per_day:
                raise ValueError(f"routine: {key} must hold {s.slots_per_day} numbers")
            if not all(isinstance(v, int) and 0 <= v <= MAX_ALLOWED_MIN for v in values):
                raise ValueError(f"routine: {key} must hold whole minutes 0..{MAX_ALLOWED_MIN}")
            curves.append(pack_minutes(v / 60 for v in values))
        contexts = data.get("contexts", {})  # absent in routines stored before contexts
        if not isinstance(contexts, dict) or not all(
            isinstance(k, str)
            and isinstance(v, int)
            and not isinstance(v, bool)
            and 0 <= v <= MAX_ALLOWED_MIN
            for k, v in contexts.items()
        ):
            raise ValueError(f"routine: contexts must map names to minutes 0..{MAX_ALLOWED_MIN}")
        return cls(s, curves[0], curves[1], dict(contexts) or _NO_CONTEXTS)

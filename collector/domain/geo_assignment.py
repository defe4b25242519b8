"""Households shared out among a district's caregivers by where they live, and each caregiver's
backup. Pure: plain data in, a plan out.

Rules, in order:

1. **A supervisor's choice stands**: a pinned household keeps its caregiver while that caregiver
   is active (even past capacity: the supervisor decided; :attr:`Plan.over_capacity` says so).
2. **Stable**: every other household keeps its caregiver while that caregiver is active and has
   room. A caregiver over ``capacity`` (it was lowered) sheds the households farthest from the
   middle of their round, and only those move.
3. **Near**: a household to place (new, or its caregiver left, or shed) goes to the caregiver with
   room whose round's middle (the mean of their households' coordinates) is nearest; a caregiver
   with no round yet, or a household with no coordinates, goes by the fewest households.
4. **Never overloaded**: when every caregiver is full the household is left unassigned
   (:attr:`Plan.unassigned`): staff must hire or raise the capacity.

Adding or removing one household therefore moves no other household, and a caregiver leaving
moves only their own. :func:`partition` draws the rounds afresh (recursive bisection of the map
into equal parts) for a new district or when a supervisor asks for it, matching the new rounds to
the caregivers who already hold most of each, so even a redraw moves as few homes as it can.

**Backups** (:func:`choose_backups`): a caregiver keeps their backup while the backup is active;
otherwise the caregiver whose round's middle is nearest becomes it, passing over anyone who
already backs up two others while someone else is free. A district's only caregiver has none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CAPACITY = 100


@dataclass(frozen=True, slots=True)
class Home:
    id: str
    latitude: float | None
    longitude: float | None
    caregiver_id: int | None = None
    pinned: bool = False

    @property
    def where(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return (self.latitude, self.longitude)


@dataclass(frozen=True, slots=True)
class Plan:
    caregiver_of: dict[str, int | None]
    """Every household's caregiver after the plan (None: unassigned)."""
    moved: tuple[str, ...]
    """Households whose caregiver changed (including newly assigned ones)."""
    unassigned: tuple[str, ...] = ()
    over_capacity: dict[int, int] = field(default_factory=dict)
    """Caregivers past capacity because of pinned households: id -> households."""


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    # Equirectangular: within a district (a few km) the error is far below a street's width.
    lat = math.radians((a[0] + b[0]) / 2)
    dx = math.radians(b[1] - a[1]) * math.cos(lat)
    dy = math.radians(b[0] - a[0])
    return 6371.0 * math.hypot(dx, dy)


class _Rounds:
    """Each caregiver's households: count and running sum of coordinates (for the middle)."""

    def __init__(self, caregivers: Sequence[int]) -> None:
        self.count = dict.fromkeys(caregivers, 0)
        self.sum: dict[int, list[float]] = {c: [0.0, 0.0, 0.0] for c in caregivers}

    def add(self, caregiver: int, home: Home) -> None:
        self.count[caregiver] += 1
        where = home.where
        if where is not None:
            s = self.sum[caregiver]
            s[0] += where[0]
            s[1] += where[1]
            s[2] += 1

    def middle(self, caregiver: int) -> tuple[float, float] | None:
        s = self.sum[caregiver]
        return None if not s[2] else (s[0] / s[2], s[1] / s[2])


def reassign(homes: Sequence[Home], caregivers: Sequence[int], capacity: int = CAPACITY) -> Plan:
    """The stable plan for ``homes`` among the active ``caregivers`` (ids) of one district."""
    if capacity < 1:
        raise ValueError(f"capacity={capacity} must be at least 1")
    active = sorted(set(caregivers))
    rounds = _Rounds(active)
    result: dict[str, int | None] = {}
    kept: dict[int, list[Home]] = {c: [] for c in active}
    to_place: list[Home] = []
    for home in sorted(homes, key=lambda h: h.id):
        if home.caregiver_id in rounds.count:
            if home.pinned:
                rounds.add(home.caregiver_id, home)
                result[home.id] = home.caregiver_id
            else:
                kept[home.caregiver_id].append(home)
        else:
            to_place.append(home)
    # Over capacity (it was lowered): keep the households nearest the round's middle, shed the
    # rest; pinned households count first and are never shed.
    for caregiver, mine in kept.items():
        room = max(capacity - rounds.count[caregiver], 0)
        if len(mine) > room:
            probe = _Rounds([caregiver])
            for home in mine:
                probe.add(caregiver, home)
            middle = probe.middle(caregiver)

            def near(h: Home, middle: tuple[float, float] | None = middle) -> tuple[float, str]:
                w = h.where
                return (_km(w, middle) if w and middle else math.inf, h.id)

            mine.sort(key=near)
            to_place += mine[room:]
            del mine[room:]
        for home in mine:
            rounds.add(caregiver, home)
            result[home.id] = caregiver
    unassigned: list[str] = []
    for home in sorted(to_place, key=lambda h: h.id):
        chosen = _nearest_with_room(home, active, rounds, capacity)
        result[home.id] = chosen
        if chosen is None:
            unassigned.append(home.id)
        else:
            rounds.add(chosen, home)
    before = {h.id: h.caregiver_id for h in homes}
    moved = tuple(h for h in sorted(result) if result[h] != before[h] and result[h] is not None)
    over = {c: n for c, n in rounds.count.items() if n > capacity}
    return Plan(result, moved, tuple(unassigned), over)


def _nearest_with_room(
    home: Home, active: Sequence[int], rounds: _Rounds, capacity: int
) -> int | None:
    best: tuple[float, int, int] | None = None
    where = home.where
    for caregiver in active:
        n = rounds.count[caregiver]
        if n >= capacity:
            continue
        middle = rounds.middle(caregiver)
        # A round without a middle (new caregiver) competes on load only, after located ones.
        distance = _km(where, middle) if where and middle else math.inf
        key = (distance, n, caregiver) if where else (0.0, n, caregiver)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def partition(homes: Sequence[Home], caregivers: Sequence[int], capacity: int = CAPACITY) -> Plan:
    """Rounds drawn afresh: the map cut into as many equal, compact parts as there are
    caregivers, each part given to the caregiver who already holds most of it; pinned
    households stay; capacity is then enforced by :func:`reassign`."""
    active = sorted(set(caregivers))
    if not active:
        return reassign(homes, active, capacity)
    free = [h for h in homes if not (h.pinned and h.caregiver_id in active)]
    located = [h for h in free if h.where is not None]
    parts: list[list[Home]] = []
    _bisect(located, len(active), parts)
    # Households without coordinates go to the smallest parts.
    for home in (h for h in free if h.where is None):
        min(parts, key=len).append(home)
    # Match parts to caregivers by overlap with today's rounds, largest overlaps first.
    pairs = sorted(
        (
            (-sum(1 for h in part if h.caregiver_id == c), i, c)
            for i, part in enumerate(parts)
            for c in active
        ),
    )
    part_owner: dict[int, int] = {}
    taken: set[int] = set()
    for _, i, c in pairs:
        if i in part_owner or c in taken:
            continue
        part_owner[i] = c
        taken.add(c)
    drawn = {h.id: part_owner[i] for i, part in enumerate(parts) for h in part}
    redrawn = [
        h if h.id not in drawn else Home(h.id, h.latitude, h.longitude, drawn[h.id], h.pinned)
        for h in homes
    ]
    plan = reassign(redrawn, active, capacity)
    before = {h.id: h.caregiver_id for h in homes}
    moved = tuple(
        h for h in sorted(plan.caregiver_of) if plan.caregiver_of[h] not in (None, before[h])
    )
    return Plan(plan.caregiver_of, moved, plan.unassigned, plan.over_capacity)


def _bisect(homes: list[Home], k: int, out: list[list[Home]]) -> None:
    if k == 1:
        out.append(list(homes))
        return
    left_k = k // 2
    if homes:
        lats = [h.latitude or 0.0 for h in homes]
        lons = [h.longitude or 0.0 for h in homes]
        scale = math.cos(math.radians(sum(lats) / len(lats)))
        wide_lon = (max(lons) - min(lons)) * scale > max(lats) - min(lats)
        homes.sort(
            key=(lambda h: (h.longitude, h.id)) if wide_lon else (lambda h: (h.latitude, h.id))
        )
    cut = round(len(homes) * left_k / k)
    _bisect(homes[:cut], left_k, out)
    _bisect(homes[cut:], k - left_k, out)


def choose_backups(
    middles: Mapping[int, tuple[float, float] | None], current: Mapping[int, int | None]
) -> dict[int, int | None]:
    """Each active caregiver's backup, given their rounds' middles and today's backups."""
    active = sorted(middles)
    backups: dict[int, int | None] = {}
    duties = dict.fromkeys(active, 0)
    for c in active:
        mine = current.get(c)
        if mine is not None and mine != c and mine in middles:
            backups[c] = mine
            duties[mine] += 1
    for c in active:
        if c in backups:
            continue
        others = [o for o in active if o != c]
        if not others:
            backups[c] = None
            continue
        here = middles[c]

        def key(o: int, here: tuple[float, float] | None = here) -> tuple[int, float, int]:
            there = middles[o]
            distance = _km(here, there) if here and there else math.inf
            return (duties[o] >= 2, distance, o)

        chosen = min(others, key=key)
        backups[c] = chosen
        duties[chosen] += 1
    return backups


def middles_of(
    plan: Plan, homes: Sequence[Home], caregivers: Sequence[int]
) -> dict[int, tuple[float, float] | None]:
    """Each caregiver's round's middle after ``plan`` (for :func:`choose_backups`)."""
    rounds = _Rounds(sorted(set(caregivers)))
    for home in homes:
        c = plan.caregiver_of.get(home.id)
        if c is not None and c in rounds.count:
            rounds.add(c, home)
    return {c: rounds.middle(c) for c in rounds.count}

"""Which caregiver looks after a household: one caregiver per ~100 households.

Rule: among the district's active caregivers with room (fewer than ``capacity`` households), take
the one with the fewest; break ties by distance when both sides have coordinates, then by id.
Returns None when every caregiver is full: staff must hire or raise capacity, not overload.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CAPACITY = 100


@dataclass(frozen=True, slots=True)
class CaregiverLoad:
    id: int
    district: str
    households: int
    latitude: float | None = None
    longitude: float | None = None


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def choose_caregiver(
    district: str,
    caregivers: Sequence[CaregiverLoad],
    *,
    where: tuple[float, float] | None = None,
    capacity: int = CAPACITY,
) -> int | None:
    """The id of the caregiver a new household in ``district`` should get, or None if all full."""
    candidates = [c for c in caregivers if c.district == district and c.households < capacity]
    if not candidates:
        return None

    def key(c: CaregiverLoad) -> tuple[int, float, int]:
        dist = 0.0
        if where is not None and c.latitude is not None and c.longitude is not None:
            dist = _km(where, (c.latitude, c.longitude))
        return (c.households, dist, c.id)

    return min(candidates, key=key).id


def caregivers_needed(households: int, capacity: int = CAPACITY) -> int:
    """How many caregivers a district of ``households`` needs at one per ``capacity``."""
    return max(1, math.ceil(households / capacity)) if households else 0

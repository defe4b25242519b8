"""Which caregiver a new household gets: fewest households first, then nearest, then lowest id."""

from __future__ import annotations

import pytest

from collector.domain.assignment import (
    CAPACITY,
    CaregiverLoad,
    caregivers_needed,
    choose_caregiver,
)

SINCHON = (37.5597, 126.9423)
YEONHUI = (37.5683, 126.9311)


def load(
    id: int, households: int, district: str = "seodaemun", at: tuple[float, float] | None = None
) -> CaregiverLoad:
    lat, lon = at if at else (None, None)
    return CaregiverLoad(id, district, households, lat, lon)


def test_the_least_loaded_caregiver_of_the_district_wins() -> None:
    caregivers = [load(1, 40), load(2, 12), load(3, 5, district="mapo"), load(4, 30)]
    assert choose_caregiver("seodaemun", caregivers) == 2


def test_ties_go_to_the_nearest_when_coordinates_are_known() -> None:
    caregivers = [load(1, 10, at=SINCHON), load(2, 10, at=YEONHUI)]
    assert choose_caregiver("seodaemun", caregivers, where=YEONHUI) == 2
    assert choose_caregiver("seodaemun", caregivers, where=SINCHON) == 1


def test_load_beats_distance() -> None:
    caregivers = [load(1, 11, at=YEONHUI), load(2, 10, at=SINCHON)]
    assert choose_caregiver("seodaemun", caregivers, where=YEONHUI) == 2


def test_remaining_ties_go_to_the_lowest_id() -> None:
    caregivers = [load(7, 3), load(5, 3), load(6, 3, at=SINCHON)]
    assert choose_caregiver("seodaemun", caregivers) == 5
    # Without the household's location, a caregiver's own location does not matter.
    assert choose_caregiver("seodaemun", caregivers, where=None) == 5


def test_full_caregivers_are_skipped_and_none_when_all_are_full() -> None:
    assert choose_caregiver("seodaemun", [load(1, CAPACITY), load(2, CAPACITY - 1)]) == 2
    assert choose_caregiver("seodaemun", [load(1, CAPACITY), load(2, CAPACITY + 3)]) is None
    assert choose_caregiver("seodaemun", [load(1, 2)], capacity=2) is None


def test_no_caregiver_in_the_district_is_none() -> None:
    assert choose_caregiver("seodaemun", []) is None
    assert choose_caregiver("seodaemun", [load(1, 0, district="mapo")]) is None


def test_filling_a_district_spreads_homes_evenly() -> None:
    loads = {cid: 0 for cid in (1, 2, 3)}
    for _ in range(250):
        chosen = choose_caregiver("seodaemun", [load(c, n) for c, n in loads.items()])
        assert chosen is not None
        loads[chosen] += 1
    assert sorted(loads.values()) == [83, 83, 84]


@pytest.mark.parametrize(
    ("households", "needed"), [(0, 0), (1, 1), (100, 1), (101, 2), (1000, 10), (1001, 11)]
)
def test_caregivers_needed_at_one_per_hundred(households: int, needed: int) -> None:
    assert caregivers_needed(households) == needed


def test_caregivers_needed_with_another_capacity() -> None:
    assert caregivers_needed(50, capacity=20) == 3

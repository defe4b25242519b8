"""Geographic assignment with backups: balanced, near, stable, pinned (pure, hypothesis)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.domain.geo_assignment import (
    Home,
    Plan,
    choose_backups,
    middles_of,
    partition,
    reassign,
)

# Seodaemun-gu, roughly
LAT = st.floats(37.55, 37.60)
LON = st.floats(126.90, 126.97)


@st.composite
def districts(draw: st.DrawFn) -> tuple[list[Home], list[int], int]:
    caregivers = draw(st.lists(st.integers(1, 40), min_size=1, max_size=8, unique=True))
    capacity = draw(st.integers(1, 12))
    n = draw(st.integers(0, 60))
    homes = []
    for i in range(n):
        located = draw(st.booleans()) or draw(st.booleans())
        homes.append(
            Home(
                f"h{i:03d}",
                draw(LAT) if located else None,
                draw(LON) if located else None,
                draw(st.sampled_from([None, *caregivers, 99])),
                False,
            )
        )
    return homes, caregivers, capacity


def applied(homes: list[Home], plan: Plan) -> list[Home]:
    return [Home(h.id, h.latitude, h.longitude, plan.caregiver_of[h.id], h.pinned) for h in homes]


def loads(plan: Plan) -> Counter[int]:
    return Counter(c for c in plan.caregiver_of.values() if c is not None)


@settings(max_examples=80, deadline=None)
@given(districts())
def test_nobody_is_overloaded_and_nobody_is_left_while_there_is_room(
    case: tuple[list[Home], list[int], int],
) -> None:
    homes, caregivers, capacity = case
    plan = reassign(homes, caregivers, capacity)
    assert set(plan.caregiver_of) == {h.id for h in homes}
    assert all(n <= capacity for n in loads(plan).values())
    assert all(c in caregivers for c in loads(plan))
    room = len(caregivers) * capacity
    assert len(plan.unassigned) == max(0, len(homes) - room)
    # Applying the plan again changes nothing.
    assert reassign(applied(homes, plan), caregivers, capacity).moved == ()


@settings(max_examples=80, deadline=None)
@given(districts(), LAT, LON, st.data())
def test_adding_or_removing_a_home_moves_no_other(
    case: tuple[list[Home], list[int], int], lat: float, lon: float, data: st.DataObject
) -> None:
    homes, caregivers, capacity = case
    settled = applied(homes, reassign(homes, caregivers, capacity))
    added = reassign([*settled, Home("new", lat, lon)], caregivers, capacity)
    assert set(added.moved) <= {"new"}
    if settled:
        gone = data.draw(st.sampled_from(settled))
        removed = reassign([h for h in settled if h.id != gone.id], caregivers, capacity)
        # A home left unassigned for lack of room may take the freed place; nobody else moves.
        assert all(h.caregiver_id is None for h in settled if h.id in removed.moved), removed.moved


@settings(max_examples=50, deadline=None)
@given(districts(), st.data())
def test_a_leaving_caregiver_moves_only_their_own_homes(
    case: tuple[list[Home], list[int], int], data: st.DataObject
) -> None:
    homes, caregivers, capacity = case
    settled = applied(homes, reassign(homes, caregivers, capacity))
    leaving = data.draw(st.sampled_from(caregivers))
    rest = [c for c in caregivers if c != leaving]
    plan = reassign(settled, rest, capacity)
    theirs = {h.id for h in settled if h.caregiver_id in (leaving, None)}
    assert set(plan.moved) <= theirs
    assert leaving not in loads(plan)


def test_new_homes_go_to_the_nearest_round_with_room() -> None:
    west = [Home(f"w{i}", 37.57, 126.91 + i * 1e-4, 1) for i in range(3)]
    east = [Home(f"e{i}", 37.57, 126.96 + i * 1e-4, 2) for i in range(3)]
    plan = reassign([*west, *east, Home("n", 37.571, 126.959)], [1, 2], capacity=4)
    assert plan.caregiver_of["n"] == 2 and plan.moved == ("n",)
    full = reassign([*west[:2], *east, Home("n", 37.571, 126.959)], [1, 2], capacity=3)
    assert full.caregiver_of["n"] == 1  # east is full: the next nearest with room


def test_a_lowered_capacity_sheds_the_farthest_homes_only() -> None:
    round_ = [Home(f"h{i}", 37.57, 126.93 + i * 1e-3, 1) for i in range(4)]
    far = Home("far", 37.59, 126.97, 1)
    plan = reassign([*round_, far], [1, 2], capacity=4)
    assert plan.moved == ("far",) and plan.caregiver_of["far"] == 2


def test_a_supervisors_pin_stands_even_past_capacity() -> None:
    homes = [Home(f"h{i}", 37.57, 126.93, 1, pinned=True) for i in range(3)]
    homes.append(Home("x", 37.57, 126.93, 1))
    plan = reassign(homes, [1, 2], capacity=2)
    assert all(plan.caregiver_of[f"h{i}"] == 1 for i in range(3))
    assert plan.caregiver_of["x"] == 2 and plan.over_capacity == {1: 3}
    # A pin to a caregiver who left is released: the home is placed like any other.
    assert reassign(homes, [2], capacity=5).caregiver_of["h0"] == 2


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(0, 400), st.randoms(use_true_random=False))
def test_a_redraw_is_balanced_and_compact(k: int, n: int, rng: object) -> None:
    import random

    assert isinstance(rng, random.Random)
    homes = [
        Home(f"h{i:03d}", rng.uniform(37.55, 37.60), rng.uniform(126.90, 126.97)) for i in range(n)
    ]
    plan = partition(homes, list(range(1, k + 1)), capacity=100)
    sizes = [loads(plan).get(c, 0) for c in range(1, k + 1)]
    assert max(sizes) - min(sizes) <= 1 or n > 100 * k
    assert plan.unassigned == tuple(h.id for h in homes[: max(0, n - 100 * k)]) or n > 100 * k


def test_a_redraw_gives_each_part_to_who_holds_most_of_it() -> None:
    west = [Home(f"w{i}", 37.57, 126.91 + i * 1e-4, 7) for i in range(5)]
    east = [Home(f"e{i}", 37.57, 126.96 + i * 1e-4, 3) for i in range(5)]
    assert partition([*west, *east], [3, 7]).moved == ()


def test_every_caregiver_has_a_backup_who_is_near_and_it_is_kept() -> None:
    middles = {1: (37.57, 126.91), 2: (37.57, 126.915), 3: (37.57, 126.97), 4: (37.571, 126.97)}
    backups = choose_backups(middles, {})
    assert backups == {1: 2, 2: 1, 3: 4, 4: 3}
    # A backup who left is replaced; the others are kept.
    del middles[2]
    again = choose_backups(middles, backups)
    assert again[3] == 4 and again[4] == 3 and again[1] in (3, 4)
    assert choose_backups({5: None}, {}) == {5: None}


@settings(max_examples=50, deadline=None)
@given(districts())
def test_backups_are_other_active_caregivers(case: tuple[list[Home], list[int], int]) -> None:
    homes, caregivers, capacity = case
    plan = reassign(homes, caregivers, capacity)
    backups = choose_backups(middles_of(plan, homes, caregivers), {})
    for c, b in backups.items():
        assert (b is None) == (len(caregivers) == 1)
        assert b != c and (b is None or b in caregivers)

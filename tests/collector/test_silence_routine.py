"""The learned routine: what it learns from quiet stretches, and when it flags."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.domain.silence_routine import (
    DAY_S,
    HOUR_S,
    Routine,
    RoutineObservations,
    RoutineSettings,
)

MONDAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()


def _settings(**overrides: float | bool) -> RoutineSettings:
    values: dict[str, float | bool] = {
        "learning_days": 0,
        "margin_factor": 1.0,
        "margin_h": 0.5,
        "smooth_slots": 0,
        "utc_offset_h": 0,
    }
    values.update(overrides)
    return RoutineSettings(**values)  # type: ignore[arg-type]


def test_a_stretch_counts_in_every_slot_it_covers() -> None:
    observations = RoutineObservations(_settings())
    observations.observe_gap(MONDAY + 1 * HOUR_S, MONDAY + 2.1 * HOUR_S)
    row = observations.longest_h[0]
    # 01:00–01:15 ends with 0.25 h of quiet, 01:45–02:00 with 1 h, 02:00–02:15 with 1.1 h.
    assert row[4] == pytest.approx(0.25)
    assert row[7] == pytest.approx(1.0)
    assert row[8] == pytest.approx(1.1)
    assert row[9] == 0.0 and row[3] == 0.0


def test_local_time_moves_the_slots() -> None:
    observations = RoutineObservations(_settings(utc_offset_h=9))
    observations.observe_gap(MONDAY - 9 * HOUR_S, MONDAY - 8 * HOUR_S)  # 00:00–01:00 in Seoul
    assert observations.longest_h[0][3] == pytest.approx(1.0)


def test_weekends_get_their_own_curve_only_when_both_groups_have_enough_days() -> None:
    observations = RoutineObservations(_settings(min_days_per_group=2))
    for day in range(7):  # long Saturday and Sunday mornings, short weekday ones
        base = MONDAY + day * DAY_S
        quiet_h = 5.0 if day >= 5 else 1.0
        observations.observe_gap(base + 6 * HOUR_S, base + (6 + quiet_h) * HOUR_S)
    routine = observations.routine()
    assert routine is not None
    saturday_10h = MONDAY + 5 * DAY_S + 10 * HOUR_S
    tuesday_10h = MONDAY + 1 * DAY_S + 10 * HOUR_S
    assert routine.allowed_h(saturday_10h) == pytest.approx(4.25 + 0.5)  # quiet at 10:15
    assert routine.allowed_h(tuesday_10h) == pytest.approx(0.5)  # no weekday was quiet then
    needs_more = RoutineObservations.from_json(
        observations.to_json(), _settings(min_days_per_group=3)
    )
    assert needs_more.days == observations.days
    pooled = needs_more.routine()
    assert pooled is not None
    assert pooled.allowed_h(tuesday_10h) == pytest.approx(4.75)  # two weekend days: pooled


def test_no_routine_before_the_learning_period() -> None:
    observations = RoutineObservations(_settings(learning_days=14))
    observations.observe_gap(MONDAY, MONDAY + 13.9 * DAY_S)
    assert observations.routine() is None


def test_bad_gaps_and_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        RoutineObservations(_settings()).observe_gap(10.0, 5.0)
    with pytest.raises(ValueError, match="slot_min=7 must divide 1440"):
        RoutineSettings(slot_min=7)
    with pytest.raises(ValueError, match="margin_factor"):
        RoutineSettings(margin_factor=0.5)


def _learned(signs: list[float], **overrides: float) -> Routine:
    observations = RoutineObservations(_settings(**overrides))
    observations.observe_signs(signs)
    routine = observations.routine()
    assert routine is not None
    return routine


sign_lists = st.lists(
    st.floats(0, 10 * DAY_S, allow_nan=False), min_size=2, max_size=60, unique=True
).map(lambda xs: [MONDAY + x for x in sorted(xs)])


@settings(max_examples=60, deadline=None)
@given(
    sign_lists,
    st.floats(0, 12 * DAY_S),
    st.sampled_from([4.0, 10.0, 30.0]),
    st.integers(0, 4),
)
def test_deadline_is_the_first_minute_the_stretch_exceeds_what_is_allowed(
    signs: list[float], offset_s: float, period_h: float, smooth: int
) -> None:
    routine = _learned(signs, smooth_slots=smooth)
    last = MONDAY + math.floor(offset_s / 60) * 60  # whole minutes, so a minute walk is exact
    due = routine.deadline_s(last, period_h)
    # Reference: walk minute by minute until the stretch exceeds the allowed quiet.
    reference = None
    t = last
    while t < last + period_h * HOUR_S:
        if (t - last) / HOUR_S >= routine.allowed_h(t) - 1e-9:
            reference = t
            break
        t += 60
    if reference is None:
        assert due is None or due >= last + period_h * HOUR_S - 60
    else:
        assert due is not None
        assert reference - 60 < due <= reference + 1e-6


@settings(max_examples=40, deadline=None)
@given(sign_lists)
def test_no_flag_on_the_days_it_learned_from(signs: list[float]) -> None:
    """Every learning gap was allowed (the curve is at least as long as what it saw)."""
    routine = _learned(signs, margin_h=0.0)
    for a, b in itertools.pairwise(signs):
        due = routine.deadline_s(a, 24 * 30)
        assert due is None or due >= b - 1e-6


def test_routine_survives_the_store_and_refuses_garbage() -> None:
    routine = _learned([MONDAY, MONDAY + 3 * HOUR_S, MONDAY + DAY_S])
    again = Routine.from_json(routine.to_json(), routine.settings)
    assert again == routine
    with pytest.raises(ValueError, match="not JSON"):
        Routine.from_json("{")
    with pytest.raises(ValueError, match="v=1"):
        Routine.from_json("[]")
    with pytest.raises(ValueError, match="weekday_min must hold 96"):
        Routine.from_json('{"v":1,"slot_min":15,"utc_offset_h":9,"weekday_min":[]}')
    with pytest.raises(ValueError, match="bad slot_min"):
        Routine.from_json('{"v":1,"slot_min":7,"utc_offset_h":9}')


def test_days_are_counted_once_in_any_order() -> None:
    observations = RoutineObservations(_settings())
    for day in (5, 2, 2, 9, 0):  # out of order, one day twice
        start = MONDAY + day * DAY_S + 10 * HOUR_S
        observations.observe_gap(start, start + HOUR_S)
    monday = math.floor(MONDAY / DAY_S)
    assert observations.days[0] | observations.days[1] == {monday + d for d in (0, 2, 5, 9)}
    assert observations.days[1] == {monday + 5}  # Saturday


# -- contexts -------------------------------------------------------------------------------


def _nights_and_kitchen(days: int = 6) -> RoutineObservations:
    """In bed 23:00–07:00 (8 h after a "bed" sign); by day a "kitchen" sign every 30 min."""
    observations = RoutineObservations(_settings(min_context_gaps=3))
    for day in range(days):
        base = MONDAY + day * DAY_S
        observations.observe_gap(base - HOUR_S, base + 7 * HOUR_S, "bed")
        t = base + 7 * HOUR_S
        while t < base + 23 * HOUR_S - 1:
            observations.observe_gap(t, t + 0.5 * HOUR_S, "kitchen")
            t += 0.5 * HOUR_S
    return observations


def test_a_context_limits_the_stretch_at_any_time_of_day() -> None:
    routine = _nights_and_kitchen().routine()
    assert routine is not None
    assert routine.contexts == {"bed": 8 * 60 + 30, "kitchen": 60}  # × 1.0 + 0.5 h
    two_am = MONDAY + 8 * DAY_S + 2 * HOUR_S  # the time of day allows the night's 8 h here
    assert routine.allowed_h(two_am) == pytest.approx(3.75)  # quiet since 23:00 at 02:15, + 0.5
    assert routine.allowed_h(two_am, "kitchen") == pytest.approx(1.0)
    assert routine.allowed_h(two_am, "bed") == pytest.approx(3.75)
    # Up at 02:00 for the kitchen, then nothing: flagged an hour later, not at 07:30.
    assert routine.deadline_s(two_am, 24.0, "kitchen") == pytest.approx(two_am + HOUR_S)
    assert routine.deadline_s(two_am, 24.0) == routine.deadline_s(two_am, 24.0, "bed")
    assert routine.deadline_s(two_am, 24.0, "unknown") == routine.deadline_s(two_am, 24.0)
    # The fixed period still wins when it is shorter than the context's limit.
    assert routine.deadline_s(two_am, 0.5, "kitchen") is None


def test_a_context_seen_too_rarely_or_turned_off_has_no_limit() -> None:
    observations = _nights_and_kitchen()
    observations.observe_gap(MONDAY + 10 * HOUR_S, MONDAY + 10.2 * HOUR_S, "door")
    observations.observe_gap(MONDAY + 11 * HOUR_S, MONDAY + 11.2 * HOUR_S, "door")
    routine = observations.routine()
    assert routine is not None and "door" not in routine.contexts  # 2 < min_context_gaps=3
    off = dataclasses.replace(observations, settings=_settings(by_context=False))
    assert off.routine() is not None and off.routine().contexts == {}  # type: ignore[union-attr]
    capped = RoutineObservations(_settings(max_contexts=1, min_context_gaps=1))
    capped.observe_gap(MONDAY, MONDAY + HOUR_S, "a")
    capped.observe_gap(MONDAY + HOUR_S, MONDAY + 2 * HOUR_S, "b")  # one context too many
    assert capped.context_gaps == {"a": 1}
    assert capped.routine().contexts == {"a": 90}  # type: ignore[union-attr]


def test_contexts_survive_the_store_and_older_rows_still_read() -> None:
    observations = _nights_and_kitchen()
    again = RoutineObservations.from_json(observations.to_json(), observations.settings)
    assert again.context_gaps == observations.context_gaps
    assert again.context_longest_h == pytest.approx(observations.context_longest_h)
    assert again.routine() == observations.routine()
    routine = observations.routine()
    assert routine is not None
    assert Routine.from_json(routine.to_json(), routine.settings) == routine
    # Rows written before contexts existed have no "contexts" key.
    old = json.loads(routine.to_json())
    del old["contexts"]
    assert Routine.from_json(json.dumps(old)).contexts == {}
    old_observations = json.loads(observations.to_json())
    del old_observations["contexts"]
    restored = RoutineObservations.from_json(json.dumps(old_observations), observations.settings)
    assert restored.context_gaps == {}
    bad = json.loads(routine.to_json())
    for wrong in ({"bed": -1}, {"bed": True}, {"bed": 1.5}, ["bed", 60]):
        bad["contexts"] = wrong
        with pytest.raises(ValueError, match="contexts"):
            Routine.from_json(json.dumps(bad))
    broken = json.loads(observations.to_json())
    broken["contexts"] = {"bed": [3]}
    with pytest.raises(ValueError, match="malformed"):
        RoutineObservations.from_json(json.dumps(broken), observations.settings)


@settings(max_examples=60, deadline=None)
@given(
    sign_lists,
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=60, max_size=60),
    st.floats(0, 12 * DAY_S),
    st.sampled_from([4.0, 10.0, 30.0]),
    st.sampled_from(["a", "b", "c", None]),
)
def test_with_contexts_the_deadline_is_still_the_first_minute_over_the_limit(
    signs: list[float], labels: list[str], offset_s: float, period_h: float, context: str | None
) -> None:
    observations = RoutineObservations(_settings(min_context_gaps=2))
    for (a, b), label in zip(itertools.pairwise(signs), labels, strict=False):
        observations.observe_gap(a, b, label)
    routine = observations.routine()
    assert routine is not None
    last = MONDAY + math.floor(offset_s / 60) * 60
    due = routine.deadline_s(last, period_h, context)
    reference = None
    t = last
    while t < last + period_h * HOUR_S:
        if (t - last) / HOUR_S >= routine.allowed_h(t, context) - 1e-9:
            reference = t
            break
        t += 60
    if reference is None:
        assert due is None or due >= last + period_h * HOUR_S - 60
    else:
        assert due is not None
        assert reference - 60 < due <= reference + 1e-6
    # No learning gap is flagged (margin >= 0): what was seen stays allowed.
    for (a, b), label in zip(itertools.pairwise(signs), labels, strict=False):
        learned_due = routine.deadline_s(a, 24 * 30, label)
        assert learned_due is None or learned_due >= b - 1e-6

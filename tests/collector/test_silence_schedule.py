"""The deadline schedule: a heap with lazy invalidation, checked against a plain scan.

The clock is a float the test moves (a fake clock: the schedule never reads time itself).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.domain.silence import (
    LifeSignKind,
    SilenceLimit,
    decide_silence,
    from_epoch,
    silence_deadline,
)
from collector.domain.silence_routine import Routine, RoutineObservations, RoutineSettings
from collector.domain.silence_schedule import DeadlineHeap, HomeRow, SilenceTracker

H = 3600.0
HOMES = [f"h{i}" for i in range(6)]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(HOMES), st.floats(0, 1000)),
        st.tuples(st.just("remove"), st.sampled_from(HOMES), st.just(0.0)),
        st.tuples(st.just("pop"), st.just(""), st.floats(0, 1000)),
    ),
    max_size=200,
)


@given(ops)
def test_heap_pops_exactly_what_a_scan_finds_due(operations: list[tuple[str, str, float]]) -> None:
    heap = DeadlineHeap()
    model: dict[str, float] = {}
    for op, key, value in operations:
        if op == "set":
            heap.set(key, value)
            model[key] = value
        elif op == "remove":
            heap.remove(key)
            model.pop(key, None)
        else:
            popped = list(heap.pop_due(value))
            expected = sorted((due, k) for k, due in model.items() if due <= value)
            assert [(due, k) for k, due in popped] == expected
            for _, k in expected:
                del model[k]
        assert len(heap) == len(model)
        assert heap.next_due() == (min(model.values()) if model else None)


def test_heap_memory_stays_bounded_under_many_moves() -> None:
    heap = DeadlineHeap()
    for i in range(10_000):
        heap.set(f"h{i % 10}", float(i))
    assert len(heap._heap) <= 2 * len(heap) + 64  # white-box: compaction ran


# A scenario: per step, the clock moves forward by some minutes, and some homes show a life sign.
steps = st.lists(
    st.tuples(
        st.integers(0, 6 * 3600).map(float),
        st.lists(st.sampled_from(HOMES), max_size=3, unique=True),
    ),
    min_size=1,
    max_size=40,
)


def _routine() -> Routine:
    """A learned routine: quiet 1 h by day, 8 h overnight (epoch day 0 is a Thursday)."""
    observations = RoutineObservations(
        RoutineSettings(
            learning_days=0, margin_factor=1.0, margin_h=0.5, smooth_slots=2, utc_offset_h=0
        )
    )
    for day in range(7):
        base = day * 86400.0
        observations.observe_signs([base + h * 3600.0 for h in range(7, 24)])
        observations.observe_gap(base + 23 * 3600.0, base + 31 * 3600.0)
    routine = observations.routine()
    assert routine is not None
    return routine


ROUTINE = _routine()


def _routine_with_contexts() -> Routine:
    """The same days, but every sign labelled: "motion" by day (30 min to the next), "speech"
    before the night: a stretch after motion is allowed 1 h at any hour, even at night."""
    observations = RoutineObservations(
        RoutineSettings(
            learning_days=0,
            margin_factor=1.0,
            margin_h=0.5,
            smooth_slots=2,
            utc_offset_h=0,
            min_context_gaps=3,
        )
    )
    for day in range(7):
        base = day * 86400.0
        for h in range(7, 23):
            observations.observe_gap(base + h * 3600.0, base + (h + 0.5) * 3600.0, "motion")
            observations.observe_gap(base + (h + 0.5) * 3600.0, base + (h + 1) * 3600.0, "motion")
        observations.observe_gap(base + 23 * 3600.0, base + 31 * 3600.0, "speech")
    routine = observations.routine()
    assert routine is not None and routine.contexts == {"motion": 60, "speech": 510}
    return routine


ROUTINE_WITH_CONTEXTS = _routine_with_contexts()


def _kind_of(index: int, home: str) -> LifeSignKind:
    """Varied but reproducible kinds for the scenario's signs."""
    return LifeSignKind.MOTION if (index * 7 + int(home[1:])) % 3 else LifeSignKind.SPEECH


def _run(
    scenario: list[tuple[float, list[str]]],
    restart_at: int | None,
    routine: Routine | None = None,
    kinds: bool = False,
) -> list[tuple[str, float, float]]:
    """Replay; return (household, stretch start, due) for every flag raised."""
    tracker = SilenceTracker()
    now = 0.0
    for home in HOMES:
        tracker.life_sign(home, now, LifeSignKind.MOTION, period_h=10.0)
        tracker.configure(home, period_h=10.0, routine=routine, now_s=now)
    raised = []
    for index, (advance, homes) in enumerate(scenario):
        if index == restart_at:
            rows = tracker.rows()
            tracker = SilenceTracker()  # the collector restarted: only the store survives
            tracker.restore(rows)
        now += advance
        for flag in tracker.due(now):
            raised.append(
                (
                    flag.household_id,
                    flag.reason.last_life_sign_at.timestamp(),
                    flag.due_at.timestamp(),
                )
            )
        for home in homes:
            kind = _kind_of(index, home) if kinds else LifeSignKind.SPEECH
            tracker.life_sign(home, now, kind)
    return raised


def _by_scan(
    scenario: list[tuple[float, list[str]]], routine: Routine | None = None, kinds: bool = False
) -> list[tuple[str, float, float]]:
    """The same scenario decided by scanning every home with decide_silence at each tick."""
    now = 0.0
    last = dict.fromkeys(HOMES, 0.0)
    last_kind = dict.fromkeys(HOMES, LifeSignKind.MOTION)
    flagged: set[tuple[str, float]] = set()
    raised = []
    for index, (advance, homes) in enumerate(scenario):
        now += advance

        def due(h: str) -> float:
            return silence_deadline(last[h], 10.0, routine, last_kind[h].value).due_s

        for home in sorted(HOMES, key=lambda h: (due(h), h)):
            flag = decide_silence(
                home,
                last_sign_at=from_epoch(last[home]),
                last_kind=last_kind[home],
                period_h=10.0,
                routine=routine,
                now=from_epoch(now),
            )
            if flag is not None and (home, last[home]) not in flagged:
                flagged.add((home, last[home]))
                raised.append((home, last[home], flag.due_at.timestamp()))
        for home in homes:
            last[home] = now
            last_kind[home] = _kind_of(index, home) if kinds else LifeSignKind.SPEECH
    return raised


@settings(max_examples=150, deadline=None)
@given(steps, st.integers(0, 40))
def test_flags_match_a_scan_and_survive_a_restart(
    scenario: list[tuple[float, list[str]]], restart_at: int
) -> None:
    expected = _by_scan(scenario)
    assert _run(scenario, None) == expected
    assert _run(scenario, restart_at) == expected  # nothing missed, nothing raised twice


@settings(max_examples=100, deadline=None)
@given(steps, st.integers(0, 40))
def test_with_a_learned_routine_too(
    scenario: list[tuple[float, list[str]]], restart_at: int
) -> None:
    expected = _by_scan(scenario, ROUTINE)
    assert _run(scenario, None, ROUTINE) == expected
    assert _run(scenario, restart_at, ROUTINE) == expected


@settings(max_examples=100, deadline=None)
@given(steps, st.integers(0, 40))
def test_with_contexts_a_later_sign_can_bring_the_deadline_forward(
    scenario: list[tuple[float, list[str]]], restart_at: int
) -> None:
    """Signs of two kinds and a routine with a limit per kind: still the scan's flags, once,
    across a restart (the context comes back from the stored kind)."""
    expected = _by_scan(scenario, ROUTINE_WITH_CONTEXTS, kinds=True)
    assert _run(scenario, None, ROUTINE_WITH_CONTEXTS, kinds=True) == expected
    assert _run(scenario, restart_at, ROUTINE_WITH_CONTEXTS, kinds=True) == expected


def test_a_motion_sign_after_a_long_speech_stretch_moves_the_deadline_earlier() -> None:
    tracker = SilenceTracker()
    night = 2 * 86400.0 + 23.5 * 3600.0
    tracker.life_sign("h", night, LifeSignKind.SPEECH, period_h=10.0)
    tracker.configure("h", period_h=10.0, routine=ROUTINE_WITH_CONTEXTS, now_s=night)
    after_speech = tracker.deadline("h")
    assert after_speech is not None and after_speech.due_s > night + 5 * 3600.0
    tracker.life_sign("h", night + 60.0, LifeSignKind.MOTION)
    after_motion = tracker.deadline("h")
    assert after_motion is not None
    assert after_motion.due_s == pytest.approx(night + 60.0 + 3600.0)  # motion: 1 h at any hour
    assert after_motion.limit is SilenceLimit.ROUTINE
    # The row keeps the context; a row with only a kind (older store) gets it from the kind.
    row = tracker.row("h")
    assert row is not None and row.last_context == "motion"
    again = SilenceTracker()
    again.restore([HomeRow("h", row.last_life_sign_s, 10.0, ROUTINE_WITH_CONTEXTS, row.last_kind)])
    assert again.deadline("h") == after_motion
    labelled = SilenceTracker()
    labelled.life_sign("h", night, period_h=10.0, context="speech")
    labelled.configure("h", period_h=10.0, routine=ROUTINE_WITH_CONTEXTS, now_s=night)
    assert labelled.deadline("h") == after_speech and labelled.last_context("h") == "speech"


def test_a_deadline_that_passed_while_down_is_raised_at_once_and_only_once() -> None:
    rows = [
        HomeRow("quiet", 0.0, 10.0),
        HomeRow("flagged-already", 0.0, 10.0, flagged_for_s=0.0),
        HomeRow("flagged-then-moved", 5 * H, 10.0, flagged_for_s=0.0),
    ]
    tracker = SilenceTracker()
    tracker.restore(rows)
    flags = tracker.due(20 * H)
    assert {f.household_id for f in flags} == {"quiet", "flagged-then-moved"}
    assert all(f.reason.limit is SilenceLimit.PERIOD for f in flags)
    assert tracker.due(40 * H) == []


def test_a_late_life_sign_never_moves_a_deadline_back() -> None:
    tracker = SilenceTracker()
    tracker.life_sign("h", 5 * H, period_h=10.0)
    assert tracker.life_sign("h", 1 * H) is False
    deadline = tracker.deadline("h")
    assert deadline is not None and deadline.due_s == 15 * H


def test_an_unconfigured_home_needs_a_period() -> None:
    with pytest.raises(KeyError, match="no silence period"):
        SilenceTracker().life_sign("new", 0.0)


def test_the_routine_used_above_really_flags_before_the_period() -> None:
    by_day = silence_deadline(10 * H, 10.0, ROUTINE)  # Thursday 10:00: 1 h quiet is normal
    assert by_day.limit is SilenceLimit.ROUTINE and by_day.due_s < 12 * H
    at_night = silence_deadline(23 * H, 10.0, ROUTINE)  # bedtime: the night is allowed
    assert at_night.due_s >= 31 * H

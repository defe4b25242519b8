"""The silence core: periods from the rule table, deadlines, flags and their reasons."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.domain.silence import (
    LifeSignKind,
    PeriodRules,
    ResidentFactors,
    RuleTableError,
    SilenceLimit,
    WelfareCategory,
    decide_silence,
    silence_deadline,
)
from collector.domain.silence_routine import Routine, RoutineObservations, RoutineSettings

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)  # a Monday
H = 3600.0


def test_default_table_gives_one_to_five_days_for_homes_without_sensors() -> None:
    rules = PeriodRules()
    plain = ResidentFactors(sensor_home=False)
    fragile = ResidentFactors(
        welfare_category=WelfareCategory.BASIC_LIVELIHOOD,
        disability=True,
        housing_vulnerable=True,
        sensor_home=False,
    )
    looked_after = ResidentFactors(
        lives_with_family=True, receives_services=True, sensor_home=False
    )
    assert rules.period_h(plain) == 72
    assert rules.period_h(fragile) == 24  # 3 − 3 = 0 steps, clamped to 1 day
    assert rules.period_h(looked_after) == 120


def test_sensor_homes_get_hours_never_shorter_than_a_night() -> None:
    rules = PeriodRules()
    assert rules.period_h(ResidentFactors()) == 14
    fragile = ResidentFactors(disability=True, housing_vulnerable=True)
    assert rules.period_h(fragile) == 10
    assert rules.period_h(ResidentFactors(lives_with_family=True, receives_services=True)) == 18


def test_staff_override_beats_the_table_but_stays_within_bounds() -> None:
    rules = PeriodRules()
    assert rules.period_h(ResidentFactors(override_h=6)) == 6
    assert rules.period_h(ResidentFactors(override_h=0.1)) == rules.min_period_h


def test_rule_table_from_a_file_names_the_bad_field() -> None:
    rules = PeriodRules.from_mapping(
        {"base_steps": 2, "category_steps": {"near_poverty": -1}}, "seodaemun.toml"
    )
    assert rules.period_h(ResidentFactors(welfare_category=WelfareCategory.NEAR_POVERTY)) == 10
    with pytest.raises(RuleTableError, match=r"seodaemun.toml: unknown field 'base'"):
        PeriodRules.from_mapping({"base": 2}, "seodaemun.toml")
    with pytest.raises(RuleTableError, match=r"x.toml: base_steps must be an integer"):
        PeriodRules.from_mapping({"base_steps": "3"}, "x.toml")
    with pytest.raises(RuleTableError, match=r"category_steps.rich: unknown welfare category"):
        PeriodRules.from_mapping({"category_steps": {"rich": 1}}, "x.toml")
    with pytest.raises(RuleTableError, match=r"x.toml: need 1 <= min_steps"):
        PeriodRules.from_mapping({"base_steps": 9}, "x.toml")


def test_no_flag_within_the_period_and_a_flag_with_its_reason_after() -> None:
    args = {"last_kind": LifeSignKind.MOTION, "period_h": 10.0, "routine": None}
    before = T0 + dt.timedelta(hours=9, minutes=59)
    assert decide_silence("h1", last_sign_at=T0, now=before, **args) is None  # type: ignore[arg-type]
    flag = decide_silence("h1", last_sign_at=T0, now=T0 + dt.timedelta(hours=10), **args)  # type: ignore[arg-type]
    assert flag is not None
    assert flag.reason.limit is SilenceLimit.PERIOD
    assert flag.reason.last_life_sign_at == T0
    assert flag.due_at == T0 + dt.timedelta(hours=10)
    assert "10시간" in flag.reason.describe() and "motion" in flag.reason.describe()


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide_silence(
            "h1",
            last_sign_at=dt.datetime(2026, 1, 1),
            last_kind=None,
            period_h=10,
            routine=None,
            now=T0,
        )


def _routine_of_a_regular_home(smooth_slots: int = 4) -> RoutineSettings:
    return RoutineSettings(
        learning_days=14, margin_factor=1.0, margin_h=1.0, smooth_slots=smooth_slots, utc_offset_h=0
    )


def test_a_routine_flags_an_unusual_morning_sooner_than_the_period() -> None:
    """Asleep 23:00–07:00, then a sign every 30 minutes until 23:00, for 14 days."""
    routine = _regular_home(_routine_of_a_regular_home())
    day0 = T0.replace(hour=0).timestamp()
    # Last sign at 09:00 on day 15: normal quiet by day is 0.5 h, + 1 h margin → flag at 10:30.
    last = day0 + 15 * 24 * H + 9 * H
    deadline = silence_deadline(last, 14.0, routine)
    assert deadline.limit is SilenceLimit.ROUTINE
    assert deadline.due_s == pytest.approx(last + 1.5 * H)
    # Going to bed at 23:00 is normal: the night's 8 h are allowed, and waking up to an hour
    # late (the ±4 slots of smoothing carry the night's 8 h into 07:00–08:00).
    bedtime = day0 + 15 * 24 * H + 23 * H
    night = silence_deadline(bedtime, 14.0, routine)
    assert night.limit is SilenceLimit.ROUTINE
    assert night.due_s == pytest.approx(bedtime + 9 * H)
    # The fixed period stays the upper bound.
    assert silence_deadline(bedtime, 6.0, routine).limit is SilenceLimit.PERIOD


def _regular_home(settings: RoutineSettings) -> Routine:
    observations = RoutineObservations(settings)
    day0 = T0.replace(hour=0).timestamp()
    signs = []
    for day in range(15):
        base = day0 + day * 24 * H
        signs += [base + 7 * H + i * 0.5 * H for i in range(33)]  # 07:00 … 23:00
    observations.observe_signs(signs)
    routine = observations.routine()
    assert routine is not None
    return routine


def test_without_smoothing_a_home_is_flagged_at_its_usual_waking_time() -> None:
    routine = _regular_home(_routine_of_a_regular_home(smooth_slots=0))
    bedtime = T0.replace(hour=0).timestamp() + 15 * 24 * H + 23 * H
    assert silence_deadline(bedtime, 14.0, routine).due_s == pytest.approx(bedtime + 8 * H)


def test_a_new_home_has_no_routine_and_uses_the_period() -> None:
    observations = RoutineObservations(_routine_of_a_regular_home())
    observations.observe_signs([T0.timestamp(), T0.timestamp() + 13 * 24 * H])
    assert observations.routine() is None
    assert silence_deadline(T0.timestamp(), 10.0, None).limit is SilenceLimit.PERIOD

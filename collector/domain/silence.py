"""Silent homes: what counts as a life sign, how long a home may stay quiet, and why it was flagged.

Rules, top to bottom:

1. Any :class:`LifeSignKind` resets the home's quiet stretch; none is weighted more than another.
2. A home's **silence period** comes from the resident's factors through a :class:`PeriodRules`
   table that district staff edit; a per-resident override (``override_h``) beats the table.
3. After its learning period a home also has a **learned routine**
   (:mod:`collector.domain.silence_routine`): the home is flagged as soon as the current quiet
   stretch is longer than the home normally shows at this time of day, or after a life sign of
   this context (in the collector: this kind), plus a margin. The fixed
   period stays the upper bound, and a home without a routine uses the fixed period alone.
4. A flag names the last life sign and the limit that was exceeded (:class:`SilenceReason`).

Pure: no clock, no I/O. Times are timezone-aware datetimes or, in the hot paths, float seconds
since the epoch (UTC); ``now`` is always an argument.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from collector.domain.silence_routine import Routine

HOUR_S = 3600.0
DAY_H = 24.0


class LifeSignKind(enum.StrEnum):
    """Something that shows the resident is up and about."""

    MOTION = "motion"
    """The PIR saw movement (an event or a heartbeat's ``motion_count``)."""
    SPEECH = "speech"
    """Voice activity near the speaker (a heartbeat's ``speech_s``)."""
    INTERACTION = "interaction"
    """The resident spoke to the speaker: a wake word or any recognised phrase."""
    BUTTON = "button"
    """The SOS button was pressed (an SOS or a cancel)."""
    CHECKIN_ANSWER = "checkin_answer"
    """The resident answered a check-in prompt."""
    EXTERNAL = "external"
    """A signal from outside the device, posted to the API: phone used, smart-meter reading."""


class SilenceLimit(enum.StrEnum):
    """Which limit a flagged home exceeded."""

    PERIOD = "period"
    """The fixed silence period (from the rule table or the resident's override)."""
    ROUTINE = "routine"
    """The home's learned routine for this time of day, plus its margin."""
    DEVICE_OFFLINE = "device_offline"
    """The device went offline and nothing else showed a life sign for the period."""


class WelfareCategory(enum.StrEnum):
    """The resident's welfare category, as the district records it."""

    BASIC_LIVELIHOOD = "basic_livelihood"
    """국민기초생활보장 수급자."""
    NEAR_POVERTY = "near_poverty"
    """차상위계층."""
    GENERAL = "general"
    """일반: neither of the above."""


@dataclass(frozen=True, slots=True)
class ResidentFactors:
    """What the district knows about a resident that bears on how soon silence is worrying."""

    welfare_category: WelfareCategory = WelfareCategory.GENERAL
    disability: bool = False
    housing_vulnerable: bool = False
    """Basement, rooftop room, goshiwon, unheated housing."""
    lives_with_family: bool = False
    receives_services: bool = False
    """Regular visits already: home-care helper, meal delivery, a 노인맞춤돌봄 carer."""
    sensor_home: bool = True
    """The home has an Anbu device (motion, voice), so life signs come many times a day."""
    override_h: float | None = None
    """Staff's per-resident period in hours; beats the table when set."""


class RuleTableError(ValueError):
    """A rule table from a file is malformed; the message names the field and the source."""


@dataclass(frozen=True, slots=True)
class PeriodRules:
    """The district's table from resident factors to a silence period. Staff edit it.

    A resident starts at ``base_steps`` and each factor moves them: risk factors make the period
    shorter (someone more fragile is checked sooner), protective ones longer (someone else is
    already looking in). The step count is clamped to ``min_steps..max_steps`` and then turned
    into hours: ``days_per_step`` days for homes known only through outside signals (phone,
    meter), ``sensor_hours_per_step`` hours above ``sensor_floor_h`` for homes with a device,
    whose life signs come many times a day.

    Defaults (our choice, following the factors Seodaemun's 1–5 day service uses; a district
    should set its own): base 3 steps; basic livelihood −1 (fewer people around, more health
    problems), disability −1, vulnerable housing −1 (cold, falls); family at home +1,
    services received +1. With one day per step this gives Seodaemun's 1–5 days. For sensor
    homes the same steps give 10–18 h: never below 10 h, because a night's sleep with no
    motion lasts 8–10 h in the homes we replayed (see ``docs/silence.md``).
    """

    base_steps: int = 3
    min_steps: int = 1
    max_steps: int = 5
    category_steps: Mapping[WelfareCategory, int] = field(
        default_factory=lambda: {
            WelfareCategory.BASIC_LIVELIHOOD: -1,
            WelfareCategory.NEAR_POVERTY: 0,
            WelfareCategory.GENERAL: 0,
        }
    )
    disability_steps: int = -1
    housing_vulnerable_steps: int = -1
    lives_with_family_steps: int = 1
    receives_services_steps: int = 1
    days_per_step: float = 1.0
    sensor_floor_h: float = 8.0
    sensor_hours_per_step: float = 2.0
    min_period_h: float = 1.0
    max_period_h: float = 24.0 * 14

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.base_steps <= self.max_steps:
            raise RuleTableError("need 1 <= min_steps <= base_steps <= max_steps")
        for name in ("days_per_step", "sensor_hours_per_step", "min_period_h"):
            if getattr(self, name) <= 0:
                raise RuleTableError(f"{name} must be > 0")
        if self.sensor_floor_h < 0 or self.max_period_h < self.min_period_h:
            raise RuleTableError("need sensor_floor_h >= 0 and max_period_h >= min_period_h")

    def steps(self, factors: ResidentFactors) -> int:
        """The resident's step count after every factor, clamped."""
        steps = self.base_steps + self.category_steps.get(factors.welfare_category, 0)
        steps += self.disability_steps if factors.disability else 0
        steps += self.housing_vulnerable_steps if factors.housing_vulnerable else 0
        steps += self.lives_with_family_steps if factors.lives_with_family else 0
        steps += self.receives_services_steps if factors.receives_services else 0
        return max(self.min_steps, min(self.max_steps, steps))

    def period_h(self, factors: ResidentFactors) -> float:
        """The resident's silence period in hours: the override if staff set one, else the table."""
        if factors.override_h is not None:
            hours = factors.override_h
        elif factors.sensor_home:
            hours = self.sensor_floor_h + self.sensor_hours_per_step * self.steps(factors)
        else:
            hours = DAY_H * self.days_per_step * self.steps(factors)
        return max(self.min_period_h, min(self.max_period_h, hours))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "rule table") -> PeriodRules:
        """Build from parsed TOML/JSON; raise :class:`RuleTableError` naming the bad field."""
        known = {f for f in cls.__dataclass_fields__}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise RuleTableError(f"{source}: unknown field {key!r}")
            if key == "category_steps":
                if not isinstance(value, Mapping):
                    raise RuleTableError(f"{source}: category_steps must be a table")
                table: dict[WelfareCategory, int] = {}
                for name, steps in value.items():
                    try:
                        category = WelfareCategory(name)
                    except ValueError:
                        raise RuleTableError(
                            f"{source}: category_steps.{name}: unknown welfare category"
                        ) from None
                    if not isinstance(steps, int) or isinstance(steps, bool):
                        raise RuleTableError(f"{source}: category_steps.{name} must be an integer")
                    table[category] = steps
                kwargs[key] = table
                continue
            expected = cls.__dataclass_fields__[key].type
            is_int = expected == "int"
            ok = isinstance(value, int) if is_int else isinstance(value, int | float)
            if isinstance(value, bool) or not ok:
                raise RuleTableError(
                    f"{source}: {key} must be {'an integer' if is_int else 'a number'}"
                )
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except RuleTableError as exc:
            raise RuleTableError(f"{source}: {exc}") from None


@dataclass(frozen=True, slots=True)
class SilenceReason:
    """Why a home was flagged, in the words staff read."""

    limit: SilenceLimit
    last_life_sign_at: dt.datetime
    last_kind: LifeSignKind | None
    limit_h: float
    """The quiet stretch that was allowed at the moment of the flag."""
    period_h: float
    """The fixed period, for comparison (equal to ``limit_h`` when the period was exceeded)."""

    def describe(self) -> str:
        """One line for the dashboard and the dispatch message (Korean)."""
        last = self.last_life_sign_at.strftime("%m-%d %H:%M")
        kind = f" ({self.last_kind.value})" if self.last_kind is not None else ""
        if self.limit is SilenceLimit.ROUTINE:
            return (
                # The limit is the time of day's or the last sign's kind's, whichever came first.
                f"마지막 생활 신호 {last}{kind}; 평소 이 시간대 또는 같은 신호 뒤의 최장 무활동 "
                f"{self.limit_h:.1f}시간을 넘김 (고정 기준 {self.period_h:.0f}시간)"
            )
        if self.limit is SilenceLimit.DEVICE_OFFLINE:
            return f"마지막 생활 신호 {last}{kind}; 기기 꺼짐, 기준 {self.period_h:.0f}시간 경과"
        return f"마지막 생활 신호 {last}{kind}; 무활동 기준 {self.period_h:.0f}시간 경과"


@dataclass(frozen=True, slots=True)
class SilenceFlag:
    """A home that has been quiet too long; raise it once per quiet stretch."""

    household_id: str
    flagged_at: dt.datetime
    due_at: dt.datetime
    reason: SilenceReason


def to_epoch(at: dt.datetime) -> float:
    """Seconds since the epoch; refuses naive datetimes (they would be read as local time)."""
    if at.tzinfo is None:
        raise ValueError("datetimes in the silence core must be timezone-aware")
    return at.timestamp()


def from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a home's quiet stretch becomes a flag, and which limit that will be."""

    due_s: float
    limit: SilenceLimit
    limit_h: float


def silence_deadline(
    last_sign_s: float,
    period_h: float,
    routine: Routine | None = None,
    context: str | None = None,
) -> Deadline:
    """When the stretch that began at ``last_sign_s`` (a sign of ``context``) must be flagged,
    if no life sign comes.

    The fixed period is the upper bound; a routine can only bring the deadline earlier.
    """
    if period_h <= 0:
        raise ValueError(f"period_h must be > 0, got {period_h}")
    fixed = Deadline(last_sign_s + period_h * HOUR_S, SilenceLimit.PERIOD, period_h)
    if routine is None:
        return fixed
    learned_s = routine.deadline_s(last_sign_s, period_h, context)
    if learned_s is None or learned_s >= fixed.due_s:
        return fixed
    return Deadline(learned_s, SilenceLimit.ROUTINE, (learned_s - last_sign_s) / HOUR_S)


def decide_silence(
    household_id: str,
    *,
    last_sign_at: dt.datetime,
    last_kind: LifeSignKind | None,
    period_h: float,
    routine: Routine | None,
    now: dt.datetime,
    context: str | None = None,
) -> SilenceFlag | None:
    """The flag due for a home at ``now``, or None while it is within its limits.

    ``context`` labels the last life sign for the routine; by default its kind.
    """
    if context is None and last_kind is not None:
        context = last_kind.value
    deadline = silence_deadline(to_epoch(last_sign_at), period_h, routine, context)
    if to_epoch(now) < deadline.due_s:
        return None
    reason = SilenceReason(deadline.limit, last_sign_at, last_kind, deadline.limit_h, period_h)
    return SilenceFlag(household_id, now, from_epoch(deadline.due_s), reason)

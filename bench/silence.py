"""Silence detection on a real home's log: time to detect and false alarms, fixed vs learned.

The log is split at ``--learn-days`` after the first day's midnight. The routine is learned on
the first part; the rest are the test days. Two replays go through the real
:class:`~collector.domain.silence_schedule.SilenceTracker` on an accelerated clock (the clock
jumps from event to event; flags come out of the schedule when the clock passes them):

* the untouched test days, one home: every flag is a false alarm (the resident was fine);
* ``--incidents`` copies of the home, each with its signs stopped at a random moment of the
  test days (uniform, seeded): time to detect = flag time − moment the signs stopped. An
  incident that falls inside a stretch that was already flagged (a false alarm in progress)
  counts as detected at once and is reported as ``already_flagged``.

Every sign carries its context (the sensor and its new state, ``bench/silence_logs.py``).
Detectors, side by side: ``fixed`` (the period alone), ``learned`` (the shipped routine: time of
day and context, + period cap), ``learned_time_of_day_only`` (the same without the context
limit: the routine before contexts), ``naive`` (the longest gap that started in the same hour
of day on a learning day, capped by the period: the baseline the issue quotes). Two bounds
come with them: ``any_detector_without_false_alarms_mean_ttd_h`` — a detector with no false
alarm on these test days cannot flag an incident before the moment the real log shows the next
life sign (its history until then is the same as the untouched day's);
``curve_fitted_on_the_test_days_mean_ttd_h`` — the best any time-of-day curve can do without
a false alarm, because it is fitted to the test days themselves.

    python bench/silence.py --log ../shared/data/ordonez-a/OrdonezA_Sensors.txt \
        --format ordonez --learn-days 10 [--incidents 2000] [--period-h 10] [--sweep]
        [--tune] [--tradeoff]

``--tune`` chooses the margins by leave-one-day-out on the learning days only; ``--tradeoff``
adds the best trade-off between time to detect and false alarms found over the margin grid,
measured on the test days (a description of what the family can do, not a choice).

Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.silence_logs import CONTEXT_READERS
from collector.domain.silence import HOUR_S
from collector.domain.silence_routine import (
    DAY_S,
    Routine,
    RoutineObservations,
    RoutineSettings,
)
from collector.domain.silence_schedule import SilenceTracker

DeadlineFn = Callable[[float], float]
_DEFAULTS = RoutineSettings()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), min(math.floor(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def replay_false_alarms(
    signs: Sequence[float],
    contexts: Sequence[str],
    test_start: float,
    period_h: float,
    routine: Routine | None,
) -> int:
    """Flags raised while replaying the untouched test days through the tracker."""
    tracker = SilenceTracker()
    first = bisect.bisect_left(signs, test_start)
    begin = max(0, first - 1)  # the stretch in progress when the test days begin
    start = signs[begin] if first > 0 else test_start
    tracker.life_sign("home", start, period_h=period_h, context=contexts[begin])
    tracker.configure("home", period_h=period_h, routine=routine, now_s=start)
    flags = 0
    for i in range(first, len(signs)):
        at = signs[i]
        # The clock reaches the next sign: anything due strictly before it fires (a sign that
        # arrives exactly at the deadline wins the tie).
        flags += len(tracker.due(math.nextafter(at, -math.inf)))
        tracker.life_sign("home", at, context=contexts[i])
    return flags


def replay_incidents(
    signs: Sequence[float],
    contexts: Sequence[str],
    moments: Sequence[float],
    period_h: float,
    routine: Routine | None,
) -> tuple[list[float], int]:
    """Time to detect (hours) for each incident, and how many fell in a flagged stretch."""
    tracker = SilenceTracker()
    stopped: dict[str, float] = {}
    for i, moment in enumerate(moments):
        index = bisect.bisect_right(signs, moment) - 1
        last = signs[index]
        household = f"incident-{i}"
        tracker.life_sign(household, last, period_h=period_h, context=contexts[index])
        tracker.configure(household, period_h=period_h, routine=routine, now_s=last)
        stopped[household] = moment
    ttd: list[float] = []
    already = 0
    # Accelerated clock: jump straight to the next deadline.
    while (due := tracker.next_due_s()) is not None:
        for flag in tracker.due(due):
            at = flag.due_at.timestamp()
            moment = stopped[flag.household_id]
            if at < moment:
                already += 1
            ttd.append(max(0.0, at - moment) / HOUR_S)
    return ttd, already


class NaiveHourRoutine:
    """Baseline: allow the longest gap that began in the same hour of day while learning."""

    def __init__(self, signs: Sequence[float], test_start: float) -> None:
        self.longest_h = [0.0] * 24
        learning = [s for s in signs if s < test_start]
        for a, b in itertools.pairwise(learning):
            hour = int((a % DAY_S) // HOUR_S)
            self.longest_h[hour] = max(self.longest_h[hour], (b - a) / HOUR_S)

    def deadline_s(
        self, last_sign_s: float, period_h: float, context: str | None = None
    ) -> float | None:
        allowed = self.longest_h[int((last_sign_s % DAY_S) // HOUR_S)]
        if allowed <= 0 or allowed >= period_h:
            return None
        return last_sign_s + allowed * HOUR_S


def evaluate(
    signs: Sequence[float],
    contexts: Sequence[str],
    test_start: float,
    test_days: float,
    moments: Sequence[float],
    period_h: float,
    routine: Routine | None,
) -> dict[str, float | int]:
    false_alarms = replay_false_alarms(signs, contexts, test_start, period_h, routine)
    ttd, already = replay_incidents(signs, contexts, moments, period_h, routine)
    return {
        "mean_ttd_h": round(statistics.fmean(ttd), 3),
        "p90_ttd_h": round(percentile(ttd, 0.9), 3),
        "false_alarms": false_alarms,
        "false_alarms_per_day": round(false_alarms / test_days, 3),
        "already_flagged": already,
    }


TUNE_GRID: dict[str, tuple[float, ...]] = {
    "margin_factor": (1.0, 1.25, 1.5, 2.0),
    "margin_h": (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0),
    "smooth_slots": (0, 4, 8, 12),
}


Gap = tuple[float, float, str]
"""A quiet stretch: start, end, and the context of the sign that began it."""


def gaps_of(signs: Sequence[float], contexts: Sequence[str], end_s: float) -> list[Gap]:
    """The stretches that ended before ``end_s``."""
    return [
        (signs[i], signs[i + 1], contexts[i]) for i in range(len(signs) - 1) if signs[i + 1] < end_s
    ]


def learn_routine(
    gaps: Sequence[Gap], factor: float, margin_h: float, smooth: int, *, by_context: bool = True
) -> Routine:
    settings = RoutineSettings(
        learning_days=0.0,
        margin_factor=factor,
        margin_h=margin_h,
        smooth_slots=smooth,
        utc_offset_h=0.0,  # the logs are in the home's local time
        by_context=by_context,
    )
    observations = RoutineObservations(settings)
    for a, b, context in gaps:
        observations.observe_gap(a, b, context)
    routine = observations.routine()
    assert routine is not None
    return routine


def tune_on_learning_days(
    signs: Sequence[float],
    contexts: Sequence[str],
    first_midnight: float,
    learn_days: int,
    period_h: float,
    *,
    incidents_per_day: int,
    max_false_alarms_per_day: float,
    seed: int,
    grid: dict[str, tuple[float, ...]] | None = None,
    by_context: bool = True,
) -> dict[str, object]:
    """Choose margin_factor, margin_h and smooth_slots by leave-one-day-out over the learning
    days only: for each held-out learning day, learn on the others, replay the held-out day
    untouched (false alarms) and with incidents (time to detect). The choice is the fastest
    setting whose false alarms per held-out day stay within ``max_false_alarms_per_day``;
    the test days are never looked at."""
    grid = grid or TUNE_GRID
    rng = random.Random(seed)
    days = [
        (first_midnight + k * DAY_S, first_midnight + (k + 1) * DAY_S) for k in range(learn_days)
    ]
    learning_end = days[-1][1]
    cut = bisect.bisect_left(signs, learning_end)
    signs, contexts = signs[:cut], contexts[:cut]  # nothing of the test days
    gaps = gaps_of(signs, contexts, learning_end)
    folds = []
    for start, end in days:
        kept = [g for g in gaps if g[1] <= start or g[0] >= end]  # no gap touches the day
        # The held-out day as it happened: its signs, and the first one after it.
        upto = min(bisect.bisect_right(signs, end) + 1, len(signs))
        moments = sorted(rng.uniform(max(start, signs[0]), end) for _ in range(incidents_per_day))
        folds.append((start, kept, signs[:upto], contexts[:upto], moments))
    # The fixed period's own false alarms on the held-out days (a night longer than the period):
    # no routine can avoid those, so the limit is on what the routine adds.
    period_false_alarms = sum(
        replay_false_alarms(day_signs, day_contexts, start, period_h, None)
        for start, _, day_signs, day_contexts, _ in folds
    )
    results: list[dict[str, float]] = []
    for factor in grid["margin_factor"]:
        for margin_h in grid["margin_h"]:
            for smooth in grid["smooth_slots"]:
                false_alarms = 0
                ttd: list[float] = []
                for start, kept, day_signs, day_contexts, moments in folds:
                    routine = learn_routine(
                        kept, factor, margin_h, int(smooth), by_context=by_context
                    )
                    false_alarms += replay_false_alarms(
                        day_signs, day_contexts, start, period_h, routine
                    )
                    ttd += replay_incidents(signs, contexts, moments, period_h, routine)[0]
                results.append(
                    {
                        "margin_factor": factor,
                        "margin_h": margin_h,
                        "smooth_slots": smooth,
                        "cv_false_alarms_per_day": round(false_alarms / learn_days, 3),
                        "cv_added_false_alarms_per_day": round(
                            (false_alarms - period_false_alarms) / learn_days, 3
                        ),
                        "cv_mean_ttd_h": round(statistics.fmean(ttd), 3),
                    }
                )

    def added(r: dict[str, float]) -> float:
        return r["cv_added_false_alarms_per_day"]

    allowed = [r for r in results if added(r) <= max_false_alarms_per_day]
    if allowed:  # the fastest within the limit
        best = min(allowed, key=lambda r: (r["cv_mean_ttd_h"], added(r)))
    else:  # none is: the fewest added false alarms
        best = min(results, key=lambda r: (added(r), r["cv_mean_ttd_h"]))
    if os.environ.get("ANBU_BENCH_TUNE_ALL"):
        for r in results:
            print(json.dumps(r))
    return {
        **best,
        "cv_period_false_alarms_per_day": round(period_false_alarms / learn_days, 3),
        "settings_tried": len(results),
        "met_the_false_alarm_limit": bool(allowed),
    }


def pareto(rows: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    """The rows no other row beats on both false alarms and mean time to detect."""
    front: list[dict[str, float]] = []
    for row in sorted(rows, key=lambda r: (r["false_alarms"], r["mean_ttd_h"])):
        if not front or row["mean_ttd_h"] < front[-1]["mean_ttd_h"] - 1e-9:
            front.append(row)
    return front


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--format", choices=sorted(CONTEXT_READERS), required=True)
    parser.add_argument("--learn-days", type=float, default=10.0)
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument("--period-h", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--margin-factor", type=float, default=_DEFAULTS.margin_factor)
    parser.add_argument("--margin-h", type=float, default=_DEFAULTS.margin_h)
    parser.add_argument("--smooth-slots", type=int, default=_DEFAULTS.smooth_slots)
    parser.add_argument(
        "--sweep", action="store_true", help="also print the learned detector over a margin grid"
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="also choose the margins by leave-one-day-out on the learning days only",
    )
    parser.add_argument(
        "--tune-max-false-alarms-per-day",
        type=float,
        default=0.0,
        help="the false alarms per held-out learning day the tuned margins may cost",
    )
    parser.add_argument(
        "--tradeoff",
        action="store_true",
        help="also report the best time-to-detect / false-alarm trade-off over the margin grid",
    )
    args = parser.parse_args()
    if args.incidents < 1 or args.learn_days <= 0:
        parser.error("--incidents must be >= 1 and --learn-days > 0")

    started = time.perf_counter()
    labelled = CONTEXT_READERS[args.format](args.log)
    signs = [at for at, _ in labelled]
    contexts = [context for _, context in labelled]
    first_midnight = math.floor(signs[0] / DAY_S) * DAY_S
    test_start = first_midnight + args.learn_days * DAY_S
    if test_start >= signs[-1]:
        parser.error(f"--learn-days {args.learn_days} leaves no test days in {args.log}")
    test_days = (signs[-1] - test_start) / DAY_S
    rng = random.Random(args.seed)
    moments = sorted(rng.uniform(test_start, signs[-1]) for _ in range(args.incidents))
    learning_gaps = gaps_of(signs, contexts, test_start)

    def run(routine: Routine | None) -> dict[str, float | int]:
        return evaluate(signs, contexts, test_start, test_days, moments, args.period_h, routine)

    def learned(factor: float, margin_h: float, smooth: int, by_context: bool) -> Routine:
        return learn_routine(learning_gaps, factor, margin_h, smooth, by_context=by_context)

    fixed = run(None)
    routine = learned(args.margin_factor, args.margin_h, args.smooth_slots, True)
    learned_figures = run(routine)
    time_of_day_only = run(learned(args.margin_factor, args.margin_h, args.smooth_slots, False))
    naive = run(NaiveHourRoutine(signs, test_start))  # type: ignore[arg-type]
    # Best possible curve of the time-of-day family: the quiet in progress on the *test* days
    # themselves (no margin, no smoothing). Cheating on purpose: no time-of-day curve learned
    # from other days can have no false alarm and detect sooner than this.
    fitted_settings = RoutineSettings(
        learning_days=0.0,
        margin_factor=1.0,
        margin_h=0.0,
        smooth_slots=0,
        utc_offset_h=0.0,
        min_days_per_group=1e9,
        by_context=False,
    )
    fitted = RoutineObservations(fitted_settings)
    for a, b in itertools.pairwise(signs):
        if b >= test_start:
            fitted.observe_gap(a, b)
    fitted_routine = fitted.routine()
    assert fitted_routine is not None
    fitted_figures = run(fitted_routine)
    oracle = [(signs[bisect.bisect_right(signs, m)] if m < signs[-1] else m) - m for m in moments]
    grid_rows: list[dict[str, float]] = []
    if args.sweep or args.tradeoff:
        for by_context in (True, False):
            for factor in TUNE_GRID["margin_factor"]:
                for margin_h in TUNE_GRID["margin_h"]:
                    for smooth in TUNE_GRID["smooth_slots"]:
                        figures = run(learned(factor, margin_h, int(smooth), by_context))
                        row = {
                            "by_context": by_context,
                            "margin_factor": factor,
                            "margin_h": margin_h,
                            "smooth_slots": smooth,
                            **figures,
                        }
                        grid_rows.append(row)
                        if args.sweep:
                            print(json.dumps(row))
    tuned: dict[str, object] = {}
    if args.tune:
        if args.learn_days != int(args.learn_days) or args.learn_days < 2:
            parser.error("--tune needs a whole number of learning days, at least 2")
        for key, by_context in (("learned_tuned", True), ("learned_time_of_day_only_tuned", False)):
            choice = tune_on_learning_days(
                signs,
                contexts,
                first_midnight,
                int(args.learn_days),
                args.period_h,
                incidents_per_day=200,
                max_false_alarms_per_day=args.tune_max_false_alarms_per_day,
                seed=args.seed,
                by_context=by_context,
            )
            tuned_routine = learned(
                float(str(choice["margin_factor"])),
                float(str(choice["margin_h"])),
                int(str(choice["smooth_slots"])),
                by_context,
            )
            tuned[key] = {"chosen_on_learning_days": choice, **run(tuned_routine)}
    tradeoff: dict[str, object] = {}
    if args.tradeoff:
        for by_context in (True, False):
            key = "learned" if by_context else "learned_time_of_day_only"
            tradeoff[key] = [
                {
                    k: r[k]
                    for k in (
                        "margin_factor",
                        "margin_h",
                        "smooth_slots",
                        "mean_ttd_h",
                        "p90_ttd_h",
                        "false_alarms",
                        "false_alarms_per_day",
                    )
                }
                for r in pareto([r for r in grid_rows if r["by_context"] == by_context])
            ]
    result = {
        "bench": "silence",
        "log": args.log.name,
        "format": args.format,
        "learn_days": args.learn_days,
        "test_days": round(test_days, 3),
        "incidents": args.incidents,
        "seed": args.seed,
        "period_h": args.period_h,
        "routine": {
            "slot_min": routine.settings.slot_min,
            "smooth_slots": args.smooth_slots,
            "margin_factor": args.margin_factor,
            "margin_h": args.margin_h,
            "min_context_gaps": routine.settings.min_context_gaps,
            "contexts_with_a_limit": len(routine.contexts),
        },
        "fixed": fixed,
        "learned": learned_figures,
        "learned_time_of_day_only": time_of_day_only,
        "naive_hour_of_day": naive,
        **tuned,
        **({"tradeoff_on_the_test_days": tradeoff} if tradeoff else {}),
        "ratio_learned_to_fixed_mean_ttd": round(
            float(learned_figures["mean_ttd_h"]) / float(fixed["mean_ttd_h"]), 3
        ),
        "bounds": {
            "any_detector_without_false_alarms_mean_ttd_h": round(
                statistics.fmean(oracle) / HOUR_S, 3
            ),
            "curve_fitted_on_the_test_days_mean_ttd_h": fitted_figures["mean_ttd_h"],
            "curve_fitted_on_the_test_days_false_alarms": fitted_figures["false_alarms"],
        },
        "life_signs": len(signs),
        "python": platform.python_version(),
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

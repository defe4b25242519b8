"""Silence schedule at district scale: memory per home and the lag from deadline to flag.

Builds a :class:`~collector.domain.silence_schedule.SilenceTracker` with ``--homes`` homes, a
``--routine-fraction`` of them with their own learned routine (384 bytes each), then runs for
``--seconds`` on the real clock: ``--due`` homes reach their deadline during the run (spread
evenly), while life signs arrive for random homes at ``--signs-per-s`` (each one moves that
home's deadline: heap push + lazy invalidation). The loop sleeps until the next deadline or the
next batch of life signs, whichever is sooner, as the collector's runtime would.

Lag = the moment :meth:`SilenceTracker.due` handed out the flag − its deadline.

    python bench/silence_scale.py --homes 1000000 [--seconds 20] [--due 100000]

Prints one JSON line last (``rss_bytes_per_home``, ``flag_lag_p99_ms`` and the conditions).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.domain.silence import LifeSignKind
from collector.domain.silence_routine import RoutineObservations, RoutineSettings
from collector.domain.silence_schedule import SilenceTracker

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--due", type=int, default=100_000, help="deadlines during the run")
    parser.add_argument("--signs-per-s", type=float, default=20_000.0)
    parser.add_argument("--routine-fraction", type=float, default=0.5)
    parser.add_argument("--period-h", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 0 < args.due <= args.homes or args.seconds <= 0:
        parser.error("need 0 < --due <= --homes and --seconds > 0")
    rng = random.Random(args.seed)

    # A handful of distinct learned routines; every home holds its own copy (as after a
    # relearn from its own history), so memory is what a real district would use.
    settings = RoutineSettings(learning_days=0)
    templates = []
    for i in range(8):
        observations = RoutineObservations(settings)
        signs = sorted(rng.uniform(0, 14 * 86400) for _ in range(300 + 50 * i))
        for k, (a, b) in enumerate(itertools.pairwise(signs)):
            # Each stretch labelled with the kind that began it, as the collector does, so
            # every routine carries a limit per kind.
            observations.observe_gap(a, b, ("motion", "speech", "interaction")[k % 3])
        routine = observations.routine()
        assert routine is not None
        templates.append(routine)

    rss_before = rss_bytes()
    build_started = time.perf_counter()
    tracker = SilenceTracker()
    period_s = args.period_h * 3600
    due_ids = set(rng.sample(range(args.homes), args.due))
    # Homes not due during the run: last sign within the last minute, so even the shortest
    # learned allowance (margin_h) ends after the run.
    for i in range(args.homes):
        if i in due_ids:
            continue
        now = time.time()
        household = f"h{i:07d}"
        tracker.life_sign(
            household, now - rng.uniform(0, 60), LifeSignKind.MOTION, period_h=args.period_h
        )
        if rng.random() < args.routine_fraction:
            base = templates[i % len(templates)]
            routine = type(base)(
                base.settings, bytes(base.weekday), bytes(base.weekend), dict(base.contexts)
            )
            tracker.configure(household, period_h=args.period_h, routine=routine, now_s=now)
    # The homes live for the whole run: move them out of the cyclic collector's generations, as
    # the runtime does after restoring from the store (a full collection over millions of
    # objects would otherwise stall the loop for hundreds of milliseconds).
    gc.collect()
    gc.freeze()
    not_due = [i for i in range(args.homes) if i not in due_ids]
    # Homes due during the run: deadlines spread evenly over the run, which starts now.
    start = time.time() + 1.0
    for i in sorted(due_ids):
        last = start + rng.uniform(0, args.seconds) - period_s
        tracker.life_sign(f"h{i:07d}", last, LifeSignKind.MOTION, period_h=args.period_h)
    build_s = time.perf_counter() - build_started
    rss_after = rss_bytes()

    lags: list[float] = []
    n_signs = 0
    sign_cost: list[float] = []
    end = start + args.seconds + 1.0
    next_batch = time.time()
    batch_s = 0.01
    while (now := time.time()) < end:
        if now >= next_batch:
            count = int(args.signs_per_s * batch_s)
            t0 = time.perf_counter()
            for _ in range(count):
                i = not_due[rng.randrange(len(not_due))]
                tracker.life_sign(f"h{i:07d}", now, LifeSignKind.SPEECH)
            sign_cost.append((time.perf_counter() - t0) / max(count, 1))
            n_signs += count
            next_batch += batch_s
        for flag in tracker.due(time.time()):
            lags.append(flag.flagged_at.timestamp() - flag.due_at.timestamp())
        wake = min(next_batch, tracker.next_due_s() or end, end)
        delay = wake - time.time()
        if delay > 0:
            time.sleep(delay)
    # Reference, same run: one pass over every home's deadline (what a scan-per-tick design pays
    # on every tick), over a plain dict of floats, the cheapest scan there is.
    deadlines = {}
    for row in tracker.rows():
        deadlines[row.household_id] = row.last_life_sign_s + period_s
    scan_now = time.time()
    t0 = time.perf_counter()
    scanned_due = sum(1 for due in deadlines.values() if due <= scan_now)
    scan_ms = 1000 * (time.perf_counter() - t0)
    result = {
        "bench": "silence_scale",
        "homes": args.homes,
        "routine_fraction": args.routine_fraction,
        "period_h": args.period_h,
        "seconds": args.seconds,
        "flags_expected": args.due,
        "flags_raised": len(lags),
        "life_signs": n_signs,
        "life_sign_us_mean": round(1e6 * sum(sign_cost) / max(len(sign_cost), 1), 2),
        "rss_bytes_per_home": round((rss_after - rss_before) / args.homes),
        "rss_total_mib": round(rss_after / 2**20),
        "build_s": round(build_s, 1),
        "flag_lag_p50_ms": round(1000 * percentile(lags, 0.5), 3),
        "flag_lag_p99_ms": round(1000 * percentile(lags, 0.99), 3),
        "flag_lag_max_ms": round(1000 * max(lags, default=float("nan")), 3),
        "reference_scan_all_homes_ms": round(scan_ms, 1),
        "reference_scan_due": scanned_due,
        "scan_ms_over_flag_lag_p50_ms": round(scan_ms / max(1000 * percentile(lags, 0.5), 1e-3), 1),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return 0 if len(lags) == args.due else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""How stable geographic assignment is: households moved per home added or removed.

A district of N households (default 10,000) spread over Seodaemun's area with M caregivers
(default 100, capacity 100) is drawn once (``partition``); then homes are added one at a time and
removed one at a time. For each change both sides are measured in the same run:

* **stable**: ``reassign`` (what ``anbu collector assign`` does);
* **reference**: drawing every round afresh (``partition``, which already hands each new round
  to whoever held most of it).

Reported: households moved per change (other than the added one), min/median/max, time per
plan, the caregivers' largest and smallest rounds, and the mean distance of a home from its
round's middle. Prints progress, then one JSON line.

    python bench/assignment.py [--homes 10000] [--caregivers 100] [--changes 100]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.domain.geo_assignment import Home, Plan, middles_of, partition, reassign


def spread(plan: Plan, homes: list[Home], caregivers: list[int]) -> dict[str, float]:
    middles = middles_of(plan, homes, caregivers)
    counts = Counter(c for c in plan.caregiver_of.values() if c is not None)
    km = []
    for h in homes:
        c = plan.caregiver_of.get(h.id)
        m = middles.get(c) if c is not None else None
        if m is None or h.where is None:
            continue
        lat = math.radians((m[0] + h.where[0]) / 2)
        dx = math.radians(h.where[1] - m[1]) * math.cos(lat)
        km.append(6371.0 * math.hypot(dx, math.radians(h.where[0] - m[0])))
    return {
        "largest_round": max(counts.values()),
        "smallest_round": min(counts.get(c, 0) for c in caregivers),
        "mean_km_from_middle": round(statistics.fmean(km), 3),
    }


def applied(homes: list[Home], plan: Plan) -> list[Home]:
    return [Home(h.id, h.latitude, h.longitude, plan.caregiver_of[h.id], h.pinned) for h in homes]


def summary(values: list[float], digits: int = 1) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--homes", type=int, default=10_000)
    ap.add_argument("--caregivers", type=int, default=100)
    ap.add_argument("--capacity", type=int, default=100)
    ap.add_argument("--changes", type=int, default=100, help="adds, then as many removals")
    args = ap.parse_args()
    rng = random.Random(7)

    def new_home(i: int) -> Home:
        return Home(f"h{i:06d}", rng.uniform(37.55, 37.60), rng.uniform(126.90, 126.97))

    caregivers = list(range(1, args.caregivers + 1))
    # Leave room for the additions.
    start = [new_home(i) for i in range(args.homes - args.changes)]
    drawn = partition(start, caregivers, args.capacity)
    stable = applied(start, drawn)
    reference = list(stable)
    moved: dict[str, list[float]] = {"stable": [], "reference": []}
    took: dict[str, list[float]] = {"stable": [], "reference": []}
    print(f"{len(start)} homes drawn among {len(caregivers)} caregivers", file=sys.stderr)

    def step(side: str, homes: list[Home], added: str | None) -> list[Home]:
        fn = reassign if side == "stable" else partition
        t = time.perf_counter()
        plan = fn(homes, caregivers, args.capacity)
        took[side].append((time.perf_counter() - t) * 1000)
        moved[side].append(len([h for h in plan.moved if h != added]))
        return applied(homes, plan)

    next_id = args.homes
    for _ in range(args.changes):
        home = new_home(next_id)
        next_id += 1
        stable = step("stable", [*stable, home], home.id)
        reference = step("reference", [*reference, home], home.id)
    print("additions done", file=sys.stderr)
    for _ in range(args.changes):
        gone = rng.choice(stable).id
        stable = step("stable", [h for h in stable if h.id != gone], None)
        reference = step("reference", [h for h in reference if h.id != gone], None)
    final_stable = reassign(stable, caregivers, args.capacity)
    final_reference = partition(reference, caregivers, args.capacity)
    result = {
        "bench": "assignment",
        "homes": args.homes,
        "caregivers": args.caregivers,
        "capacity": args.capacity,
        "changes": {"added": args.changes, "removed": args.changes},
        "moved_per_change": {side: summary(v) for side, v in moved.items()},
        "moved_total": {side: int(sum(v)) for side, v in moved.items()},
        "ms_per_plan": {side: summary(v) for side, v in took.items()},
        "after": {
            "stable": spread(final_stable, stable, caregivers),
            "reference": spread(final_reference, reference, caregivers),
        },
        "machine": f"{platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Seeding and importing households: ``seed_district`` and ``load_households_json`` at scale.

Each repetition, on a fresh database (a SQLite file, or a database on a private PostgreSQL):
``seed`` makes N made-up homes with devices and caregivers (one per 100); ``import`` loads a
welfare office's file of N households (with caregivers, every tenth naming its device) into an
empty database; ``floor`` inserts the same N household rows with one bare bulk insert and no
generation or assignment — the reference the ratios are taken against.

    python bench/seed.py                                  # 100,000 homes, SQLite, 3 repetitions
    python bench/seed.py --database postgresql --homes 20000 --repeat 5

Prints one line per repetition, then one JSON line with ``seed_s``, ``import_s``, ``floor_s``
(min/median/max), the ratios of the medians, and the conditions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from collector.domain.assignment import caregivers_needed
from collector.store.db import Database
from collector.store.models import Household
from collector.store.seed import load_households_json, seed_district

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def office_file(path: Path, homes: int) -> Path:
    caregivers = [
        {
            "name": f"생활지원사{k}",
            "phone": f"010-0000-{k:04d}",
            "email": f"cg{k}@example.org",
            "district": "mapo",
        }
        for k in range(caregivers_needed(homes))
    ]
    households = [
        {
            "id": f"m{n:06d}",
            "district": "mapo",
            "resident_name": "박순자",
            "address": f"성미산로 {n}",
        }
        | ({"device_id": f"md{n:06d}"} if n % 10 == 0 else {})
        for n in range(homes)
    ]
    path.write_text(json.dumps({"caregivers": caregivers, "households": households}), "utf-8")
    return path


def floor_rows(homes: int) -> list[dict[str, Any]]:
    return [
        {"id": f"f{n:06d}", "district": "mapo", "resident_name": "박순자", "created_at": NOW}
        for n in range(homes)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="anbu-bench-seed-"))
    postgres = None
    if args.database == "postgresql":
        from tests.support.postgres import start_postgres

        postgres = start_postgres()
    counter = 0

    def fresh() -> Database:
        nonlocal counter
        counter += 1
        if postgres is not None:
            url = postgres.create_database(f"seed{counter}")
        else:
            url = f"sqlite:///{work / f'seed{counter}.sqlite3'}"
        db = Database(url)
        db.create_schema()
        return db

    office = office_file(work / "office.json", args.homes)
    figures: dict[str, list[float]] = {"seed_s": [], "import_s": [], "floor_s": []}
    try:
        for rep in range(args.repeat):
            db = fresh()
            started = time.perf_counter()
            result = seed_district(db, "seodaemun", args.homes, caregivers_needed(args.homes))
            figures["seed_s"].append(time.perf_counter() - started)
            assert len(result.household_ids) == args.homes and not result.unassigned
            db.dispose()

            db = fresh()
            started = time.perf_counter()
            imported = load_households_json(db, office, now=NOW)
            figures["import_s"].append(time.perf_counter() - started)
            assert imported.households_created == args.homes and not imported.unassigned
            db.dispose()

            db = fresh()
            rows = floor_rows(args.homes)
            started = time.perf_counter()
            with db.engine.begin() as conn:
                conn.execute(insert(Household), rows)
            figures["floor_s"].append(time.perf_counter() - started)
            db.dispose()
            print(
                f"run {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in figures.items()),
                file=sys.stderr,
            )
    finally:
        if postgres is not None:
            postgres.stop()

    median = {k: statistics.median(v) for k, v in figures.items()}
    print(
        json.dumps(
            {
                "bench": "seed",
                **{
                    k: {
                        "min": round(min(v), 2),
                        "median": round(median[k], 2),
                        "max": round(max(v), 2),
                    }
                    for k, v in figures.items()
                },
                "seed_ratio_to_floor": round(median["seed_s"] / median["floor_s"], 2),
                "import_ratio_to_floor": round(median["import_s"] / median["floor_s"], 2),
                "homes_per_s": round(args.homes / median["seed_s"]),
                "conditions": {
                    "homes": args.homes,
                    "caregivers": caregivers_needed(args.homes),
                    "database": args.database,
                    "repeat": args.repeat,
                    "cpus": os.cpu_count(),
                    "machine": platform.machine(),
                    "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0],
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

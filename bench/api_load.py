"""Dispatch list API under load: the real collector against a bare FastAPI endpoint, side by side.

Populates a database (default 10,000 homes and 5,000 dispatches) on SQLite or a private
PostgreSQL, starts a private Mosquitto and a real ``anbu collector serve`` process over it, and a
bare FastAPI app (same uvicorn, one route returning the same page from memory, no database).
Load comes from another process: ``wrk`` (Debian package ``wrk``) when installed, otherwise a
bounded httpx/asyncio client in a subprocess. Each repetition loads the collector, then the bare
endpoint, so both see the same machine noise; the ratio is the collector's median over the bare's.

    python bench/api_load.py --database sqlite        # ~1 minute
    python bench/api_load.py --database postgresql --seconds 10 --repeat 5 --connections 128
    python bench/api_load.py --list-cache-s 1     # repeated pages served from the micro-cache

Prints one line per run, then one JSON line: ``req_per_s`` and ``p99_ms`` (min/median/max over the
repetitions), the same for ``bare``, ``ratio``, ``errors`` (non-2xx answers, by status) and the
conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOKEN = "bench-api-token-0123456789"  # noqa: S105 (a throwaway collector)


def populate(url: str, homes: int, dispatches: int) -> float:
    """Seed ``homes`` households and ``dispatches`` dispatches; returns the seconds it took."""
    from sqlalchemy import insert, select

    from collector.domain.assignment import caregivers_needed
    from collector.store.db import Database
    from collector.store.models import Dispatch, DispatchReason, DispatchStatus, Household, Priority
    from collector.store.seed import seed_district

    started = time.perf_counter()
    db = Database(url)
    db.create_schema()
    seed_district(db, "seodaemun", homes, caregivers_needed(homes), rng_seed=5)
    rng = random.Random(5)
    now = dt.datetime.now(dt.UTC)
    with db.session() as session:
        homes_ = session.execute(select(Household.id, Household.caregiver_id)).all()
        rows: list[dict[str, Any]] = []
        for k in range(dispatches):
            hid, cid = rng.choice(homes_)
            status = rng.choices(list(DispatchStatus), weights=(1, 1, 1, 7))[0]
            sos = rng.random() < 0.3
            rows.append(
                {
                    "household_id": hid,
                    "caregiver_id": cid,
                    "reason": DispatchReason.SOS if sos else DispatchReason.SILENCE,
                    "priority": Priority.URGENT if sos else Priority.NORMAL,
                    "status": status,
                    "sos_message_id": f"sos{k:08d}" if sos else None,
                    "created_at": now - dt.timedelta(minutes=rng.uniform(0, 60 * 24 * 90)),
                    "escalation_level": 0,
                }
            )
        session.execute(insert(Dispatch), rows)
    db.dispose()
    return time.perf_counter() - started


# The bare reference: the same page, from memory, through the same FastAPI/uvicorn stack.


def serve_bare(port: int, page_file: Path) -> None:
    import uvicorn
    from fastapi import FastAPI

    page: dict[str, Any] = json.loads(page_file.read_text(encoding="utf-8"))
    app = FastAPI()

    @app.get("/api/v1/dispatches")
    def bare() -> dict[str, Any]:
        return page

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


# Load generators: wrk, or a bounded asyncio client.


def load_wrk(url: str, connections: int, seconds: float, threads: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _wrk_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p50 = _wrk_ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return {
        "req_per_s": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": {"non_2xx": int(bad.group(1)) if bad else 0}
        | ({"timeouts": int(timeouts.group(1))} if timeouts and timeouts.group(1) != "0" else {}),
    }


def _wrk_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


async def _load_httpx(url: str, connections: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        limits=limits, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                    code = str(response.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                latencies.append((time.perf_counter() - started) * 1000)
                if not code.startswith("2"):
                    errors[code] = errors.get(code, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "errors": errors,
    }


def load(loader: str, url: str, connections: int, seconds: float, threads: int) -> dict[str, Any]:
    if loader == "wrk":
        return load_wrk(url, connections, seconds, threads)
    out = subprocess.run(
        [sys.executable, __file__, "--load-httpx", url, str(connections), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--dispatches", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--limit", type=int, default=100, help="page size asked for")
    parser.add_argument("--query", default="", help="extra query string, e.g. status=open")
    parser.add_argument("--loader", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument(
        "--list-cache-s",
        type=float,
        default=0.0,
        help="the collector's ANBU_API_LIST_CACHE_S (0: every page read from the database)",
    )
    parser.add_argument(
        "--serve-bare", nargs=2, metavar=("PORT", "PAGE_FILE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--load-httpx", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), Path(args.serve_bare[1]))
        return 0
    if args.load_httpx:
        url, connections, seconds = args.load_httpx
        print(json.dumps(asyncio.run(_load_httpx(url, int(connections), float(seconds)))))
        return 0

    from tests.e2e.processes import free_port, start_collector, wait_until
    from tests.support.mosquitto import COLLECTOR_USER, anbu_acl, anbu_users, start_broker

    loader = args.loader if args.loader != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    work = Path(tempfile.mkdtemp(prefix="anbu-bench-api-"))
    postgres = None
    if args.database == "postgresql":
        from tests.support.postgres import start_postgres

        postgres = start_postgres()
        url = postgres.create_database("anbu_bench")
    else:
        url = f"sqlite:///{work / 'collector.sqlite3'}"
    seeded_s = populate(url, args.homes, args.dispatches)
    print(f"populated in {seeded_s:.1f} s", file=sys.stderr)

    broker = start_broker(work / "broker", users=anbu_users(), acl=anbu_acl(COLLECTOR_USER))
    port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "ANBU_DATABASE_URL": url,
        "ANBU_HTTP_PORT": str(port),
        "ANBU_API_TOKEN": TOKEN,
        "ANBU_MQTT_URL": broker.url,
        "ANBU_MQTT_USERNAME": COLLECTOR_USER,
        "ANBU_MQTT_PASSWORD": broker.password(COLLECTOR_USER),
        "ANBU_MQTT_CLIENT_ID": f"collector-bench-{port}",
        "ANBU_LOG_LEVEL": "WARNING",
        "ANBU_API_LIST_CACHE_S": str(args.list_cache_s),
    }
    collector = start_collector(env, work / "collector.log", timeout_s=60)
    bare = None
    query = f"limit={args.limit}" + (f"&{args.query}" if args.query else "")
    collector_url = f"http://127.0.0.1:{port}/api/v1/dispatches?{query}"
    bare_url = f"http://127.0.0.1:{bare_port}/api/v1/dispatches?{query}"
    runs: dict[str, list[dict[str, Any]]] = {"collector": [], "bare": []}
    try:
        page = httpx.get(collector_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        page.raise_for_status()
        page_file = work / "page.json"
        page_file.write_bytes(page.content)
        bare = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(bare_port), str(page_file)],
            stdout=subprocess.DEVNULL,
            stderr=(work / "bare.log").open("wb"),
        )

        def bare_up() -> bool:
            try:
                return httpx.get(bare_url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(bare_up, 30, "bare endpoint")
        assert httpx.get(bare_url).content == page.content, "bare page differs"
        for rep in range(args.repeat):
            for name, target in (("collector", collector_url), ("bare", bare_url)):
                result = load(loader, target, args.connections, args.seconds, args.threads)
                runs[name].append(result)
                print(f"run {rep + 1} {name}: {json.dumps(result)}", file=sys.stderr)
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(timeout=10)
        collector.stop()
        broker.stop()
        if postgres is not None:
            postgres.stop()

    def figures(name: str) -> dict[str, Any]:
        errors: dict[str, int] = {}
        for run in runs[name]:
            for code, n in run["errors"].items():
                errors[code] = errors.get(code, 0) + n
        return {
            "req_per_s": _spread([r["req_per_s"] for r in runs[name]]),
            "p99_ms": _spread([r["p99_ms"] for r in runs[name]]),
            "p50_ms": _spread([r["p50_ms"] for r in runs[name]]),
            "errors": errors,
        }

    mine, ref = figures("collector"), figures("bare")
    ratios = [
        c["req_per_s"] / b["req_per_s"]
        for c, b in zip(runs["collector"], runs["bare"], strict=True)
    ]
    print(
        json.dumps(
            {
                "bench": "api_load",
                **mine,
                "bare": ref,
                "ratio": round(mine["req_per_s"]["median"] / ref["req_per_s"]["median"], 3),
                "ratio_per_run": [round(r, 3) for r in ratios],
                "conditions": {
                    "database": args.database,
                    "homes": args.homes,
                    "dispatches": args.dispatches,
                    "path": f"/api/v1/dispatches?{query}",
                    "page_bytes": len(page.content),
                    "connections": args.connections,
                    "seconds_per_run": args.seconds,
                    "repeat": args.repeat,
                    "loader": loader,
                    "list_cache_s": args.list_cache_s,
                    "populate_s": round(seeded_s, 1),
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

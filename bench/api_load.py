"""Dispatch list API under load: the real collector against a bare FastAPI endpoint, side by side.

Populates a database (default 10,000 homes and 5,000 dispatches) on SQLite or a private
PostgreSQL, starts a private Mosquitto and a real ``anbu collector serve`` process over it, and a
bare FastAPI app (same uvicorn, one route returning the same page from memory, no database).
Load comes from another process: ``wrk`` (Debian package ``wrk``) when installed, otherwise a
bounded httpx/asyncio client in a subprocess. Each repetition loads the collector, then the bare
endpoint, at each concurrency in turn, so both see the same machine noise; the ratio is the
collector's median over the bare's. Each server's CPU time per request (from ``/proc``) is
measured too: on a shared machine it moves less than the request rate does.

    python bench/api_load.py --database sqlite        # ~2 minutes
    python bench/api_load.py --database postgresql --seconds 10 --repeat 5 --connections 128
    python bench/api_load.py --list-cache-s 1     # repeated pages served from the micro-cache

Prints one line per run, then one JSON line: for the largest concurrency ``req_per_s`` and
``p99_ms`` (min/median/max over the repetitions), the same for ``bare``, ``ratio``,
``cpu_ms_per_req`` and ``cpu_ratio``, ``errors`` (answers by status other than 200, at any
concurrency) and ``server_errors`` (5xx); ``by_connections`` has the same for each concurrency;
then the conditions.
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
    from sqlalchemy import insert, select, text

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
    if db.dialect == "postgresql":
        # What autovacuum does to a table in service: the visibility map lets COUNT(*) read the
        # index alone, and the planner gets statistics. Right after a bulk load neither is there.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
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


WRK_STATUSES = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      io.write(string.format("status %d %d\\n", status, n))
    end
  end
end
"""
"""Counts the answers by HTTP status (wrk itself only counts "non-2xx or 3xx")."""


def load_wrk(url: str, connections: int, seconds: float, threads: int) -> dict[str, Any]:
    script = Path(tempfile.gettempdir()) / "anbu-bench-api-statuses.lua"
    script.write_text(WRK_STATUSES, encoding="utf-8")
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
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
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = {
        code: int(n) for code, n in re.findall(r"^status (\d+) (\d+)$", out, re.M) if code != "200"
    }
    timeouts = re.search(r"timeout (\d+)", out)
    if timeouts and timeouts.group(1) != "0":
        errors["timeouts"] = int(timeouts.group(1))
    return {
        "req_per_s": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "requests": requests,
        "errors": errors,
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
        "requests": len(latencies),
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


def _spread(values: list[float], digits: int = 1) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--dispatches", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--connections", default="1,16,64", help="concurrencies, comma-separated: each is run"
    )
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
    port = free_port()
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
    # start-up restores every home's silence schedule: give a loaded machine time for 100,000
    collector = start_collector(env, work / "collector.log", timeout_s=60 + args.homes / 500)
    bare = None
    query = f"limit={args.limit}" + (f"&{args.query}" if args.query else "")
    collector_url = f"http://127.0.0.1:{port}/api/v1/dispatches?{query}"
    concurrencies = [int(c) for c in str(args.connections).split(",")]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {
        (name, c): [] for name in ("collector", "bare") for c in concurrencies
    }
    try:
        page = httpx.get(collector_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        page.raise_for_status()
        page_file = work / "page.json"
        page_file.write_bytes(page.content)
        for _attempt in range(3):  # a free port can be taken by someone else meanwhile
            bare_port = free_port()
            bare_url = f"http://127.0.0.1:{bare_port}/api/v1/dispatches?{query}"
            bare = subprocess.Popen(
                [sys.executable, __file__, "--serve-bare", str(bare_port), str(page_file)],
                stdout=subprocess.DEVNULL,
                stderr=(work / "bare.log").open("wb"),
            )

            def bare_up(url: str = bare_url, proc: subprocess.Popen[bytes] = bare) -> bool:
                try:
                    return httpx.get(url, timeout=1).status_code == 200
                except httpx.HTTPError:
                    return proc.poll() is not None  # exited: try another port

            wait_until(bare_up, 60, "bare endpoint")
            if bare.poll() is None:
                break
        else:
            raise SystemExit(f"the bare endpoint did not start: {(work / 'bare.log').read_text()}")
        assert httpx.get(bare_url).content == page.content, "bare page differs"
        pids = {"collector": collector.popen.pid, "bare": bare.pid}
        for rep in range(args.repeat):
            for connections in concurrencies:
                for name, target in (("collector", collector_url), ("bare", bare_url)):
                    before = cpu_s(pids[name])
                    result = load(loader, target, connections, args.seconds, args.threads)
                    used = cpu_s(pids[name]) - before
                    result["cpu_ms_per_req"] = round(1000 * used / max(1, result["requests"]), 3)
                    runs[name, connections].append(result)
                    print(
                        f"run {rep + 1} c={connections} {name}: {json.dumps(result)}",
                        file=sys.stderr,
                    )
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(timeout=10)
        collector.stop()
        broker.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(work, ignore_errors=True)  # a 100,000-home database is ~45 MB

    def figures(name: str, connections: int) -> dict[str, Any]:
        errors: dict[str, int] = {}
        for run in runs[name, connections]:
            for code, n in run["errors"].items():
                errors[code] = errors.get(code, 0) + n
        return {
            "req_per_s": _spread([r["req_per_s"] for r in runs[name, connections]]),
            "p99_ms": _spread([r["p99_ms"] for r in runs[name, connections]]),
            "p50_ms": _spread([r["p50_ms"] for r in runs[name, connections]]),
            "cpu_ms_per_req": _spread([r["cpu_ms_per_req"] for r in runs[name, connections]], 3),
            "errors": errors,
        }

    def at(connections: int) -> dict[str, Any]:
        mine, ref = figures("collector", connections), figures("bare", connections)
        pairs = list(zip(runs["collector", connections], runs["bare", connections], strict=True))
        return {
            **mine,
            "bare": ref,
            "ratio": round(mine["req_per_s"]["median"] / ref["req_per_s"]["median"], 3),
            "ratio_per_run": [round(c["req_per_s"] / b["req_per_s"], 3) for c, b in pairs],
            "cpu_ratio": round(
                mine["cpu_ms_per_req"]["median"] / max(1e-9, ref["cpu_ms_per_req"]["median"]), 2
            ),
        }

    by_connections = {str(c): at(c) for c in concurrencies}
    headline = by_connections[str(max(concurrencies))]
    every_error: dict[str, int] = {}
    for figure in by_connections.values():
        for code, n in figure["errors"].items():
            every_error[code] = every_error.get(code, 0) + n
    print(
        json.dumps(
            {
                "bench": "api_load",
                **headline,
                "errors": every_error,
                "server_errors": sum(n for code, n in every_error.items() if code[0] == "5"),
                "by_connections": by_connections,
                "conditions": {
                    "database": args.database,
                    "homes": args.homes,
                    "dispatches": args.dispatches,
                    "path": f"/api/v1/dispatches?{query}",
                    "page_bytes": len(page.content),
                    "connections": concurrencies,
                    "seconds_per_run": args.seconds,
                    "repeat": args.repeat,
                    "loader": loader,
                    "list_cache_s": args.list_cache_s,
                    "populate_s": round(seeded_s, 1),
                    "vacuum_analyze": args.database == "postgresql",
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

"""The pages at district scale: the caregiver's dispatch page and the supervisor's map data over
N households (default 10,000), requests/s and latency percentiles, with ``/health`` measured in
the same run as the reference; then the map's time to first paint and to markers drawn in
Debian's Chromium.

The collector's app runs under uvicorn in this process (one worker, SQLite on a temp file, no
MQTT). For each endpoint a child process (so the client never takes the server's GIL) sends
requests one after another on one keep-alive connection for ``--seconds``, interleaved with the
two references: ``/health`` (a route that asks the database ``SELECT 1``) and ``/bench/bare`` (a
constant, through the same middleware). All three see the same machine load; the ratios of p50
and p99 to ``/health``'s are reported. The figures are per-request service times, not a
concurrency test. ``map_data_304`` is the map data asked with its current ETag.

    python bench/pages.py [--homes 10000] [--seconds 5] [--no-browser] [--postgres]

Prints progress, then one JSON line with the figures and the conditions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.auth.seed import seed_accounts
from collector.main import create_app
from collector.settings import CollectorSettings
from collector.store.db import Database
from collector.store.seed import seed_district
from tests.collector.conftest import FakeRuntime
from tests.support.smtp import free_port
from tests.web.conftest import raise_sos

PASSWORD = secrets.token_urlsafe(12)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Lane = list[tuple[str, str, dict[str, str]]]
"""(name, path, extra headers): requested one after another, round and round."""


def _client(base: str, cookies: dict[str, str], lane: Lane, seconds: float, out: Any) -> None:
    """In a child process, so that the client's work never competes with the server's for
    this process's GIL: the lane's requests in turn for ``seconds``; bodies are read raw
    (compressed when the server compressed them), as a browser's network stack would."""
    client = httpx.Client(
        base_url=base, cookies=cookies, headers={"Accept-Encoding": "gzip"}, timeout=30
    )
    latencies: dict[str, list[float]] = {name: [] for name, _, _ in lane}
    sizes: dict[str, int] = {}
    statuses: dict[str, int] = {}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, path, headers in lane:
            started = time.perf_counter()
            with client.stream("GET", path, headers=headers) as reply:
                size = sum(len(chunk) for chunk in reply.iter_raw())
            latencies[name].append(time.perf_counter() - started)
            sizes[name], statuses[name] = size, reply.status_code
    out.put((latencies, sizes, statuses))


def figures(latencies: list[float], size: int, status: int) -> dict[str, float]:
    total = sum(latencies)
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / total, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 1),
        "bytes_on_wire": size,
        "status": status,
    }


def measure(
    base: str, client: httpx.Client, name: str, path: str, seconds: float, **headers: str
) -> dict[str, Any]:
    """``path`` interleaved with the references (``/health``: a route that asks the database
    ``SELECT 1``; ``/bench/bare``: a constant), so all three see the same machine load."""
    lane: Lane = [
        (name, path, headers),
        ("health", "/health", {}),
        ("bare", "/bench/bare", {}),
    ]
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=_client, args=(base, dict(client.cookies), lane, seconds, out))
    child.start()
    latencies, sizes, statuses = out.get(timeout=seconds + 120)
    child.join(timeout=30)
    result: dict[str, Any] = {n: figures(latencies[n], sizes[n], statuses[n]) for n in latencies}
    for n, f in result.items():
        assert f["status"] in (200, 304), (n, f)
    target, health = result[name], result["health"]
    result["p99_ratio_to_health"] = round(target["p99_ms"] / health["p99_ms"], 2)
    result["p50_ratio_to_health"] = round(target["p50_ms"] / health["p50_ms"], 2)
    return result


def uptime() -> str:
    """The load average as ``uptime`` prints it: the figures mean little without it."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def log_in(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    reply = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf": csrf.group(1), "next": "/"},
    )
    assert reply.status_code in (200, 303), reply.text
    return client


MARKS_JS = """() => new Promise((done) => {
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const out = {drawn: performance.now()};
    for (const e of performance.getEntriesByType("mark")) { out[e.name] = e.startTime; }
    const data = performance.getEntriesByType("resource")
      .find((e) => e.name.endsWith("/map/data.json"));
    if (data) { out.data_response_end = data.responseEnd; }
    done(out);
  }));
})"""


PAINT_JS = """() => new Promise((done) => {
  requestAnimationFrame(() => requestAnimationFrame(() => done(
    performance.getEntriesByType("paint").map((e) => [e.name, e.startTime]))));
})"""


def browser_paint(base: str, homes: int) -> dict[str, float | None]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "chromium is missing"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/login?next=/map")
        page.fill("#username", "supervisor")
        page.fill("#password", PASSWORD)
        started = time.perf_counter()
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-map-ready=true]", timeout=120_000)
        ready_s = time.perf_counter() - started
        paint = page.evaluate(PAINT_JS)
        # On the map page's own clock (from its navigation): the data received and parsed, the
        # markers added, and two animation frames later (the canvas drawn): map.js's marks.
        marks = page.evaluate(MARKS_JS)
        # The reference in the same run: a page of the same site with no map (the login page).
        page.goto(f"{base}/login")
        bare_paint = page.evaluate(PAINT_JS)
        browser.close()
    firsts, reference = dict(paint), dict(bare_paint)

    def ms(value: object) -> float | None:
        return round(float(value), 1) if isinstance(value, int | float) else None

    return {
        "first_paint_ms": ms(firsts.get("first-paint")),
        "first_contentful_paint_ms": ms(firsts.get("first-contentful-paint")),
        "map_data_received_ms": ms(marks.get("data_response_end")),
        "map_data_parsed_ms": ms(marks.get("anbu-map-data")),
        "markers_added_ms": ms(marks.get("anbu-markers-added")),
        "markers_drawn_ms": ms(marks.get("anbu-markers-drawn")),
        "measured_at_ms": ms(marks.get("drawn")),
        "from_login_click_to_markers_s": round(ready_s, 2),
        "reference_login_page_first_paint_ms": ms(reference.get("first-paint")),
        "markers": homes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--caregivers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0, help="per endpoint")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument(
        "--postgres", action="store_true", help="a throwaway PostgreSQL instead of SQLite"
    )
    args = parser.parse_args()

    uptime_before = uptime()
    workdir = Path(tempfile.mkdtemp(prefix="anbu-bench-pages-"))
    postgres = None
    if args.postgres:
        from tests.support.postgres import start_postgres

        postgres = start_postgres()
        db = Database(postgres.create_database("anbu_bench"))
    else:
        db = Database(f"sqlite:///{workdir / 'anbu.sqlite3'}")
    db.create_schema()
    t0 = time.perf_counter()
    seed_district(db, "seodaemun", homes=args.homes, caregivers=args.caregivers, rng_seed=3)
    seed_accounts(db, "seodaemun", password=PASSWORD, now=dt.datetime.now(dt.UTC))
    print(f"seeded {args.homes} homes in {time.perf_counter() - t0:.1f} s", flush=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = CollectorSettings(
        database_url=db.url, public_url=base, link_secret=secrets.token_urlsafe(32)
    )
    app = create_app(FakeRuntime(db, settings), settings=settings)

    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    app.add_api_route("/bench/bare", bare)  # the framework's floor: middleware, no database
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                       timeout_graceful_shutdown=1)
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    # A dispatch in the first caregiver's care, opened through the real ingest path.
    with db.session() as s:
        from sqlalchemy import select

        from collector.store.accounts import Account
        from collector.store.models import Household

        caregiver_id = s.scalar(select(Account.caregiver_id).where(Account.username == "caregiver"))
        household = s.scalar(
            select(Household.id).where(Household.caregiver_id == caregiver_id).limit(1)
        )
    assert household is not None
    dispatch_id = raise_sos(db, household, base_url=base)

    caregiver = log_in(base, "caregiver")
    supervisor = log_in(base, "supervisor")
    # The first map request builds the district's snapshot; later ones share it (<= 1 s old).
    started = time.perf_counter()
    assert supervisor.get("/map/data.json").status_code == 200
    cold_map_ms = round((time.perf_counter() - started) * 1000, 1)
    print(f"first map request (cold snapshot build) {cold_map_ms} ms", flush=True)
    seconds = args.seconds
    results = {
        "dispatch_page": measure(
            base, caregiver, "dispatch_page", f"/care/dispatches/{dispatch_id}", seconds
        ),
        "caregiver_list": measure(base, caregiver, "caregiver_list", "/care", seconds),
        "map_data": measure(base, supervisor, "map_data", "/map/data.json", seconds),
    }
    etag = supervisor.get("/map/data.json").headers["etag"]
    results["map_data_304"] = measure(
        base, supervisor, "map_data_304", "/map/data.json", seconds, **{"If-None-Match": etag}
    )
    for name, lane in results.items():
        print(name, json.dumps(lane), flush=True)
    paint = None if args.no_browser else browser_paint(base, args.homes)
    if paint:
        print("map in chromium", paint, flush=True)
    server.should_exit = True
    thread.join(timeout=10)
    db.dispose()
    if postgres is not None:
        postgres.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "pages",
                "homes": args.homes,
                "caregivers": args.caregivers,
                "seconds_per_endpoint": args.seconds,
                "client": "1 keep-alive connection in a child process, sequential, each "
                "endpoint interleaved with /health and /bench/bare",
                "server": f"uvicorn, 1 worker, {db.dialect}",
                "results": results,
                "map_data_cold_first_request_ms": cold_map_ms,
                # snapshot builds vs refreshes that found the store unchanged (kept the bytes)
                "map_snapshot": {
                    "builds": getattr(app.state.web.map_cache, "builds", None),
                    "unchanged": getattr(app.state.web.map_cache, "unchanged", None),
                },
                "map_in_chromium": paint,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "p99_under_100ms": {
                    name: lane[name]["p99_ms"] < 100 for name, lane in results.items()
                },
                "uptime": uptime_before,
                "uptime_after": uptime(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

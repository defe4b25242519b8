"""Soak: 10,000 simulated homes for a simulated week: is collector memory flat, anything stuck?

Real parts on loopback: a private Mosquitto (the field's rules plus the simulator's user), a
private PostgreSQL seeded with the district (``collector.store.seed.seed_district``), an
aiosmtpd SMTP server and an HTTP SMS gateway in this process, the collector as its own process,
and ``anbu sim`` (in this process) for the homes: heartbeats following each resident's day, SOS
at ``--sos-per-home-day``, re-sent until acknowledged.

Time runs ``--rate-multiplier`` times faster, in both the collector and the simulator, from the
same three numbers (start, wall-clock origin, rate: bench/_scaled_collector.py says what the
collector's clock drives and what it cannot). The simulator's device clocks follow simulated
time too, so the collector's clock check sees plausible devices. Retention is shortened
(``--retention-days``) and run every simulated hour, so pruning happens inside the week.
Staff act like caregivers: every ``--sample-s`` real seconds this bench resolves (through the
API) every dispatch still open.

What is thinned, not accelerated: a real agent beats every 60 s; at rate 250, 10,000 homes
would send 42,000 heartbeats/s, beyond this machine (a first run with hourly beats, 560/s, fell
behind on a machine loaded by other work). ``--heartbeat-interval-s`` (default four simulated
hours, 170 heartbeats/s) sets the beat; the simulator's counters still cover the interval.
Simulated SOS are re-sent every 15 real seconds until acknowledged, the agent's default.

Measured: the collector's RSS every ``--sample-s`` (``/proc/PID/status`` VmRSS), medians of the
first and last quarter of the samples and their ratio (goal: within 5 %), for the main process
and the bulk child separately (its pid from ``/health``); the most messages queued in each lane
(``/health``); at the end, SOS not
acknowledged to the simulator, notifications still pending past their due time or failed,
dispatches whose escalation is overdue, SOS events without a dispatch.

    python bench/soak.py                                   # 10,000 homes, 7 days at x250 (~41 min)
    python bench/soak.py --homes 1000 --days 1 --rate-multiplier 600   # ~2.5 minutes

Prints a progress line per sample to stderr and one JSON line last on stdout.
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
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import func, select

from anbu.sim import SimSettings, Simulator
from collector.domain.assignment import caregivers_needed
from collector.store.db import Database
from collector.store.models import (
    Dispatch,
    DispatchStatus,
    EventRecord,
    Notification,
    NotificationStatus,
)
from collector.store.seed import seed_district
from firmware_config.acl import simulator_acls
from tests.e2e.processes import Proc, collector_env, free_port, start, wait_until
from tests.support.mosquitto import COLLECTOR_USER, anbu_acl, anbu_users, start_broker
from tests.support.postgres import start_postgres
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

DISTRICT = "seodaemun"
SIM_USER = "simulator"
TOKEN = "soak-" + "7f3a9c1e5b2d8046" * 3
LAUNCHER = str(Path(__file__).resolve().parent / "_scaled_collector.py")
STUCK_AFTER_S = 600.0
"""Simulated seconds past its due time after which a notification or escalation is stuck."""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def child_rss_kib(pid: int | None) -> int | None:
    """The bulk child's RSS, None if it is not known or gone."""
    if pid is None:
        return None
    try:
        return rss_kib(pid)
    except (OSError, RuntimeError):
        return None


def rss_figures(name: str, samples: list[int]) -> dict[str, Any]:
    if not samples:
        return {f"{name}_rss_samples": 0}
    first, last = quarter_medians(samples)
    return {
        f"{name}_rss_samples": len(samples),
        f"{name}_rss_first_quarter_median_mib": round(first / 1024, 1),
        f"{name}_rss_last_quarter_median_mib": round(last / 1024, 1),
        f"{name}_rss_ratio_last_to_first": round(last / first, 3),
        f"{name}_rss_min_mib": round(min(samples) / 1024, 1),
        f"{name}_rss_max_mib": round(max(samples) / 1024, 1),
    }


class Caregivers:
    """Resolves every open dispatch through the API, as the district's staff would."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        self.resolved = 0
        self.errors = 0
        self.last_error: str | None = None

    def _error(self, what: str) -> None:
        self.errors += 1
        self.last_error = what[:300]

    def resolve_open(self) -> None:
        for status in ("open", "acknowledged"):
            try:
                page = self.http.get(
                    "/api/v1/dispatches", params={"status": status, "limit": 500}
                ).json()
            except (httpx.HTTPError, ValueError) as exc:
                self._error(f"list {status}: {exc!r}")
                continue
            for dispatch in page.get("data", []):
                try:
                    r = self.http.post(
                        f"/api/v1/dispatches/{dispatch['id']}/resolve",
                        json={"outcome": "safe", "by": "soak staff"},
                    )
                except httpx.HTTPError as exc:
                    self._error(f"resolve: {exc!r}")
                    continue
                if r.status_code == 200:
                    self.resolved += 1
                elif r.status_code != 409:  # 409: changed meanwhile (e.g. a cancel)
                    self._error(f"resolve {r.status_code}: {r.text}")


def stuck(db: Database, now: dt.datetime) -> dict[str, int]:
    overdue = now - dt.timedelta(seconds=STUCK_AFTER_S)
    waiting = (NotificationStatus.PENDING, NotificationStatus.SENDING)
    with db.session() as s:

        def scalar(query: Any) -> int:
            return int(s.scalar(query) or 0)

        return {
            "notifications_overdue": scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status.in_(waiting), Notification.next_attempt_at < overdue)
            ),
            "notifications_failed": scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status == NotificationStatus.FAILED)
            ),
            "notifications_sent": scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status == NotificationStatus.SENT)
            ),
            "escalations_overdue": scalar(
                select(func.count())
                .select_from(Dispatch)
                .where(
                    Dispatch.status == DispatchStatus.OPEN,
                    Dispatch.next_escalation_at.is_not(None),
                    Dispatch.next_escalation_at < overdue,
                )
            ),
            "dispatches": scalar(select(func.count()).select_from(Dispatch)),
            "sos_events": scalar(
                select(func.count()).select_from(EventRecord).where(EventRecord.kind == "sos")
            ),
            "sos_without_dispatch": scalar(
                select(func.count())
                .select_from(EventRecord)
                .where(EventRecord.kind == "sos", EventRecord.dispatch_id.is_(None))
            ),
        }


def unwell(report: dict[str, Any]) -> dict[str, Any]:
    """The parts of a degraded /health answer that say what is wrong."""
    keys = ("status", "database", "mqtt_connected", "notification_delivery", "error")
    return {k: report[k] for k in keys if k in report}


def quarter_medians(samples: list[int]) -> tuple[float, float]:
    q = max(1, len(samples) // 4)
    return statistics.median(samples[:q]), statistics.median(samples[-q:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=7.0, help="simulated days")
    parser.add_argument("--rate-multiplier", type=float, default=250.0)
    parser.add_argument("--heartbeat-interval-s", type=float, default=14400.0, help="simulated")
    parser.add_argument("--sos-per-home-day", type=float, default=0.01)
    parser.add_argument("--retention-days", type=float, default=2.0)
    parser.add_argument("--sample-s", type=float, default=10.0, help="real seconds")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--tracemalloc-every-s",
        type=float,
        default=0.0,
        help="dump tracemalloc snapshots of the collector's main process this often (real s) "
        "under WORKDIR/tracemalloc; slows it down, so not for the figures",
    )
    args = parser.parse_args()
    rate = float(args.rate_multiplier)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="anbu-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    pg = start_postgres()
    broker = start_broker(
        workdir / "broker",
        users={**anbu_users(), SIM_USER: "simulator-secret"},
        acl=anbu_acl(COLLECTOR_USER, extra={SIM_USER: simulator_acls()}),
        max_queued_messages=1_000_000,
    )
    smtp = SmtpServer().start()
    sms = SmsGateway().start()
    db = Database(pg.create_database("soak"))
    start_s = time.time()
    db.create_schema()
    seed_district(
        db,
        DISTRICT,
        args.homes,
        caregivers_needed(args.homes),
        now=dt.datetime.fromtimestamp(start_s, dt.UTC),
    )
    wall0_s = time.time() + 1.0  # simulated time starts at start_s one real second from now

    def sim_now_s() -> float:
        return start_s + (time.time() - wall0_s) * rate

    http_port = free_port()
    env = collector_env(db.url, broker, smtp, sms, http_port) | {
        "ANBU_API_TOKEN": TOKEN,
        "ANBU_SILENCE_ENABLED": "true",
        "ANBU_SCHEDULER_INTERVAL_S": "1",
        # supervision expects the thinned beat, or every device looks offline after 15 min
        "ANBU_SUPERVISION_HEARTBEAT_INTERVAL_S": repr(args.heartbeat_interval_s),
        "ANBU_HEARTBEAT_RETENTION_DAYS": str(args.retention_days),
        "ANBU_SEEN_MESSAGE_RETENTION_DAYS": str(args.retention_days),
        "ANBU_RETENTION_INTERVAL_S": str(round(3600 / rate, 2)),  # every simulated hour
        "ANBU_SOAK_START_S": repr(start_s),
        "ANBU_SOAK_WALL0_S": repr(wall0_s),
        "ANBU_SOAK_RATE": repr(rate),
    }
    if args.tracemalloc_every_s > 0:
        env["ANBU_SOAK_TRACEMALLOC_DIR"] = str(workdir / "tracemalloc")
        env["ANBU_SOAK_TRACEMALLOC_EVERY_S"] = repr(args.tracemalloc_every_s)
    collector: Proc = start([], env, workdir / "collector.log", command=[sys.executable, LAUNCHER])
    base_url = f"http://127.0.0.1:{http_port}"

    def up() -> bool:
        if collector.popen.poll() is not None:
            raise AssertionError(f"collector exited:\n{collector.text()[-3000:]}")
        try:
            return httpx.get(f"{base_url}/health", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    wait_until(up, 180, "collector up")
    sim = Simulator(
        SimSettings(
            homes=args.homes,
            broker_url=broker.url,
            district=DISTRICT,
            heartbeat_interval_s=args.heartbeat_interval_s,
            rate_multiplier=rate,
            sos_per_home_day=args.sos_per_home_day,
            sos_resend_s=15.0,  # the agent's default
            start_at=dt.datetime.fromtimestamp(sim_now_s(), dt.UTC),
            username=SIM_USER,
            password="simulator-secret",  # noqa: S106
            progress_s=60.0,
        ),
        wall=sim_now_s,
    )
    caregivers = Caregivers(base_url)
    samples: list[int] = []
    child_samples: list[int] = []  # the bulk process (ANBU_INGEST_BULK_PROCESS)
    child_pids: set[int] = set()
    queued_max = {"events": 0, "bulk": 0}
    health_codes: dict[str, int] = {}
    degraded: list[dict[str, Any]] = []  # the first few 503 bodies: what was unwell
    stop = threading.Event()
    sim.start()
    sim_stopped = False
    sim_start_s = sim_now_s()
    end_sim_s = sim_start_s + args.days * 86400
    try:
        while sim_now_s() < end_sim_s and not stop.wait(args.sample_s):
            if collector.popen.poll() is not None:
                raise AssertionError(f"collector exited:\n{collector.text()[-3000:]}")
            samples.append(rss_kib(collector.popen.pid))
            caregivers.resolve_open()
            child_pid = None
            try:
                answer = httpx.get(f"{base_url}/health", timeout=5)
                code = str(answer.status_code)
                body = answer.json()
                if answer.status_code != 200 and len(degraded) < 3:
                    degraded.append(unwell(body))
                ingest = body.get("ingest", {})
                for lane in queued_max:
                    queued = int(ingest.get(lane, {}).get("queued") or 0)
                    queued_max[lane] = max(queued_max[lane], queued)
                child_pid = ingest.get("bulk", {}).get("process", {}).get("pid")
            except (httpx.HTTPError, ValueError, AttributeError):
                code = "0"
            child_kib = child_rss_kib(child_pid)
            if child_kib is not None and child_pid is not None:
                child_samples.append(child_kib)
                child_pids.add(child_pid)
            health_codes[code] = health_codes.get(code, 0) + 1
            day = (sim_now_s() - sim_start_s) / 86400
            child_mib = (child_kib or 0) / 1024
            print(
                f"day {day:5.2f} rss {samples[-1] / 1024:7.1f} MiB child {child_mib:7.1f} MiB "
                f"queued {queued_max} "
                f"sos pending {len(sim.pending_sos())} resolved {caregivers.resolved} "
                f"health {code}",
                file=sys.stderr,
                flush=True,
            )
        # let the last SOS be acknowledged before the homes go offline
        deadline = time.monotonic() + 60
        while sim.pending_sos() and time.monotonic() < deadline:
            time.sleep(0.5)
        summary = sim.stop()
        sim_stopped = True
        time.sleep(max(5.0, 2 * args.sample_s))  # the last notifications go out
        caregivers.resolve_open()
        end_state = stuck(db, dt.datetime.fromtimestamp(sim_now_s(), dt.UTC))
        final_health = httpx.get(f"{base_url}/health", timeout=10).json()
    finally:
        if not sim_stopped:
            sim.stop()  # its threads would keep the process alive
        collector.stop()
        smtp.stop()
        sms.stop()
        broker.stop()
        db.dispose()
        pg.stop()

    first, last = quarter_medians(samples)
    report = {
        "bench": "soak",
        "homes": args.homes,
        "simulated_days": round(summary.simulated_s / 86400, 2),
        "rss_samples": len(samples),
        "rss_first_quarter_median_mib": round(first / 1024, 1),
        "rss_last_quarter_median_mib": round(last / 1024, 1),
        "rss_ratio_last_to_first": round(last / first, 3),
        "rss_min_mib": round(min(samples) / 1024, 1),
        "rss_max_mib": round(max(samples) / 1024, 1),
        "rss_flat_within_5pct": abs(last / first - 1) <= 0.05,
        **rss_figures("bulk_child", child_samples),
        "bulk_child_pids": len(child_pids),
        "bulk_child_rss_flat_within_5pct": bool(child_samples)
        and abs(quarter_medians(child_samples)[1] / quarter_medians(child_samples)[0] - 1) <= 0.05,
        "queued_max_events": queued_max["events"],
        "queued_max_bulk": queued_max["bulk"],
        "heartbeats_sent": summary.heartbeats_sent,
        "heartbeats_coalesced": summary.heartbeats_coalesced,
        "sos_sent": summary.sos_sent,
        "sos_acked": summary.sos_acked,
        "sos_pending_at_end": summary.sos_pending,
        "ack_latency_p99_ms": summary.ack_latency_p99_ms,
        "ack_latency_max_ms": summary.ack_latency_max_ms,
        "checkins_received": summary.checkins_received,
        "checkins_answered": summary.checkins_answered,
        "checkins_unanswered": summary.checkins_unanswered,
        "checkins_expired": summary.checkins_expired,
        "sim_bad_commands": summary.bad_commands,
        "dispatches_resolved_by_staff": caregivers.resolved,
        "staff_api_errors": caregivers.errors,
        "staff_api_last_error": caregivers.last_error,
        **end_state,
        "mails_received": len(smtp.received),
        "health_during": health_codes,
        "health_degraded_samples": degraded,
        "health_at_end": final_health.get("status"),
        "store_failures": final_health.get("ingest", {}).get("store_failures"),
        "conditions": {
            "rate_multiplier": rate,
            "heartbeat_interval_s_simulated": args.heartbeat_interval_s,
            "sos_per_home_day": args.sos_per_home_day,
            "retention_days": args.retention_days,
            "sample_s": args.sample_s,
            "database": "postgresql",
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "python": platform.python_version(),
            "elapsed_s": round(time.monotonic() - started, 1),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    }
    print(json.dumps(report, ensure_ascii=False))
    ok = (
        report["rss_flat_within_5pct"]
        and report["bulk_child_rss_flat_within_5pct"]
        and report["notifications_overdue"] == 0
        and report["escalations_overdue"] == 0
        and report["sos_pending_at_end"] == 0
        and report["sos_without_dispatch"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

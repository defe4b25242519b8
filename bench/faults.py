"""Fault suite: SOS sent, received, dispatched once, notified, and the worst delay, per fault.

A district of real parts on loopback: a private Mosquitto (the contract's rules, every device
pinned to its home), a private PostgreSQL (tests/support/postgres.py), an ``anbu collector serve``
process kept running by a supervisor (what systemd's ``Restart=always`` does: start it again a
second after it exits, however it exited), one ``anbu agent run`` process per home (SOS button on
a gpiozero mock pin, pressed through the agent's control socket), an aiosmtpd SMTP server and an
HTTP SMS gateway in this process. Agents reach the broker through a pausable TCP proxy
(tests/support/tcp_proxy.py), so a network cut is a black hole, not a refusal. Each scenario gets
a fresh district; in each, every home presses its button ``--rounds`` times.

Scenarios (the fault lasts the seconds shown, times ``--scale``; ``--scale 1`` is real time):

* ``baseline`` (0 s): no fault, the reference the other delays are compared with;
* ``broker_restart`` (30 s): the broker is stopped (SIGTERM) while half the homes press, and
  started again;
* ``network_cut`` (600 s): agents and broker cut apart while every home presses;
* ``collector_kill9`` (0 s): the collector is killed with SIGKILL while the SOS come in; the
  supervisor starts it again;
* ``db_down_1min`` (60 s) and ``db_down_5min`` (300 s): PostgreSQL stopped (``pg_ctl stop -m
  fast``) while every home presses, then started again on the same port and data directory;
* ``notify_down`` (600 s): SMTP server stopped and SMS gateway answering 503;
* ``agent_power_loss`` (30 s): every home presses while cut off, then each agent is killed with
  SIGKILL (SOS still on its disk), power comes back (the agent starts again) and the cut ends;
* ``clock_jump`` (0 s): the agents' wall clocks jump (a third +6 h, a third -6 h, a third -45
  days, beyond the collector's 30-day window) before they press, and jump back to the true time
  (an NTP correction) before the rest of the presses (tests/support/clock_skew.py);
* ``combined`` (60 s): PostgreSQL down; during it the broker is stopped for a third of the
  outage and the collector is killed with SIGKILL (the supervisor restarts it into the outage).

"Manual restarts needed" counts scenarios that had not recovered on their own (every SOS received,
every home dispatched once and notified) within ``--settle-s`` after the fault ended. Restarting
the broker, PostgreSQL or an agent is part of the fault (the power coming back); the supervisor's
restarts of the collector are counted in ``supervisor_restarts``. Delays are from the press:
``worst_sos_delay_s`` to the collector's receipt of the first copy that it stored,
``worst_confirm_delay_s`` to the agent hearing ``sos_ack`` (stored and answered; the figure that
counts), ``worst_notify_delay_s`` from a home's first press to its first e-mail.
``health`` counts the collector's
``/health`` answers (sampled every 2 s) during the fault and after it.

    python bench/faults.py --scale 0.02            # short outages (>= 3 s), ~10 minutes
    python bench/faults.py --homes 20 --rounds 5   # 1,000 SOS, real 1/5/10-minute outages

Prints one line per scenario, then one JSON line with ``sos_total``, ``sos_lost``,
``sos_duplicated``, ``scenarios`` and ``manual_restarts_needed`` and the conditions.
``--combine FILE ...`` prints the summary of earlier runs' JSON lines (scenarios run in parallel
processes). The 7-day soak is bench/soak.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from collector.store.db import Database
from collector.store.models import Dispatch, EventRecord
from firmware_config.acl import DeviceGrant
from tests.collector.helpers import DISTRICT, register_homes
from tests.e2e.processes import (
    ANBU,
    Proc,
    agent_config,
    collector_env,
    drive,
    free_port,
    start,
    start_agent,
    start_collector,
)
from tests.support import clock_skew
from tests.support.mosquitto import COLLECTOR_USER, Broker, anbu_acl, start_broker
from tests.support.postgres import PostgresServer, start_postgres
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer
from tests.support.tcp_proxy import TcpProxy

BUTTON = 17
PRESS_GAP_S = 0.6
RESTART_SEC_S = 1.0
"""The supervisor's pause before starting an exited collector again (systemd ``RestartSec=``)."""
HEALTH_EVERY_S = 2.0
MIN_OUTAGE_S = 3.0
CLOCK_JUMPS_S = (6 * 3600.0, -6 * 3600.0, -45 * 86400.0)


@dataclass
class Home:
    device: str
    household: str
    config: Path
    control: Path
    log_dir: Path
    clock_file: Path | None = None
    """When set, the agent runs under tests/support/clock_skew.py with its offset in this file."""
    proc: Proc | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        command = ANBU if self.clock_file is None else clock_skew.command(self.clock_file)
        self.proc = start_agent(
            self.config,
            self.control,
            self.log_dir / f"{self.device}-{self.starts}.log",
            command=command,
            timeout_s=120,  # a loaded machine can take far longer than usual to start Python
        )

    def set_clock_offset(self, seconds: float) -> None:
        assert self.clock_file is not None
        clock_skew.set_offset(self.clock_file, seconds)

    def _log_records(self, msg: str) -> list[dict[str, str]]:
        records = []
        for log in sorted(self.log_dir.glob(f"{self.device}-*.log")):
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if f'"{msg}"' in line:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        continue
        return records

    def sos_ids(self) -> list[str]:
        """Message ids of every SOS this home's agent raised (its structured log)."""
        return [r["message_id"] for r in self._log_records("sos raised") if "message_id" in r]

    def held_on_device(self) -> set[str]:
        """SOS ids the agent still holds on its disk, re-sending them until confirmed."""
        outbox = self.config.parent / f"{self.device}-outbox.sqlite3"
        try:
            with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=5) as db:
                rows = db.execute("SELECT payload FROM held").fetchall()
        except sqlite3.Error:
            return set()
        ids = set()
        for (payload,) in rows:
            try:
                message = json.loads(payload)
            except ValueError:
                continue
            if message.get("kind") == "sos":
                ids.add(message["message_id"])
        return ids

    def confirmed_at(self) -> dict[str, float]:
        """When the agent first heard the collector's ``sos_ack`` for each SOS (log time, which
        stays true under tests/support/clock_skew.py)."""
        first: dict[str, float] = {}
        for r in self._log_records("sos confirmed"):
            at = dt.datetime.fromisoformat(r["ts"]).timestamp()
            first[r["sos_id"]] = min(first.get(r["sos_id"], at), at)
        return first


class Supervisor:
    """The collector's process kept alive the way systemd's ``Restart=always`` keeps it: when it
    exits (crash, SIGKILL, a failed start while the database is down), start it again after
    ``RESTART_SEC_S``. Nobody restarts anything by hand."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.restarts = 0
        # generous: on a loaded machine a cold start can take well over 20 s
        self.proc = start_collector(env, log_dir / "collector-0.log", timeout_s=120)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            if self.proc.popen.poll() is None:
                continue
            if self._stop.wait(RESTART_SEC_S):
                return
            with self._lock:
                self.restarts += 1
                log = self.log_dir / f"collector-{self.restarts}.log"
                self.proc = start(["collector", "serve"], self.env, log)

    def kill9(self) -> None:
        with self._lock:
            self.proc.kill9()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            self.proc.stop()


class HealthProbe:
    """Samples the collector's ``/health`` status code every ``HEALTH_EVERY_S`` (0: no answer)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEALTH_EVERY_S):
            try:
                code = httpx.get(self.url, timeout=2).status_code
            except httpx.HTTPError:
                code = 0
            self.samples.append((time.monotonic(), code))

    def between(self, start_s: float, end_s: float) -> dict[str, int]:
        counts = Counter(str(code) for t, code in self.samples if start_s <= t <= end_s)
        return dict(sorted(counts.items()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class District:
    workdir: Path
    broker: Broker
    proxy: TcpProxy
    smtp: SmtpServer
    sms: SmsGateway
    pg: PostgresServer
    db: Database
    supervisor: Supervisor
    health: HealthProbe
    homes: list[Home]
    presses: dict[str, list[float]] = field(default_factory=dict)

    def press(self, homes: list[Home]) -> None:
        for home in homes:
            self.presses.setdefault(home.household, []).append(time.time())
            drive(home.control, f"press {BUTTON}", f"release {BUTTON}")

    def press_rounds(self, homes: list[Home], rounds: int) -> None:
        for _ in range(rounds):
            self.press(homes)
            time.sleep(PRESS_GAP_S)

    def stop(self) -> None:
        self.health.stop()
        for home in self.homes:
            if home.proc is not None:
                home.proc.stop()
        self.supervisor.stop()
        self.proxy.stop()
        self.smtp.stop()
        self.sms.stop()
        self.broker.stop()
        self.db.dispose()
        self.pg.stop()


def build_district(
    workdir: Path, homes: int, *, skewed_clocks: bool = False, sos_resend_s: float = 1.0
) -> District:
    workdir.mkdir(parents=True)
    devices = tuple(f"dev-{n}" for n in range(1, homes + 1))
    users = {COLLECTOR_USER: "collector-secret", **{d: f"{d}-secret" for d in devices}}
    grants = [DeviceGrant(d, DISTRICT, f"h-{d.split('-')[1]}") for d in devices]
    broker = start_broker(workdir / "broker", users=users, acl=anbu_acl(COLLECTOR_USER, grants))
    proxy = TcpProxy(broker.host, broker.port).start()
    behind_proxy = dataclasses.replace(broker, port=proxy.port, _process=None)
    smtp = SmtpServer().start()
    sms = SmsGateway().start()
    pg = start_postgres()
    db = Database(pg.url)
    register_homes(db, devices)
    http_port = free_port()
    env = collector_env(db.url, broker, smtp, sms, http_port)
    supervisor = Supervisor(env, workdir)
    health = HealthProbe(f"http://127.0.0.1:{http_port}/health")
    district_homes = []
    for device in devices:
        household = f"h-{device.split('-')[1]}"
        config = agent_config(workdir / f"{device}.toml", behind_proxy, device, household)
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace("sos_resend_s = 1\n", f"sos_resend_s = {sos_resend_s}\n"), "utf-8"
        )
        control = workdir / f"{device}.sock"
        clock_file = workdir / f"{device}.clock" if skewed_clocks else None
        home = Home(device, household, config, control, workdir, clock_file)
        if clock_file is not None:
            home.set_clock_offset(0.0)
        district_homes.append(home)
    for home in district_homes:
        home.start()
    return District(workdir, broker, proxy, smtp, sms, pg, db, supervisor, health, district_homes)


# --- faults: each presses the buttons itself and returns when the fault has ended --------------


def _sleep_until(started: float, outage_s: float) -> None:
    time.sleep(max(0.0, outage_s - (time.monotonic() - started)))


def baseline(d: District, rounds: int, outage_s: float) -> None:
    d.press_rounds(d.homes, rounds)


def broker_restart(d: District, rounds: int, outage_s: float) -> None:
    half = len(d.homes) // 2
    d.press_rounds(d.homes[:half], rounds)
    d.broker.stop()
    started = time.monotonic()
    d.press_rounds(d.homes[half:], rounds)
    _sleep_until(started, outage_s)
    d.broker.start()


def network_cut(d: District, rounds: int, outage_s: float) -> None:
    d.proxy.pause()
    started = time.monotonic()
    d.press_rounds(d.homes, rounds)
    _sleep_until(started, outage_s)
    d.proxy.resume()


def collector_kill9(d: District, rounds: int, outage_s: float) -> None:
    for n in range(rounds):
        d.press(d.homes)
        if n == rounds // 2:
            d.supervisor.kill9()  # SOS of this round are on their way or half stored
        time.sleep(PRESS_GAP_S)


def db_down(d: District, rounds: int, outage_s: float) -> None:
    d.pg.pause()
    started = time.monotonic()
    d.press_rounds(d.homes, rounds)
    _sleep_until(started, outage_s)
    d.pg.start()


def notify_down(d: District, rounds: int, outage_s: float) -> None:
    d.smtp.stop()
    d.sms.fail_next(10**6, status=503, error="gateway down")
    started = time.monotonic()
    d.press_rounds(d.homes, rounds)
    _sleep_until(started, outage_s)
    received = d.smtp.received
    d.smtp = SmtpServer(port=d.smtp.port).start()
    d.smtp.received.extend(received)
    d.sms.clear_failures()


def agent_power_loss(d: District, rounds: int, outage_s: float) -> None:
    d.proxy.pause()
    started = time.monotonic()
    d.press_rounds(d.homes, rounds)
    time.sleep(0.5)  # on disk: the outbox commits before the press is answered
    for home in d.homes:
        assert home.proc is not None
        home.proc.kill9()
    for home in d.homes:
        home.start()
    _sleep_until(started, outage_s)
    d.proxy.resume()


def clock_jump(d: District, rounds: int, outage_s: float) -> None:
    for n, home in enumerate(d.homes):
        home.set_clock_offset(CLOCK_JUMPS_S[n % len(CLOCK_JUMPS_S)])
    time.sleep(1.0)  # the agents re-read their offset every 0.2 s; heartbeats carry it too
    skewed = max(1, math.ceil(rounds / 2))
    d.press_rounds(d.homes, skewed)
    time.sleep(1.0)
    for home in d.homes:
        home.set_clock_offset(0.0)  # the NTP correction: back to the true time
    time.sleep(1.0)
    d.press_rounds(d.homes, rounds - skewed)


def combined(d: District, rounds: int, outage_s: float) -> None:
    half = len(d.homes) // 2
    d.pg.pause()
    started = time.monotonic()
    d.press_rounds(d.homes[:half], rounds)
    d.broker.stop()
    d.supervisor.kill9()  # and the supervisor starts it into a database outage
    d.press_rounds(d.homes[half:], rounds)
    _sleep_until(started, outage_s / 3)
    d.broker.start()
    _sleep_until(started, outage_s)
    d.pg.start()


@dataclass(frozen=True)
class Scenario:
    run: Callable[[District, int, float], None]
    fault_s: float
    """How long the fault lasts at ``--scale 1`` (0: an instant fault)."""
    skewed_clocks: bool = False


SCENARIOS: dict[str, Scenario] = {
    "baseline": Scenario(baseline, 0),
    "broker_restart": Scenario(broker_restart, 30),
    "network_cut": Scenario(network_cut, 600),
    "collector_kill9": Scenario(collector_kill9, 0),
    "db_down_1min": Scenario(db_down, 60),
    "db_down_5min": Scenario(db_down, 300),
    "notify_down": Scenario(notify_down, 600),
    "agent_power_loss": Scenario(agent_power_loss, 30),
    "clock_jump": Scenario(clock_jump, 0, skewed_clocks=True),
    "combined": Scenario(combined, 60),
}


# --- measuring ----------------------------------------------------------------------------


def observe(d: District) -> dict[str, object]:
    sent = [i for home in d.homes for i in home.sos_ids()]
    with d.db.session() as s:
        events = s.execute(
            select(
                EventRecord.message_id,
                EventRecord.household_id,
                EventRecord.received_at,
                EventRecord.device_ts,
            ).where(EventRecord.kind == "sos")
        ).all()
        dispatches = Counter(s.scalars(select(Dispatch.household_id)).all())
    # one caregiver e-mail per stored SOS: the first "긴급 SOS", the others "SOS 반복"
    mails: Counter[str] = Counter()
    first_mail: dict[str, float] = {}
    for mail in list(d.smtp.received):
        subject = str(mail.message["Subject"])
        household = subject.rsplit("가구 ", 1)[-1]
        if household in d.presses and ("긴급 SOS" in subject or "SOS 반복" in subject):
            mails[household] += 1
            at = mail.accepted_at.timestamp()
            first_mail[household] = min(first_mail.get(household, at), at)
    stored = Counter(household for _m, household, _at, _ts in events)
    received_ids = {e[0] for e in events}
    on_devices = {i for home in d.homes for i in home.held_on_device()}
    first_press = {h: min(t) for h, t in d.presses.items()}
    # the k-th SOS a home's agent raised belongs to its k-th press
    pressed_at = {
        message_id: t
        for home in d.homes
        for message_id, t in zip(home.sos_ids(), d.presses.get(home.household, []), strict=False)
    }
    sos_delays = [
        received_at.timestamp() - pressed_at[message_id]
        for message_id, _household, received_at, _ts in events
        if message_id in pressed_at
    ]
    # how far the stored device time is from the press (the collector overrules far-off clocks)
    device_ts_error = [
        abs(device_ts.timestamp() - pressed_at[message_id])
        for message_id, _household, _received_at, device_ts in events
        if message_id in pressed_at
    ]
    confirmed = {k: v for home in d.homes for k, v in home.confirmed_at().items()}
    confirm_delays = [confirmed[m] - t for m, t in pressed_at.items() if m in confirmed]
    notify_delays = [first_mail[h] - first_press[h] for h in first_mail if h in first_press]
    households = set(d.presses)
    return {
        "sos_sent": len(sent),
        "sos_received": len(received_ids & set(sent)),
        # not stored, and no longer on its device either: gone
        "sos_lost": len(set(sent) - received_ids - on_devices),
        # not stored yet, still held (and re-sent) by its agent
        "sos_not_stored_still_on_device": len((set(sent) - received_ids) & on_devices),
        "sos_duplicated": len(sent) - len(set(sent)),
        "dispatched_once": sum(1 for h in households if dispatches.get(h) == 1),
        "dispatches_duplicated": sum(max(0, n - 1) for n in dispatches.values()),
        "notified": sum(1 for h in households if mails.get(h)),
        "sos_notified": sum(min(mails[h], stored[h]) for h in households),
        "notifications_duplicated": sum(max(0, mails[h] - stored[h]) for h in households),
        "homes": len(households),
        "sos_confirmed_to_agent": len(set(confirmed) & set(sent)),
        "worst_sos_delay_s": round(max(sos_delays), 2) if sos_delays else None,
        "worst_confirm_delay_s": round(max(confirm_delays), 2) if confirm_delays else None,
        "worst_notify_delay_s": round(max(notify_delays), 2) if notify_delays else None,
        "worst_stored_device_time_error_s": round(max(device_ts_error), 1)
        if device_ts_error
        else None,
    }


def observe_safely(d: District) -> dict[str, object] | None:
    """``observe``, or None while the database cannot answer (it may just have come back)."""
    try:
        return observe(d)
    except SQLAlchemyError:
        return None


def complete(result: dict[str, object] | None) -> bool:
    return (
        result is not None
        and result["sos_lost"] == 0
        and result["sos_sent"] == result["sos_received"]
        and result["sos_confirmed_to_agent"] == result["sos_sent"]
        and result["notified"] == result["homes"]
        and result["sos_notified"] == result["sos_sent"]
        and result["dispatched_once"] == result["homes"]
    )


def run_scenario(
    name: str,
    workdir: Path,
    homes: int,
    rounds: int,
    scale: float,
    settle_s: float,
    sos_resend_s: float = 1.0,
) -> dict[str, object]:
    scenario = SCENARIOS[name]
    outage_s = max(MIN_OUTAGE_S, scenario.fault_s * scale) if scenario.fault_s else 0.0
    district = build_district(
        workdir / name, homes, skewed_clocks=scenario.skewed_clocks, sos_resend_s=sos_resend_s
    )
    try:
        time.sleep(1.0)  # agents online
        started = time.monotonic()
        scenario.run(district, rounds, outage_s)
        fault_end = time.monotonic()
        deadline = fault_end + settle_s
        result = observe_safely(district)
        while not complete(result) and time.monotonic() < deadline:
            time.sleep(0.5)
            result = observe_safely(district)
        recovered_at = time.monotonic()
        time.sleep(2.0)  # late duplicates would show up now
        result = observe_safely(district) or observe_safely(district)
        if result is None:
            raise RuntimeError(f"{name}: the database did not answer after the fault")
        recovered = complete(result)
        result |= {
            "name": name,
            "fault_s": round(fault_end - started, 1),
            "outage_s": round(outage_s, 1),
            "recovered_s_after_fault": round(recovered_at - fault_end, 1),
            "recovered_on_its_own": recovered,
            "supervisor_restarts": district.supervisor.restarts,
            "health_during_fault": district.health.between(started, fault_end),
            "health_after_recovery": district.health.between(recovered_at, time.monotonic()),
        }
        return result
    finally:
        district.stop()


def mosquitto_version() -> str:
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "?"


def postgres_version() -> str:
    from tests.support.postgres import find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        return "?"
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "?"


def summarise(
    scenarios: list[dict[str, object]], conditions: dict[str, object]
) -> dict[str, object]:
    baseline_worst = next(
        (s["worst_confirm_delay_s"] for s in scenarios if s["name"] == "baseline"), None
    )
    for s in scenarios:
        worst = s["worst_confirm_delay_s"]
        s["worst_confirm_delay_vs_baseline"] = (
            round(float(worst) / float(baseline_worst), 1)  # type: ignore[arg-type]
            if worst is not None and baseline_worst
            else None
        )
    return {
        "bench": "faults",
        "sos_total": sum(int(s["sos_sent"]) for s in scenarios),  # type: ignore[call-overload]
        "sos_lost": sum(int(s["sos_lost"]) for s in scenarios),  # type: ignore[call-overload]
        "sos_duplicated": sum(
            int(s["sos_duplicated"]) + int(s["dispatches_duplicated"])  # type: ignore[call-overload]
            for s in scenarios
        ),
        "sos_not_stored_within_settle": sum(
            int(s.get("sos_not_stored_still_on_device", 0))  # type: ignore[call-overload]
            for s in scenarios
        ),
        "manual_restarts_needed": sum(1 for s in scenarios if not s["recovered_on_its_own"]),
        "scenarios": scenarios,
        "conditions": conditions,
    }


def combine(files: list[Path]) -> dict[str, object]:
    """One summary over earlier runs: their output's last JSON line, or a ``scenarios.jsonl``
    (one scenario a line, written as each ends, so a run that died still counts)."""
    scenarios: list[dict[str, object]] = []
    conditions: list[object] = []
    for path in files:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("{")]
        if not lines:
            raise SystemExit(f"{path}: no JSON line")
        if path.suffix == ".jsonl":
            scenarios += [json.loads(ln) for ln in lines]
            conditions.append({"from": str(path)})
            continue
        summary = json.loads(lines[-1])
        scenarios += summary["scenarios"]
        conditions.append(summary["conditions"])
    return summarise(scenarios, {"combined_from": [str(f) for f in files], "runs": conditions})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=5, help="agent processes per scenario")
    parser.add_argument("--rounds", type=int, default=1, help="button presses per home")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies each fault's length (1: real)"
    )
    parser.add_argument("--settle-s", type=float, default=420.0, help="recovery allowed after")
    parser.add_argument(
        "--sos-resend-s", type=float, default=1.0, help="agents' SOS re-send (default agent: 15)"
    )
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run these only")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--combine", nargs="+", type=Path, help="summarise earlier runs' output")
    args = parser.parse_args()
    if args.combine:
        summary = combine(args.combine)
    else:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="anbu-faults-"))
        started = time.monotonic()
        scenarios = []
        errored: list[dict[str, str]] = []
        workdir.mkdir(parents=True, exist_ok=True)
        for name in args.only or list(SCENARIOS):
            try:
                result = run_scenario(
                    name,
                    workdir,
                    args.homes,
                    args.rounds,
                    args.scale,
                    args.settle_s,
                    args.sos_resend_s,
                )
            except Exception as exc:  # the bench's own trouble (e.g. a start timed out)
                errored.append({"name": name, "error": f"{type(exc).__name__}: {exc}"[:500]})
                print(f"{name:18s} ERROR {errored[-1]['error']}", flush=True)
                continue
            scenarios.append(result)
            with (workdir / "scenarios.jsonl").open("a", encoding="utf-8") as out:
                out.write(json.dumps(result, ensure_ascii=False) + "\n")
            print(
                f"{name:18s} sent {result['sos_sent']:4d} received {result['sos_received']:4d} "
                f"lost {result['sos_lost']} on-device {result['sos_not_stored_still_on_device']} "
                f"dup {result['sos_duplicated']} "
                f"dispatched-once {result['dispatched_once']}/{result['homes']} "
                f"notified {result['notified']}/{result['homes']} "
                f"worst SOS {result['worst_sos_delay_s']} s, "
                f"confirmed {result['worst_confirm_delay_s']} s, "
                f"notify {result['worst_notify_delay_s']} s, "
                f"restarts {result['supervisor_restarts']}, health {result['health_during_fault']}",
                flush=True,
            )
        summary = summarise(
            scenarios,
            {
                "homes": args.homes,
                "rounds": args.rounds,
                "scale": args.scale,
                "settle_s": args.settle_s,
                "agent_sos_resend_s": args.sos_resend_s,
                "supervisor_restart_sec_s": RESTART_SEC_S,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "load_average": [round(x, 1) for x in os.getloadavg()],
                "python": platform.python_version(),
                "broker": mosquitto_version(),
                "database": postgres_version(),
                "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "elapsed_s": round(time.monotonic() - started, 1),
            },
        )
        summary["scenarios_errored"] = errored
    print(json.dumps(summary, ensure_ascii=False))
    ok = summary["sos_lost"] == 0 and summary["manual_restarts_needed"] == 0
    return 0 if ok and not summary.get("scenarios_errored") else 1


if __name__ == "__main__":
    sys.exit(main())

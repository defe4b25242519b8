"""``anbu demo``: a broker, the collector and a simulated district, on embedded defaults.

Everything that runs is the real thing except the residents and the phone network: Mosquitto with
passwords and the Anbu ACL; the collector (SQLite, FastAPI, MQTT ingest, dispatch, escalation,
notification worker); one real edge agent (outbox + MQTT link, no microphone or GPIO) per home;
an SMTP server and an HTTP SMS gateway on 127.0.0.1 that receive what the collector sends; and
simulated caregivers who acknowledge and resolve dispatches through the HTTP API.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("anbu.demo")

DISTRICT = "seodaemun"
OUTCOMES = ("visited_ok", "phoned_ok", "false_alarm", "taken_to_hospital")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="anbu demo",
        description="Run Mosquitto, the collector and a simulated district on this machine.",
    )
    p.add_argument("--homes", type=int, default=200, help="households to simulate (default 200)")
    p.add_argument("--caregivers", type=int, default=2, help="caregivers (default 2)")
    p.add_argument(
        "--duration",
        type=float,
        default=0,
        help="seconds to run, then exit 0 (default: until Ctrl-C)",
    )
    p.add_argument("--summary-json", type=Path, help="write the final counts to this file")
    p.add_argument("--http-port", type=int, default=8000, help="collector API port (default 8000)")
    p.add_argument("--workdir", type=Path, help="where the broker, database and outboxes live")
    p.add_argument(
        "--heartbeat-interval-s",
        type=float,
        default=15,
        help="agent heartbeat interval (default 15)",
    )
    p.add_argument(
        "--sos-interval-s",
        type=float,
        default=20,
        help="mean seconds between SOS events in the whole district (default 20)",
    )
    p.add_argument("--seed", type=int, default=7, help="random seed of the simulation")
    p.add_argument("--log-level", default="ERROR", help="structured log level (default ERROR)")
    args = p.parse_args(argv)
    # Every argument is checked here, before anything starts (a broker left behind by a bad
    # --http-port was the alternative).
    if args.homes < 1 or args.caregivers < 1:
        p.error("--homes and --caregivers must be at least 1")
    if args.heartbeat_interval_s < 1:
        p.error("--heartbeat-interval-s must be at least 1")
    if not 1 <= args.http_port <= 65535:
        p.error(f"--http-port {args.http_port} is not a port (1-65535)")
    if not args.sos_interval_s > 0:
        p.error("--sos-interval-s must be more than 0")
    if args.duration < 0:
        p.error("--duration must be 0 (until Ctrl-C) or more")
    if args.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        p.error("--log-level must be DEBUG, INFO, WARNING or ERROR")
    return args


# What the demo imports beyond the contract, and the extra that brings it.
NEEDED_MODULES = ("aiosmtpd", "fastapi", "uvicorn", "sqlalchemy", "httpx", "paho.mqtt")


def missing_module() -> str | None:
    """The first module the demo needs that is not installed, or None."""
    import importlib.util

    for name in NEEDED_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is missing
            found = False
        if not found:
            return name
    return None


def port_in_use(port: int, host: str = "127.0.0.1") -> str | None:
    """Why ``host:port`` cannot be listened on, or None when it can."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


@dataclass
class Caregivers:
    """Simulated caregivers: acknowledge each dispatch after a while, resolve it later."""

    base_url: str
    token: str
    rng: random.Random
    plan: dict[int, tuple[float, float]] = field(default_factory=dict)
    acknowledged: int = 0
    resolved: int = 0
    leave_to_people: int | None = None
    """A caregiver id whose dispatches are left for the person logged in to the pages."""

    def tick(self, client: Any, now: float) -> None:
        reply = client.get(
            f"{self.base_url}/api/v1/dispatches",
            params={"limit": 500},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        if reply.status_code != 200:
            return
        data = reply.json()
        items = data["data"] if isinstance(data, dict) else data
        for d in items:
            if self.leave_to_people is not None and d.get("caregiver_id") == self.leave_to_people:
                continue
            plan = self.plan.setdefault(
                d["id"], (now + self.rng.uniform(5, 40), now + self.rng.uniform(45, 90))
            )
            headers = {"Authorization": f"Bearer {self.token}"}
            if d["status"] == "open" and now >= plan[0]:
                r = client.post(
                    f"{self.base_url}/api/v1/dispatches/{d['id']}/acknowledge",
                    json={"by": "demo caregiver"},
                    headers=headers,
                )
                self.acknowledged += r.status_code == 200
            elif d["status"] == "acknowledged" and now >= plan[1]:
                r = client.post(
                    f"{self.base_url}/api/v1/dispatches/{d['id']}/resolve",
                    json={"outcome": self.rng.choice(OUTCOMES), "note": "demo"},
                    headers=headers,
                )
                self.resolved += r.status_code == 200


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    missing = missing_module()
    if missing is not None:
        print(
            f"anbu demo: the Python package {missing!r} is not installed: pip install 'anbu[demo]'",
            file=sys.stderr,
        )
        return 2
    busy = port_in_use(args.http_port)
    if busy is not None:
        print(
            f"anbu demo: cannot listen on 127.0.0.1:{args.http_port} ({busy}): "
            "choose another port with --http-port",
            file=sys.stderr,
        )
        return 2
    from anbu import logs

    logs.setup(args.log_level.upper())
    # Ctrl-C and SIGTERM both end the run the same way: summary printed, --summary-json written.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    own_workdir = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="anbu-demo-"))
    try:
        return run(args, workdir, stop)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path, stop: threading.Event) -> int:
    with contextlib.ExitStack() as cleanup:
        return _run(args, workdir, stop, cleanup)


def _run(
    args: argparse.Namespace, workdir: Path, stop: threading.Event, cleanup: contextlib.ExitStack
) -> int:
    import httpx
    import uvicorn
    from sqlalchemy import func, select

    from anbu.broker import BrokerUnavailable, DemoBroker, find_mosquitto
    from anbu.sinks import DemoMailbox, DemoSmsGateway
    from collector.main import create_app
    from collector.runtime import Collector
    from collector.settings import CollectorSettings
    from collector.store.models import Device, DeviceDay, Dispatch, EventRecord, Notification
    from collector.store.seed import seed_district
    from edge_agent.agent import Agent
    from edge_agent.announce import LogAnnouncer
    from edge_agent.runtime import build_agent
    from firmware_config.device import DeviceConfig

    rng = random.Random(args.seed)  # noqa: S311 - a simulation, not security
    workdir.mkdir(parents=True, exist_ok=True)
    say = print

    try:
        binary = find_mosquitto()
    except BrokerUnavailable as exc:
        print(f"anbu demo: {exc}", file=sys.stderr)
        return 1

    # Households and their devices are made first, so the broker knows every device's password.
    device_ids = [f"d{n:04d}" for n in range(1, args.homes + 1)]
    passwords = {d: secrets.token_urlsafe(12) for d in device_ids}
    collector_password = secrets.token_urlsafe(16)
    broker = DemoBroker(
        workdir / "broker", {"collector": collector_password, **passwords}, "collector"
    )
    cleanup.callback(broker.stop)
    try:
        broker.start(binary)
    except BrokerUnavailable as exc:
        print(f"anbu demo: {exc}", file=sys.stderr)
        return 1
    mailbox = DemoMailbox()
    mailbox.start()
    cleanup.callback(mailbox.stop)
    sms = DemoSmsGateway()
    sms.start()
    cleanup.callback(sms.stop)

    public_url = f"http://127.0.0.1:{args.http_port}"
    settings = CollectorSettings(
        environment="development",
        database_url=f"sqlite:///{workdir / 'anbu.sqlite3'}",
        http_port=args.http_port,
        public_url=public_url,
        mqtt_url=broker.url,
        mqtt_username="collector",
        mqtt_password=collector_password,
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        smtp_from="anbu-demo@localhost",
        sms_gateway_url=sms.url,
        sms_gateway_token=secrets.token_urlsafe(8),
        link_secret=secrets.token_urlsafe(32),
        staff_email="staff@seodaemun.example",
        log_level=args.log_level.upper(),
    )
    collector = Collector(settings)
    collector.db.create_schema()
    seed_district(
        collector.db, DISTRICT, homes=args.homes, caregivers=args.caregivers, rng_seed=args.seed
    )
    from collector.auth.seed import seed_accounts

    logins = seed_accounts(
        collector.db, DISTRICT, password=secrets.token_urlsafe(9), now=dt.datetime.now(dt.UTC)
    )

    app = create_app(collector)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=args.http_port, log_level="warning", lifespan="on"
        )
    )
    server_thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    server_thread.start()

    def stop_server() -> None:
        server.should_exit = True
        server_thread.join(timeout=10)

    cleanup.callback(stop_server)
    deadline = time.monotonic() + 15
    # uvicorn's thread ends at once when it cannot bind: no need to wait out the deadline then.
    while not server.started and server_thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        print(
            f"anbu demo: the collector's HTTP server could not start on 127.0.0.1:"
            f"{args.http_port}: choose another port with --http-port",
            file=sys.stderr,
        )
        return 1

    agents: list[Agent] = []
    with collector.db.session() as s:
        homes = {d.id: d.household_id for d in s.scalars(select(Device))}
    for device_id in device_ids:
        config = DeviceConfig.model_validate(
            {
                "district": DISTRICT,
                "household_id": homes[device_id],
                "device_id": device_id,
                "heartbeat_interval_s": args.heartbeat_interval_s,
                "outbox_path": str(workdir / "outbox" / f"{device_id}.sqlite3"),
                "broker": {
                    "url": broker.url,
                    "username": device_id,
                    "password": passwords[device_id],
                    "reconnect_min_s": 0.5,
                    "reconnect_max_s": 5,
                },
                "audio": {"enabled": False},
            }
        )
        agents.append(build_agent(config, gpio=False, voice=False, announcer=LogAnnouncer()))
    running: list[Agent] = []

    def stop_agents() -> None:
        while running:
            running.pop().stop()

    cleanup.callback(stop_agents)
    for agent in agents:
        agent.start()
        running.append(agent)

    say(f"Anbu demo: {args.homes} homes, {args.caregivers} caregivers, district {DISTRICT!r}")
    say(f"  broker      {broker.url} (passwords + ACL; log {workdir / 'broker' / 'mosquitto.log'})")
    say(f"  API docs    {public_url}/docs   health {public_url}/health")
    auth = f"-H 'Authorization: Bearer {settings.api_token}'"
    say(f"  dispatches  curl {auth} {public_url}/api/v1/dispatches")
    for login in logins:
        say(
            f"  {login.role.value:<11} {public_url}{login.page}   "
            f"login {login.username} / {login.password}"
        )
    say(f"  login page  {public_url}/login (the caregiver's dispatches are left for you to answer)")
    say(f"  e-mail      SMTP server on {mailbox.host}:{mailbox.port}; SMS gateway {sms.url}")
    say(f"  data        {workdir}")
    say("  Ctrl-C stops." if not args.duration else f"  running for {args.duration:g} s")

    caregivers = Caregivers(public_url, settings.api_token, rng)
    caregivers.leave_to_people = next((x.caregiver_id for x in logins if x.caregiver_id), None)
    started = time.monotonic()
    next_report = started + 10
    sos_sent = cancels = 0
    http = cleanup.enter_context(httpx.Client(timeout=5))
    try:
        while not stop.is_set():
            now = time.monotonic()
            if args.duration and now - started >= args.duration:
                break
            for agent in agents:
                if rng.random() < 0.02:
                    agent.on_motion()
            if rng.random() < 1.0 / args.sos_interval_s:
                agent = rng.choice(agents)
                source = rng.choice(["button", "voice"])
                agent.raise_sos(source, "살려줘" if source == "voice" else None)
                sos_sent += 1
                home = agent.address.household
                say(f"[{now - started:5.0f} s] SOS ({source}) from household {home}")
                if rng.random() < 0.1:
                    agent.request_cancel("voice", "괜찮아")
                    cancels += 1
                    say(f"[{now - started:5.0f} s]   ...cancelled by the resident")
            caregivers.tick(http, now)
            if now >= next_report:
                next_report = now + 10
                h = collector.health()
                say(
                    f"[{now - started:5.0f} s] ingested "
                    f"{h['ingest'].get('heartbeat', 0)} heartbeats, "
                    f"{h['ingest'].get('sos', 0)} SOS; e-mails {mailbox.count}, SMS {sms.count}; "
                    f"acknowledged {caregivers.acknowledged}, resolved {caregivers.resolved}"
                )
            stop.wait(1.0)
        # let the last SOS reach the collector and its notifications go out
        time.sleep(min(3.0, args.heartbeat_interval_s))
    finally:
        stop_agents()  # the rest stops when ``cleanup`` closes, after the counts are read
        with collector.db.session() as s:

            def n(model: Any, *where: Any) -> int:
                return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

            summary = {
                "homes": args.homes,
                "caregivers": args.caregivers,
                "duration_s": round(time.monotonic() - started, 1),
                # each heartbeat is counted into its device's day as it is stored
                "heartbeats_ingested": int(
                    s.scalar(select(func.coalesce(func.sum(DeviceDay.heartbeats), 0))) or 0
                ),
                "sos_sent": sos_sent,
                "sos_received": n(EventRecord, EventRecord.kind == "sos"),
                "test_sos_received": n(EventRecord, EventRecord.kind == "sos_test"),
                "cancels_received": n(EventRecord, EventRecord.kind == "sos_cancel"),
                "dispatches_created": n(Dispatch),
                "dispatches_acknowledged": caregivers.acknowledged,
                "dispatches_resolved": caregivers.resolved,
                "notifications_delivered": n(Notification, Notification.status == "sent"),
                "emails_received_by_smtp_server": mailbox.count,
                "sms_received_by_gateway": sms.count,
                "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
    say(json.dumps(summary, ensure_ascii=False))
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return 0

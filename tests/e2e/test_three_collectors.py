"""Three collector processes share one broker's traffic; one is killed with ``kill -9`` mid-stream.

Real parts: Mosquitto (the field rules plus the simulator's user), three ``anbu collector serve``
processes on one PostgreSQL database, aiosmtpd and the HTTP SMS gateway, and ``anbu sim`` homes
that hold every SOS and re-send it until a collector acknowledges it (as the agent does). An SOS
the killed collector had taken but not acknowledged is re-sent and handled by another: none is
lost, and none opens a second dispatch or a second round of notifications.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from anbu.sim import SimSettings, Simulator
from collector.store.db import Database
from collector.store.models import Dispatch, EventRecord, Notification
from collector.store.seed import seed_district
from firmware_config.acl import simulator_acls
from tests.e2e.processes import collector_env, free_port, start_collector
from tests.support.mosquitto import COLLECTOR_USER, Broker, anbu_acl, anbu_users, start_broker
from tests.support.postgres import PostgresUnavailable, start_postgres
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow

SIM_USER, SIM_PASSWORD = "simulator", "simulator-secret"
HOMES = 30


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    instance = start_broker(
        tmp_path / "broker",
        users={**anbu_users(), SIM_USER: SIM_PASSWORD},
        acl=anbu_acl(COLLECTOR_USER, extra={SIM_USER: simulator_acls()}),
    )
    try:
        yield instance
    finally:
        instance.kill()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_kill_9_of_one_of_three_collectors_loses_no_sos_and_doubles_none(
    tmp_path: Path, broker: Broker
) -> None:
    try:
        pg = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    smtp, sms = SmtpServer().start(), SmsGateway().start()
    collectors = []
    ports: list[str] = []
    try:
        db = Database(pg.create_database("three"))
        db.create_schema()
        seed_district(db, "seodaemun", homes=HOMES, caregivers=1)
        for n in range(3):
            env = collector_env(db.url, broker, smtp, sms, free_port())
            env["ANBU_MQTT_CLIENT_ID"] = f"collector-{n}"  # one persistent session each
            env["ANBU_SOS_ACK_TIMEOUT_S"] = "3600"
            ports.append(env["ANBU_HTTP_PORT"])
            collectors.append(start_collector(env, tmp_path / f"collector-{n}.log", timeout_s=60))
        time.sleep(1.0)  # every collector has joined the share group
        bulk_child = httpx.get(f"http://127.0.0.1:{ports[0]}/health").json()["ingest"]["bulk"]
        bulk_pid = bulk_child["process"]["pid"]
        sim = Simulator(
            SimSettings(
                homes=HOMES,
                broker_url=broker.url,
                username=SIM_USER,
                password=SIM_PASSWORD,
                rate_multiplier=60,
                sos_resend_s=2,
                sos_per_home_day=0,
            )
        )
        done = threading.Event()
        runner = threading.Thread(target=sim.run, args=(0, done), daemon=True)
        runner.start()
        assert sim.wait_connected(10)
        for home in range(1, HOMES + 1):
            sim.press_sos(home)
            time.sleep(0.05)
            if home == HOMES // 2:
                collectors[0].kill9()  # mid-stream, with SOS in flight
        deadline = time.monotonic() + 40
        while sim.pending_sos() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not sim.pending_sos(), "an SOS was never acknowledged"
        assert not Path(f"/proc/{bulk_pid}").exists() or _zombie(bulk_pid), (
            "the killed collector's bulk process lives on"
        )
        done.set()
        runner.join(15)
        with db.session() as s:
            sos_events = s.scalar(
                select(func.count()).select_from(EventRecord).where(EventRecord.kind == "sos")
            )
            dispatches = s.scalars(select(Dispatch)).all()
            purposes = set(s.scalars(select(Notification.purpose)))
            per_dispatch = {
                d: n
                for d, n in s.execute(
                    select(Notification.dispatch_id, func.count()).group_by(
                        Notification.dispatch_id
                    )
                )
            }
        assert sos_events == HOMES, "each SOS stored once"
        assert len(dispatches) == HOMES
        assert len({d.household_id for d in dispatches}) == HOMES, "no dispatch opened twice"
        # every home's SOS told its people once: no repeat round from a re-sent copy
        assert purposes == {"sos"}
        assert set(per_dispatch) == {d.id for d in dispatches}
        db.dispose()
    finally:
        for proc in collectors:
            proc.stop()
        smtp.stop()
        sms.stop()
        pg.stop()

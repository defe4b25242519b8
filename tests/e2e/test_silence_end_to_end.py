"""Silent homes end to end, across real processes and servers.

A real ``anbu collector serve`` process (SQLite, silence on, periods of seconds) → Mosquitto
(passwords + ACL) → a real ``anbu agent`` (gpiozero mock PIR, no audio) or a paho client that
speaks the device's side of the contract → aiosmtpd and the HTTP SMS gateway. The homes are
registered in the store once the collector runs (as staff do), with periods of a few seconds,
so the collector schedules each home from its first life sign.

Shown here: the flag is raised once the period has run out and not before; the check-in
request reaches the device's ``cmd/`` topic; an answer in time closes the flag with its record;
no answer opens a ``silence`` dispatch at ``normal`` priority whose e-mail reaches the
caregiver; and ``kill -9`` of the collector, first while the deadline is pending and then while
the check-in waits, loses no flag and raises none twice.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from collector.store.db import Database
from collector.store.models import (
    Caregiver,
    Device,
    Dispatch,
    DispatchReason,
    Household,
    Priority,
)
from collector.store.silence import SilenceFlagRow
from firmware_config.checkin import (
    CheckinAnswer,
    checkin_answer_topic,
    checkin_command_topic,
    decode_checkin_request,
)
from firmware_config.messages import MotionEvent, State
from firmware_config.topics import Channel, DeviceAddress
from tests.e2e.processes import (
    Proc,
    agent_config,
    collector_env,
    drive,
    free_port,
    start_agent,
    start_collector,
    wait_until,
)
from tests.support.mosquitto import Broker
from tests.support.mqtt_client import TestClient
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

# Three collector start-ups in one test: on a loaded machine a start-up can wait for the
# ingest's 30 s MQTT retry, so these get more than the suite's 120 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DISTRICT = "seodaemun"
PIR = 4  # GpioConfig default (BCM)
WINDOW_S = 15.0  # check-in answer window (long enough for a restart on a loaded machine)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    """An empty district with one caregiver; homes are registered by each test."""
    db = Database(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    db.create_schema()
    with db.session() as s:
        s.add(
            Caregiver(
                name="김지원", phone="010-1111-2222", email="jiwon@example.org", district=DISTRICT
            )
        )
    yield db
    db.dispose()


def silence_env(db: Database, broker: Broker, smtp: SmtpServer, sms: SmsGateway) -> dict[str, str]:
    env = collector_env(db.url, broker, smtp, sms, free_port())
    env |= {
        "ANBU_SILENCE_ENABLED": "true",
        "ANBU_SILENCE_CHECKIN_WINDOW_MIN": str(WINDOW_S / 60),
        "ANBU_SILENCE_CHECKIN_TTL_MIN": str(WINDOW_S / 60),
        "ANBU_SILENCE_CHECKIN_LISTEN_S": "5",
        "ANBU_SILENCE_CHECKIN_REPEATS": "1",  # the agent gives up after 5 s, inside the window
    }
    return env


def register_home(db: Database, n: int, period_s: float) -> DeviceAddress:
    """Household ``h-N`` with device ``dev-N`` and a period of ``period_s`` seconds."""
    with db.session() as s:
        caregiver_id = s.scalar(select(Caregiver.id))
        s.add(
            Household(
                id=f"h-{n}",
                district=DISTRICT,
                resident_name=f"박순자{n}",
                address=f"연희로 {n}",
                guardian_name="이보호",
                guardian_phone="010-3333-4444",
                guardian_opt_in=True,
                caregiver_id=caregiver_id,
                silence_period_h=period_s / 3600,
                created_at=utcnow(),
            )
        )
        s.flush()
        s.add(Device(id=f"dev-{n}", household_id=f"h-{n}"))
    return DeviceAddress(DISTRICT, f"h-{n}", f"dev-{n}")


def flags(db: Database, household: str) -> list[SilenceFlagRow]:
    with db.session() as s:
        rows = s.scalars(
            select(SilenceFlagRow)
            .where(SilenceFlagRow.household_id == household)
            .order_by(SilenceFlagRow.id)
        ).all()
        s.expunge_all()
        return list(rows)


def dispatches(db: Database, household: str) -> list[Dispatch]:
    with db.session() as s:
        rows = s.scalars(select(Dispatch).where(Dispatch.household_id == household)).all()
        s.expunge_all()
        return list(rows)


def life_sign_stored(db: Database, device: str) -> bool:
    with db.session() as s:
        return s.scalar(select(Device.last_life_sign_at).where(Device.id == device)) is not None


class PahoDevice:
    """A device's side of the contract over a real MQTT connection (state, motion, check-in)."""

    def __init__(self, broker: Broker, address: DeviceAddress) -> None:
        self.address = address
        self.client = TestClient(
            broker,
            address.device,
            password=broker.password(address.device),
            client_id=address.device,
        ).connect()
        assert self.client.subscribe(checkin_command_topic(address)) < 0x80
        self.seq = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def online(self) -> None:
        state = State(device_ts=time.time(), seq=self._next(), state="online")
        rc = self.client.publish(self.address.topic(Channel.STATE), state.to_payload(), retain=True)
        assert rc == 0

    def motion(self) -> float:
        at = time.time()
        event = MotionEvent(device_ts=at, seq=self._next())
        assert self.client.publish(self.address.topic(Channel.MOTION), event.to_payload()) == 0
        return at

    def keep_moving(self, stop: threading.Event, every_s: float = 2.0) -> None:
        while not stop.wait(every_s):
            self.motion()

    def next_checkin(self, timeout_s: float) -> tuple[float, str]:
        message: mqtt.MQTTMessage = self.client.next_message(timeout_s)
        assert message.topic == checkin_command_topic(self.address), message.topic
        return time.time(), decode_checkin_request(message.payload).checkin_id

    def answer(self, checkin_id: str, phrase: str | None) -> None:
        answer = CheckinAnswer(
            device_ts=time.time(),
            seq=self._next(),
            checkin_id=checkin_id,
            answered=phrase is not None,
            phrase=phrase,
            language="ko",
            heard_after_s=1.0 if phrase else None,
        )
        assert self.client.publish(checkin_answer_topic(self.address), answer.to_payload()) == 0

    def close(self) -> None:
        self.client.close()


def test_answer_closes_the_flag_and_silence_without_answer_reaches_the_caregiver(
    tmp_path: Path,
    broker: Broker,
    store: Database,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
) -> None:
    env = silence_env(store, broker, smtp_server, sms_gateway)
    collector = start_collector(env, tmp_path / "c.log", timeout_s=60)
    answering = register_home(store, 1, period_s=6)  # a paho device that answers "네"
    register_home(store, 2, period_s=6)  # a real agent whose resident never answers
    agent: Proc | None = None
    device = PahoDevice(broker, answering)
    try:
        config = agent_config(tmp_path / "agent.toml", broker, "dev-2", "h-2")
        control = tmp_path / "gpio.sock"
        agent = start_agent(config, control, tmp_path / "agent.log")
        device.online()
        moved_at = device.motion()
        agent_moved_at = time.time()
        drive(control, f"high {PIR}")  # the resident walks past the PIR once
        time.sleep(0.5)
        drive(control, f"low {PIR}")
        wait_until(lambda: life_sign_stored(store, "dev-2"), 10, "the agent's motion event")

        # (a) The paho device: the check-in reaches its cmd/ topic once the period ran out.
        asked_at, checkin_id = device.next_checkin(timeout_s=30)
        assert asked_at - moved_at >= 6 - 0.5, "flagged before the period ran out"
        [flag] = flags(store, "h-1")
        assert flag.status == "checkin" and flag.limit == "period"
        assert abs(flag.stretch_started_at.timestamp() - moved_at) < 0.5
        device.answer(checkin_id, "네")
        wait_until(lambda: flags(store, "h-1")[0].status == "closed", 10, "the flag to close")
        closed = flags(store, "h-1")[0]
        assert closed.record is not None and "네" in closed.record
        assert closed.dispatch_id is None
        # The resident is up and about from now on (else, quiet for another period, the home
        # would rightly be flagged again).
        stop_moving = threading.Event()
        mover = threading.Thread(target=device.keep_moving, args=(stop_moving,), daemon=True)
        mover.start()

        # (b) The real agent heard the check-in, listened, and said nobody answered: a silence
        # dispatch at normal priority, its e-mail to the caregiver.
        wait_until(lambda: dispatches(store, "h-2"), 40, "the silence dispatch")
        [dispatch] = dispatches(store, "h-2")
        assert dispatch.reason == DispatchReason.SILENCE
        assert dispatch.priority == Priority.NORMAL
        [agent_flag] = flags(store, "h-2")
        assert agent_flag.status == "dispatched" and agent_flag.dispatch_id == dispatch.id
        # opened on the agent's "nobody answered", before the window ran out
        assert agent_flag.record is not None and agent_flag.record.startswith("응답 없음 (")
        assert agent_flag.checkin_due_at is not None
        assert dispatch.created_at < agent_flag.checkin_due_at
        assert agent_flag.raised_at.timestamp() - agent_moved_at >= 6 - 0.5
        assert "check-in" in agent.text()
        mails = smtp_server.wait_for(1, timeout=15)
        silence_mails = [m for m in mails if "무활동" in str(m.message["Subject"])]
        assert silence_mails and silence_mails[0].rcpt_tos == ["jiwon@example.org"]
        assert "h-1" not in str(silence_mails[0].message["Subject"])

        # The answered home got no dispatch, even after its check-in window had passed.
        time.sleep(max(0.0, asked_at + WINDOW_S + 1.5 - time.time()))
        assert dispatches(store, "h-1") == []
        assert [f.status for f in flags(store, "h-1")] == ["closed"]
        stop_moving.set()
        mover.join(5)
    finally:
        device.close()
        if agent is not None:
            agent.stop()
        collector.stop()


def test_kill_9_rebuilds_the_deadline_from_the_store_and_raises_each_flag_once(
    tmp_path: Path,
    broker: Broker,
    store: Database,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
) -> None:
    env = silence_env(store, broker, smtp_server, sms_gateway)
    collector = start_collector(env, tmp_path / "c1.log", timeout_s=60)
    address = register_home(store, 3, period_s=10)
    device = PahoDevice(broker, address)
    try:
        device.online()
        time.sleep(2.0)  # so that a deadline counted from registration would show (2 s early)
        moved_at = device.motion()
        wait_until(lambda: life_sign_stored(store, "dev-3"), 10, "the life sign in the store")
        # kill -9 while the deadline is pending: nothing was flushed by the silence runtime
        # beyond what the ingest wrote with the event.
        collector.kill9()
        env["ANBU_HTTP_PORT"] = str(free_port())  # the old port may be taken by now
        collector = start_collector(env, tmp_path / "c2.log", timeout_s=60)
        asked_at, checkin_id = device.next_checkin(timeout_s=40)
        assert asked_at - moved_at >= 10 - 0.5, "flagged before the period ran out"
        [flag] = flags(store, "h-3")
        assert flag.status == "checkin" and flag.checkin_id == checkin_id
        assert abs(flag.stretch_started_at.timestamp() - moved_at) < 0.5

        # kill -9 while the check-in waits; the new process takes the window from the store.
        collector.kill9()
        env["ANBU_HTTP_PORT"] = str(free_port())
        collector = start_collector(env, tmp_path / "c3.log", timeout_s=60)
        wait_until(lambda: dispatches(store, "h-3"), WINDOW_S + 20, "the silence dispatch")
        mails = smtp_server.wait_for(1, timeout=15)
        assert "무활동" in str(mails[0].message["Subject"])
        time.sleep(2.0)  # a second flag, check-in or dispatch would have shown by now
        [flag] = flags(store, "h-3")
        assert flag.status == "dispatched"
        assert len(dispatches(store, "h-3")) == 1
        assert len(smtp_server.received) == 1
        # the restarted collector asked no second time for the same stretch
        assert device.client.messages_within(0.5) == []
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(SilenceFlagRow)) == 1
        health = json.loads(httpx.get(f"http://127.0.0.1:{env['ANBU_HTTP_PORT']}/health").text)
        assert health["silence"]["flags_raised"] == 0  # the third process raised nothing itself
    finally:
        device.close()
        collector.stop()


def test_a_device_gone_offline_opens_a_ticket_and_its_silence_is_dispatched_at_once(
    tmp_path: Path,
    broker: Broker,
    store: Database,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
) -> None:
    """The agent dies (``kill -9``; the broker publishes its last will): a technician ticket
    opens, and once the period runs out with no other life sign the home is flagged as
    ``device_offline`` and dispatched without a check-in (there is nobody to ask)."""
    env = silence_env(store, broker, smtp_server, sms_gateway)
    env["ANBU_SUPERVISION_INTERVAL_S"] = "0.5"
    env["ANBU_API_TOKEN"] = "e2e-staff-token"
    collector = start_collector(env, tmp_path / "c.log", timeout_s=60)
    register_home(store, 1, period_s=8)
    config = agent_config(tmp_path / "agent.toml", broker, "dev-1", "h-1")
    control = tmp_path / "gpio.sock"
    agent = start_agent(config, control, tmp_path / "agent.log")
    try:
        moved_at = time.time()
        drive(control, f"high {PIR}")
        time.sleep(0.5)
        drive(control, f"low {PIR}")
        wait_until(lambda: life_sign_stored(store, "dev-1"), 10, "the agent's motion event")
        agent.kill9()
        url = f"http://127.0.0.1:{env['ANBU_HTTP_PORT']}/api/v1/technician-tickets"
        headers = {"Authorization": f"Bearer {env['ANBU_API_TOKEN']}"}

        def tickets() -> list[dict[str, object]]:
            data: list[dict[str, object]] = httpx.get(url, headers=headers).json()["data"]
            return data

        wait_until(tickets, 10, "the offline ticket")
        [ticket] = tickets()
        assert (ticket["device_id"], ticket["kind"], ticket["status"]) == (
            "dev-1",
            "offline",
            "open",
        )
        assert flags(store, "h-1") == [], "a device offline is not yet a silent resident"
        wait_until(lambda: dispatches(store, "h-1"), 30, "the silence dispatch")
        [flag] = flags(store, "h-1")
        assert flag.limit == "device_offline" and flag.status == "dispatched"
        assert flag.checkin_id is None, "nobody to ask: no check-in was sent"
        assert flag.raised_at.timestamp() - moved_at >= 8 - 0.5
        [mail] = smtp_server.wait_for(1, timeout=15)
        assert "무활동" in str(mail.message["Subject"])
    finally:
        agent.stop()
        collector.stop()


def test_a_device_offline_long_enough_opens_one_device_offline_dispatch_until_it_returns(
    tmp_path: Path,
    broker: Broker,
    store: Database,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
) -> None:
    """The agent dies (last will): after ``ANBU_SUPERVISION_OFFLINE_DISPATCH_AFTER_S`` one
    ``device_offline`` dispatch opens and its e-mail reaches the caregiver; a ``kill -9`` of the
    collector and its restart open no second one; the agent started again closes the ticket and
    resolves the dispatch as a device problem, and the caregiver is told."""
    env = silence_env(store, broker, smtp_server, sms_gateway)
    env["ANBU_SUPERVISION_INTERVAL_S"] = "0.5"
    env["ANBU_SUPERVISION_OFFLINE_DISPATCH_AFTER_S"] = "4"
    collector = start_collector(env, tmp_path / "c.log", timeout_s=60)
    register_home(store, 1, period_s=3600)  # the silence period stays far off
    config = agent_config(tmp_path / "agent.toml", broker, "dev-1", "h-1", heartbeat_s=1)
    control = tmp_path / "gpio.sock"
    agent = start_agent(config, control, tmp_path / "agent.log")

    def offline_dispatches() -> list[Dispatch]:
        return [d for d in dispatches(store, "h-1") if d.reason is DispatchReason.DEVICE_OFFLINE]

    try:
        wait_until(lambda: heartbeat_stored(store, "dev-1"), 20, "the agent's first heartbeat")
        agent.kill9()
        killed_at = time.time()
        wait_until(offline_dispatches, 30, "the device_offline dispatch")
        [dispatch] = offline_dispatches()
        assert dispatch.created_at.timestamp() - killed_at >= 4 - 1.5  # last heartbeat ≤ 1 s before
        assert dispatch.priority is Priority.NORMAL and dispatch.status.value == "open"
        [mail] = smtp_server.wait_for(1, timeout=15)
        assert "기기 끊김" in str(mail.message["Subject"])
        collector.kill9()
        collector = start_collector(env, tmp_path / "c2.log", timeout_s=60)
        time.sleep(3)  # several supervision ticks after the restart (and its grace)
        assert len(offline_dispatches()) == 1
        agent = start_agent(config, control, tmp_path / "agent2.log")
        wait_until(
            lambda: offline_dispatches()[0].status.value == "resolved", 30, "the dispatch resolved"
        )
        [dispatch] = offline_dispatches()
        assert dispatch.outcome == "device_problem" and dispatch.next_escalation_at is None
        mails = smtp_server.wait_for(2, timeout=15)
        assert "기기 다시 연결" in str(mails[1].message["Subject"])
        assert len(dispatches(store, "h-1")) == 1, "no silence dispatch either"
    finally:
        agent.stop()
        collector.stop()


def heartbeat_stored(db: Database, device: str) -> bool:
    with db.session() as s:
        return s.scalar(select(Device.last_heartbeat_at).where(Device.id == device)) is not None

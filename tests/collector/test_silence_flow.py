"""The collector's check-in flow: a real database, a real broker between collector and device."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from collector.domain.links import LinkSigner
from collector.domain.silence import LifeSignKind
from collector.domain.silence_checkin import CheckinPolicy
from collector.silence_flow import SilenceFlow, StoreDispatches
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.store.db import Database
from collector.store.models import Device, Dispatch, Notification
from collector.store.silence import SilenceFlagRow
from firmware_config.checkin import (
    CheckinAnswer,
    checkin_answer_topic,
    checkin_command_topic,
    decode_checkin_request,
)
from firmware_config.topics import DeviceAddress
from tests.collector.helpers import DISTRICT, NOW, register_homes
from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.mqtt_client import TestClient

ADDRESS = DeviceAddress(DISTRICT, "h-1", "dev-1")


class BrokerPublisher:
    """The collector's side of the broker for check-in (QoS 1 publishes)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload)


class FakeClock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> dt.datetime:
        return self.at


@pytest.fixture
def clients(broker: Broker) -> Iterator[tuple[TestClient, TestClient]]:
    with (
        TestClient(broker, COLLECTOR_USER).connect() as collector,
        TestClient(broker, "dev-1").connect() as device,
    ):
        device.subscribe(checkin_command_topic(ADDRESS))
        yield collector, device


def setup(
    database: Database, collector: TestClient, online: bool
) -> tuple[SilenceFlow, SilenceRuntime, FakeClock, list[tuple[str, LifeSignKind]]]:
    register_homes(database, ("dev-1",))
    with database.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None
        device.online, device.state_changed_at = online, NOW
    signs: list[tuple[str, LifeSignKind]] = []
    flow = SilenceFlow(
        database,
        BrokerPublisher(collector),
        policy=CheckinPolicy(answer_window_min=10),
        on_life_sign=lambda home, kind, _at: signs.append((home, kind)),
    )
    clock = FakeClock()
    runtime = SilenceRuntime(
        database, on_flag=flow.on_flag, settings=SilenceRuntimeSettings(learn=False), clock=clock
    )
    runtime.create_schema()
    runtime.restore()
    return flow, runtime, clock, signs


def flag_row(database: Database) -> SilenceFlagRow:
    with database.session() as s:
        return s.scalars(select(SilenceFlagRow)).one()


def test_an_answer_closes_the_flag_and_counts_as_a_life_sign(
    database: Database, clients: tuple[TestClient, TestClient]
) -> None:
    collector, device = clients
    flow, runtime, clock, signs = setup(database, collector, online=True)
    clock.at = NOW + dt.timedelta(hours=48)
    assert len(runtime.tick()) == 1
    request = decode_checkin_request(bytes(device.next_message().payload))
    assert flag_row(database).status == "checkin"
    answer = CheckinAnswer(
        device_ts=clock.at.timestamp(),
        seq=5,
        checkin_id=request.checkin_id,
        answered=True,
        phrase="네",
        language="ko",
        heard_after_s=3,
    )
    flow.on_answer(
        checkin_answer_topic(ADDRESS), answer.to_payload(), clock.at + dt.timedelta(minutes=1)
    )
    row = flag_row(database)
    assert row.status == "closed" and row.record is not None and "네" in row.record
    assert signs == [("h-1", LifeSignKind.CHECKIN_ANSWER)]
    # The broker delivers a copy (QoS 1): the closed flag and its record stay as they were.
    flow.on_answer(
        checkin_answer_topic(ADDRESS), answer.to_payload(), clock.at + dt.timedelta(minutes=3)
    )
    again = flag_row(database)
    assert (again.closed_at, again.record) == (row.closed_at, row.record)
    assert signs == [("h-1", LifeSignKind.CHECKIN_ANSWER)]
    assert flow.tick(clock.at + dt.timedelta(hours=1)) == 0
    with database.session() as s:
        assert s.scalars(select(Dispatch)).all() == []


def test_no_answer_opens_a_normal_priority_silence_dispatch(
    database: Database, clients: tuple[TestClient, TestClient]
) -> None:
    collector, device = clients
    flow, runtime, clock, _ = setup(database, collector, online=True)
    clock.at = NOW + dt.timedelta(hours=48)
    runtime.tick()
    device.next_message()
    assert flow.tick(clock.at + dt.timedelta(minutes=9)) == 0
    # A restarted collector (new flow object) still knows the pending check-in from the row.
    signer = LinkSigner(b"k" * 32, "https://anbu.example.org")
    again = SilenceFlow(
        database, BrokerPublisher(collector), dispatches=StoreDispatches(links=signer)
    )
    assert again.tick(clock.at + dt.timedelta(minutes=10)) == 1
    with database.session() as s:
        dispatch = s.scalars(select(Dispatch)).one()
        assert (dispatch.reason, dispatch.priority, dispatch.status) == (
            "silence",
            "normal",
            "open",
        )
        notes = s.scalars(select(Notification)).all()
        assert {n.recipient for n in notes} >= {"010-1111-2222", "jiwon@example.org"}
        # The minimum to act (as for an SOS): no name or address anywhere; the caregiver's
        # link is signed and opens this dispatch; the guardian gets no link.
        assert not any("박순자" in n.body or "박순자" in n.subject for n in notes)
        for note in notes:
            if note.recipient_role == "guardian":
                assert "/l/" not in note.body
            else:
                token = note.body.split("/l/", 1)[1].split()[0]
                assert signer.verify(token, now=clock.at) == dispatch.id
    assert flag_row(database).status == "dispatched"


def test_offline_device_dispatches_at_once_and_bad_answers_change_nothing(
    database: Database, clients: tuple[TestClient, TestClient]
) -> None:
    collector, device = clients
    flow, runtime, clock, signs = setup(database, collector, online=False)
    clock.at = NOW + dt.timedelta(hours=48)
    runtime.tick()
    assert device.messages_within(0.3) == []  # nobody to ask
    row = flag_row(database)
    assert row.status == "dispatched" and row.record is not None and "기기" in row.record
    flow.on_answer(checkin_answer_topic(ADDRESS), b"{not json", clock.at)
    stranger = DeviceAddress(DISTRICT, "h-9", "dev-9")
    answer = CheckinAnswer(device_ts=1, seq=1, checkin_id="e" * 32, answered=False)
    flow.on_answer(checkin_answer_topic(stranger), answer.to_payload(), clock.at)
    assert flag_row(database).status == "dispatched" and signs == []


def test_a_life_sign_during_the_check_in_closes_the_flag_instead_of_dispatching(
    database: Database, clients: tuple[TestClient, TestClient]
) -> None:
    collector, device = clients
    flow, runtime, clock, _ = setup(database, collector, online=True)
    clock.at = NOW + dt.timedelta(hours=48)
    runtime.tick()
    device.next_message()
    clock.at += dt.timedelta(minutes=3)
    runtime.on_life_sign("h-1", LifeSignKind.MOTION, clock.at)  # she walked past the PIR
    runtime.flush()
    assert flow.tick(clock.at + dt.timedelta(minutes=10)) == 0
    row = flag_row(database)
    assert row.status == "closed" and row.record is not None and "생활 신호" in row.record
    with database.session() as s:
        assert s.scalars(select(Dispatch)).all() == []

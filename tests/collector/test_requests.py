"""Non-urgent requests for a call, on SQLite and PostgreSQL: by voice (``event/request`` through
the event lane) and by SMS (``POST /sms/inbound``); routed, queued for office hours, due in one
working day, escalated when it passes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from collector.api.deps import utc_now
from collector.domain.dispatch import Contact
from collector.domain.escalation import DistrictContacts, EscalationBook, EscalationPolicy
from collector.domain.office_hours import KST
from collector.main import create_app
from collector.requests import assign_request, file_request, mark_handled
from collector.service import Service
from collector.settings import CollectorSettings
from collector.store.db import Database
from collector.store.models import Dispatch, Household, Notification, ServiceRequest
from firmware_config.messages import CallRequest
from firmware_config.topics import Channel, DeviceAddress
from tests.collector.conftest import FakeRuntime
from tests.collector.helpers import DISTRICT, register_homes

SATURDAY = dt.datetime(2026, 12, 5, 22, 0, tzinfo=KST)  # after hours, weekend
TUESDAY = dt.datetime(2026, 12, 1, 11, 0, tzinfo=KST)
ADDR = DeviceAddress(DISTRICT, "h-1", "dev-1")
SUPERVISOR = Contact("supervisor", "복지정책과", "010-7000-0001", None)
DEPARTMENT = Contact("department", "희망복지지원단", None, "hope@example.org")
POLICY = EscalationPolicy(
    staff=Contact("staff", "동주민센터", None, "staff@example.org"),
    book=EscalationBook(contacts={DISTRICT: DistrictContacts(SUPERVISOR, DEPARTMENT)}),
)
INBOUND_TOKEN = "inbound-test-token"


def voice_request(svc: Service, at: dt.datetime) -> int:
    event = CallRequest(device_ts=at.timestamp(), seq=5, phrase="상담 받고 싶어요", language="ko")
    out = svc.handle(ADDR.topic(Channel.REQUEST), event.to_payload(), at)
    assert out.kind == "request" and out.dispatch_id is not None
    again = svc.handle(ADDR.topic(Channel.REQUEST), event.to_payload(), at)
    assert again.kind == "duplicate"
    return out.dispatch_id


def test_a_voice_request_waits_for_office_hours_and_escalates_after_a_working_day(
    database: Database,
) -> None:
    register_homes(database)
    svc = Service(database, escalation_policy=POLICY)
    dispatch_id = voice_request(svc, SATURDAY)
    monday_9 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=KST)
    monday_18 = dt.datetime(2026, 12, 7, 18, 0, tzinfo=KST)
    with database.session() as s:
        d = s.get(Dispatch, dispatch_id)
        assert d is not None and (d.reason, d.priority, d.status) == ("request", "normal", "open")
        assert d.next_escalation_at == monday_18
        [req] = s.scalars(select(ServiceRequest)).all()
        assert (req.channel, req.routed_to, req.due_at) == ("voice", "caregiver", monday_18)
        notes = s.scalars(select(Notification)).all()
        assert {n.recipient_role for n in notes} == {"caregiver"}
        assert all(n.next_attempt_at == monday_9 for n in notes)  # not on Saturday night
        assert all("/l/" in n.body and "상담" in n.subject for n in notes)
    assert svc.escalate_due(monday_18 - dt.timedelta(seconds=1)) == 0
    # the default request chain: supervisor SMS, department e-mail, staff e-mail
    assert svc.escalate_due(monday_18) == 3
    assert svc.escalate_due(monday_18 + dt.timedelta(days=3)) == 0
    with database.session() as s:
        roles = s.scalars(
            select(Notification.recipient_role).where(Notification.purpose == "escalation-1")
        ).all()
        assert sorted(roles) == ["department", "staff", "supervisor"]


@pytest.fixture
def sms_app(database: Database) -> Iterator[FastAPI]:
    settings = CollectorSettings(
        api_token="test-api-token",
        database_url=database.url,
        sms_inbound_token=INBOUND_TOKEN,
        sms_district_numbers={"02-330-1234": DISTRICT},
    )
    app = create_app(FakeRuntime(database, settings), settings=settings)
    app.dependency_overrides[utc_now] = lambda: TUESDAY.astimezone(dt.UTC)
    yield app


def test_a_guardians_text_files_a_request_once(database: Database, sms_app: FastAPI) -> None:
    register_homes(database)
    body = {
        "message_id": "gw-77",
        "from": "+82 10-3333-4444",
        "to": "023301234",
        "text": "전화 부탁",
    }
    with TestClient(sms_app) as client:
        assert client.post("/sms/inbound", json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post("/sms/inbound", json=body, headers=wrong).status_code == 401
        auth = {"Authorization": f"Bearer {INBOUND_TOKEN}"}
        first = client.post("/sms/inbound", json=body, headers=auth)
        assert first.status_code == 202, first.text
        filed = first.json()
        assert filed["routed_to"] == "caregiver" and not filed["duplicate"]
        again = client.post("/sms/inbound", json=body, headers=auth).json()
        assert again["duplicate"] and again["dispatch_id"] == filed["dispatch_id"]
        unknown = client.post(
            "/sms/inbound",
            json=body | {"message_id": "gw-78", "from": "010-9999-0000"},
            headers=auth,
        ).json()
        assert unknown["dispatch_id"] is None and unknown["routed_to"] == "nobody"
        bad_to = client.post("/sms/inbound", json=body | {"to": "0299999999"}, headers=auth)
        assert bad_to.status_code == 404 and "no district" in bad_to.text
        bad = client.post("/sms/inbound", json=body | {"extra": 1}, headers=auth)
        assert bad.status_code == 422
    with database.session() as s:
        rows = s.scalars(select(ServiceRequest).order_by(ServiceRequest.id)).all()
        assert [(r.household_id, r.channel, r.text) for r in rows] == [
            ("h-1", "sms", "전화 부탁"),
            (None, "sms", "전화 부탁"),
        ]
        d = s.get(Dispatch, filed["dispatch_id"])
        assert d is not None and d.reason == "request" and d.note == "전화 부탁"
        home = s.get(Household, "h-1")
        assert home is not None


def test_inbound_sms_is_404_until_configured(client: TestClient) -> None:
    answer = client.post(
        "/sms/inbound", json={"message_id": "x", "from": "01011112222", "to": "0233301234"}
    )
    assert answer.status_code == 404


def test_an_unmatched_text_escalates_to_the_supervisor_when_its_working_day_passes(
    database: Database, sms_app: FastAPI
) -> None:
    register_homes(database)
    auth = {"Authorization": f"Bearer {INBOUND_TOKEN}"}
    text = {"from": "010-9999-0000", "to": "02-330-1234", "text": "누구세요"}
    with TestClient(sms_app) as client:
        for n in (1, 2, 3):  # three texts from an unknown number, Tuesday 11:00
            filed = client.post("/sms/inbound", json=text | {"message_id": f"gw-{n}"}, headers=auth)
            assert filed.json()["routed_to"] == "nobody"
    wednesday_11 = dt.datetime(2026, 12, 2, 11, 0, tzinfo=KST)  # one working day later
    with database.session() as s:
        rows = s.scalars(select(ServiceRequest).order_by(ServiceRequest.id)).all()
        assert [r.due_at for r in rows] == [wednesday_11] * 3
        assert all(r.escalated_at is None for r in rows)
    svc = Service(database, escalation_policy=POLICY)
    before = wednesday_11 - dt.timedelta(seconds=1)
    with database.session() as s:  # one closed, one matched to a household, before the deadline
        mark_handled(s, rows[1].id, by="김과장", note="광고", now=before)
    with database.session() as s:
        home = s.get(Household, "h-1")
        assert home is not None
        assign_request(s, rows[2].id, home, by="김과장", now=before, policy=POLICY, links=svc.links)
    assert svc.escalate_due(before) == 0
    # The day passes with the first still waiting: the supervisor is told once, by SMS. (The
    # matched one is a request dispatch now, due from its arrival: its own chain tells three.)
    assert svc.escalate_due(wednesday_11) == 1 + 3
    assert svc.escalate_due(wednesday_11 + dt.timedelta(hours=1)) == 0
    assert Service(database, escalation_policy=POLICY).escalate_due(wednesday_11) == 0
    with database.session() as s:
        waiting, closed, matched = s.scalars(select(ServiceRequest).order_by(ServiceRequest.id))
        assert waiting.escalated_at == wednesday_11
        assert closed.escalated_at is None and matched.escalated_at is None
        [told] = s.scalars(
            select(Notification).where(Notification.service_request_id.is_not(None))
        ).all()
        assert (told.dispatch_id, told.service_request_id) == (None, waiting.id)
        assert (told.channel, told.recipient_role, told.recipient) == (
            "sms",
            "supervisor",
            SUPERVISOR.phone,
        )
        assert told.body.endswith("/texts") and "누구세요" not in told.body
        assert told.next_attempt_at == wednesday_11


def test_an_unmatched_text_with_no_supervisor_goes_to_the_department_then_the_staff(
    database: Database,
) -> None:
    register_homes(database)
    links = Service(database).links
    nobody_but_staff = EscalationPolicy(staff=Contact("staff", "동주민센터", None, "s@example.org"))
    for policy, told in ((POLICY, "supervisor"), (nobody_but_staff, "staff")):
        with database.session() as s:
            file_request(
                s, message_id=f"gw-{told}", channel="sms", household=None, district=DISTRICT,
                sender="010-9", text="?", now=TUESDAY, policy=policy, links=links,
            )  # fmt: skip
        assert Service(database, escalation_policy=policy).escalate_due(TUESDAY.replace(day=9)) == 1
        with database.session() as s:
            roles = s.scalars(
                select(Notification.recipient_role).where(
                    Notification.purpose.like("text-overdue-%")
                )
            ).all()
            assert roles[-1] == told

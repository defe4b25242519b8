"""A guardian is told only when the resident agreed (``households.guardian_opt_in``), for every
kind of dispatch and at every escalation step; SQLite and PostgreSQL, through the real adapters."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from collector.domain.dispatch import Contact, DispatchPolicy
from collector.domain.escalation import (
    ChainStep,
    DistrictContacts,
    EscalationBook,
    EscalationChain,
    EscalationPolicy,
)
from collector.offline_dispatch import StoreOfflineDispatches
from collector.requests import file_request
from collector.service import Service
from collector.silence_flow import StoreDispatches
from collector.store.db import Database
from collector.store.models import Device, Household, Notification
from collector.store.silence import TechnicianTicket
from firmware_config.messages import SosEvent
from firmware_config.topics import Channel, DeviceAddress
from tests.collector.helpers import DISTRICT, NOW, raise_silence_flag, register_homes

ADDR = DeviceAddress(DISTRICT, "h-1", "dev-1")
STAFF = Contact("staff", "동주민센터", None, "staff@example.org")
GUARDIAN_FIRST = EscalationChain((ChainStep(("guardian", "staff"), after_s=60),))
POLICY = EscalationPolicy(
    staff=STAFF,
    book=EscalationBook(
        defaults=dict.fromkeys(("sos", "silence", "device_offline", "request"), GUARDIAN_FIRST),
        contacts={DISTRICT: DistrictContacts(Contact("supervisor", "과", "010-7", None))},
    ),
)
LATER = NOW + dt.timedelta(days=30)  # past every first step, office hours or not


def guardian_messages(db: Database, dispatch_id: int) -> list[str]:
    """The purposes of the messages queued for the guardian of ``dispatch_id``."""
    with db.session() as s:
        return sorted(
            s.scalars(
                select(Notification.purpose).where(
                    Notification.dispatch_id == dispatch_id,
                    Notification.recipient_role == "guardian",
                )
            )
        )


def escalate(db: Database) -> Service:
    svc = Service(db, DispatchPolicy(staff=STAFF), POLICY)
    assert svc.escalate_due(LATER) > 0  # the staff at least
    return svc


def sos_dispatch(db: Database) -> int:
    svc = Service(db, DispatchPolicy(staff=STAFF), POLICY)
    event = SosEvent(device_ts=NOW.timestamp(), seq=1, source="button")
    out = svc.handle(ADDR.topic(Channel.SOS), event.to_payload(), NOW)
    assert out.dispatch_id is not None
    return out.dispatch_id


def silence_dispatch(db: Database) -> int:
    row = raise_silence_flag(
        db, at=NOW + dt.timedelta(hours=48), dispatches=StoreDispatches(escalation=POLICY)
    )
    assert row.status == "dispatched" and row.dispatch_id is not None
    return row.dispatch_id


def offline_dispatch(db: Database) -> int:
    with db.session() as s:
        s.add(
            TechnicianTicket(
                device_id="dev-1", household_id="h-1", kind="offline", detail="", opened_at=NOW
            )
        )
    adapter = StoreOfflineDispatches(escalation=POLICY, staff=STAFF)
    with db.session() as s:
        dispatch_id = adapter.open_for(s, "h-1", NOW - dt.timedelta(minutes=10), NOW)
    assert dispatch_id is not None
    return dispatch_id


def request_dispatch(db: Database) -> int:
    with db.session() as s:
        home = s.get(Household, "h-1")
        filed = file_request(
            s,
            message_id="req-1",
            channel="voice",
            household=home,
            district=DISTRICT,
            sender=None,
            text="",
            now=NOW,
            policy=POLICY,
            links=Service(db).links,
        )
    assert filed.dispatch_id is not None
    return filed.dispatch_id


KINDS = {
    "sos": (sos_dispatch, ["sos"]),
    "silence": (silence_dispatch, ["silence"]),
    "device_offline": (offline_dispatch, []),  # a device problem is not the guardian's
    "request": (request_dispatch, []),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("opt_in", [False, True], ids=["no-consent", "consent"])
def test_the_guardian_is_told_only_with_the_residents_consent(
    database: Database, kind: str, opt_in: bool
) -> None:
    register_homes(database, ("dev-1",), guardian_opt_in=opt_in)
    with database.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None
        device.online = False
    open_one, first_messages = KINDS[kind]
    dispatch_id = open_one(database)
    assert guardian_messages(database, dispatch_id) == (first_messages if opt_in else [])
    escalate(database)  # the chain's first step names the guardian
    told = guardian_messages(database, dispatch_id)
    if opt_in:
        assert told == sorted([*first_messages, "escalation-1"])
    else:
        assert told == []

"""Web fixtures: a real database (SQLite and PostgreSQL) seeded with two districts, their
caregivers, households and one account per role; the app over it; logged-in clients.

District ``seodaemun``: caregivers 김지원 (account ``care-a``, households h-a1, h-a2) and 박정호
(``care-b``, h-b1); supervisor ``sup-seo``. District ``mapo``: caregiver 최유리 (``care-m``,
h-m1); supervisor ``sup-mapo``. Plus ``admin`` and ``tech``. Every password is ``PASSWORD``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.auth.accounts import create_account
from collector.auth.passwords import hash_password
from collector.main import create_app
from collector.settings import CollectorSettings
from collector.store.accounts import Role
from collector.store.db import Database
from collector.store.models import Caregiver, Device, Household, RiskLevel
from tests.collector.conftest import (  # noqa: F401 - fixtures shared with the collector tests
    API_TOKEN,
    FakeRuntime,
    database,
    postgres_database,
    postgres_server,
)

PASSWORD = "correct horse battery"
LINK_SECRET = "test-link-secret-0123456789"
NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Seeded:
    caregivers: dict[str, int]
    """account username -> caregiver id"""


_HASH: list[str] = []


def _password_hash() -> str:
    """One real scrypt hash of PASSWORD for every seeded account (0.3 s each on this machine)."""
    if not _HASH:
        _HASH.append(hash_password(PASSWORD))
    return _HASH[0]


def seed(db: Database) -> Seeded:
    db.create_schema()
    homes = {
        "care-a": ("seodaemun", "김지원", ["h-a1", "h-a2"], (37.5700, 126.9400)),
        "care-b": ("seodaemun", "박정호", ["h-b1"], (37.5750, 126.9450)),
        "care-m": ("mapo", "최유리", ["h-m1"], (37.5600, 126.9100)),
    }
    ids: dict[str, int] = {}
    with db.session() as s:
        for username, (district, name, households, (lat, lon)) in homes.items():
            caregiver = Caregiver(
                name=name, phone="010-1000-2000", email=f"{username}@example.org", district=district
            )
            s.add(caregiver)
            s.flush()
            ids[username] = caregiver.id
            for n, hid in enumerate(households):
                s.add(
                    Household(
                        id=hid,
                        district=district,
                        resident_name=f"어르신{hid}",
                        address=f"{district}로 {n + 1}",
                        latitude=lat + n * 0.001,
                        longitude=lon + n * 0.001,
                        guardian_name="이보호",
                        guardian_phone="010-3333-4444",
                        guardian_opt_in=True,
                        risk_level=RiskLevel.BLUE,
                        caregiver_id=caregiver.id,
                        created_at=NOW,
                    )
                )
                s.flush()
                s.add(Device(id=f"d-{hid}", household_id=hid, online=True))
            create_account(
                s,
                username=username,
                password=PASSWORD,
                role=Role.CAREGIVER,
                display_name=name,
                district=district,
                caregiver_id=caregiver.id,
                now=NOW,
                password_hash=_password_hash(),
            )
        for username, role, scope in [
            ("sup-seo", Role.SUPERVISOR, "seodaemun"),
            ("sup-mapo", Role.SUPERVISOR, "mapo"),
            ("admin", Role.ADMIN, None),
            ("tech", Role.TECHNICIAN, None),
        ]:
            create_account(
                s,
                username=username,
                password=PASSWORD,
                role=role,
                display_name=username,
                district=scope,
                now=NOW,
                password_hash=_password_hash(),
            )
    return Seeded(ids)


@pytest.fixture
def seeded(database: Database) -> Seeded:  # noqa: F811
    return seed(database)


@pytest.fixture
def settings(database: Database) -> CollectorSettings:  # noqa: F811
    return CollectorSettings(
        api_token=API_TOKEN,
        database_url=database.url,
        link_secret=LINK_SECRET,
        public_url="http://testserver",
    )


@pytest.fixture
def app(database: Database, settings: CollectorSettings, seeded: Seeded) -> FastAPI:  # noqa: F811
    return create_app(FakeRuntime(database, settings), settings=settings)


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def log_in(client: TestClient, username: str, password: str = PASSWORD, next_path: str = "/"):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf": csrf_of(page.text),
            "next": next_path,
        },
        follow_redirects=False,
    )


@pytest.fixture
def login(app: FastAPI) -> Iterator[Callable[[str], TestClient]]:
    """``login("care-a")`` is a client with care-a's session cookie."""
    clients: list[TestClient] = []

    def make(username: str) -> TestClient:
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        response = log_in(client, username)
        assert response.status_code == 303, response.text
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def raise_sos(
    db: Database,
    household_id: str,
    *,
    when: dt.datetime | None = None,
    base_url: str = "http://testserver",
) -> int:
    """An SOS from the household's device through the collector's real ingest path; the
    dispatch id. Links are signed with the same secret the app verifies with."""
    from collector.domain.dispatch import DispatchPolicy
    from collector.domain.links import LinkSigner
    from collector.service import Service
    from firmware_config.messages import SosEvent
    from firmware_config.topics import Channel, DeviceAddress

    with db.session() as s:
        household = s.get(Household, household_id)
        assert household is not None and household.devices, household_id
        district = household.district
        device_id = household.devices[0].id
    now = when or dt.datetime.now(dt.UTC)
    service = Service(
        db,
        DispatchPolicy(dashboard_url=base_url),
        links=LinkSigner(LINK_SECRET.encode(), base_url),
    )
    event = SosEvent(device_ts=now.timestamp(), seq=1, source="button")
    address = DeviceAddress(district, household_id, device_id)
    outcome = service.handle(address.topic(Channel.SOS), event.to_payload(), now)
    assert outcome.kind == "sos" and outcome.dispatch_id is not None, outcome
    return outcome.dispatch_id

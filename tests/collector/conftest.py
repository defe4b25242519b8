"""Collector fixtures: a real database on both backends, and the HTTP app over it.

``database`` is parametrised: every test that uses it runs once on SQLite (a new temp file) and
once on PostgreSQL (one throwaway server and database per test session, emptied with
``TRUNCATE ... RESTART IDENTITY`` before each test, which is ~7x faster than a new database).
PostgreSQL tests are skipped, with the reason, where the server binaries are missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from collector.main import create_app
from collector.settings import CollectorSettings
from collector.silence_runtime import SilenceRuntime
from collector.store.db import Database
from collector.store.models import Base
from tests.support.postgres import PostgresServer, PostgresUnavailable, start_postgres

API_TOKEN = "test-api-token"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> Iterator[Database]:
    """One database with the schema for the whole session; ``database`` empties it per test."""
    db = Database(postgres_server.create_database("anbu_test"))
    db.create_schema()
    try:
        yield db
    finally:
        db.dispose()


def _empty(db: Database) -> None:
    """Every table emptied and every id sequence back at 1: as good as a fresh database."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        # A test that left a transaction open must not hang the next one.
        conn.execute(text("SET LOCAL lock_timeout = '5s'"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty Anbu schema on SQLite (a new file) or PostgreSQL (emptied before the test)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'anbu.sqlite3'}")
        db.create_schema()
        try:
            yield db
        finally:
            db.dispose()
        return
    db = request.getfixturevalue("postgres_database")
    db.create_schema()  # in case a test dropped tables
    _empty(db)
    yield db


class FakeRuntime:
    """Stands in for ``collector.runtime.Collector``: a real database, no MQTT, no workers."""

    def __init__(self, db: Database, settings: CollectorSettings) -> None:
        self.db = db
        self.settings = settings
        # the real schedule (not started: no thread raises flags), fed by the life-signs route
        self.silence = SilenceRuntime(db, on_flag=lambda flag, flag_id: None)
        self.started = 0
        self.stopped = 0
        self.mqtt_connected = True

    def start(self) -> None:
        self.db.create_schema()
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1

    def health(self) -> dict[str, Any]:
        database = self.db.ping()
        ok = database and self.mqtt_connected
        return {
            "status": "ok" if ok else "degraded",
            "database": database,
            "mqtt_connected": self.mqtt_connected,
        }


@pytest.fixture
def api_token() -> str:
    return API_TOKEN


@pytest.fixture
def settings(database: Database) -> CollectorSettings:
    return CollectorSettings(api_token=API_TOKEN, database_url=database.url)


@pytest.fixture
def runtime(database: Database, settings: CollectorSettings) -> FakeRuntime:
    return FakeRuntime(database, settings)


@pytest.fixture
def app(runtime: FakeRuntime, settings: CollectorSettings) -> FastAPI:
    return create_app(runtime, settings=settings)


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    """A client without a token; entering it runs the app's lifespan."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client sending the right bearer token."""
    with TestClient(app, headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
        yield client

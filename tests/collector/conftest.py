"""Collector fixtures: a real database on both backends, and the HTTP app over it.

``database`` is parametrised: every test that uses it runs once on SQLite (a temp file) and once on
PostgreSQL (a fresh database on one throwaway server per test session). PostgreSQL tests are
skipped, with the reason, where the server binaries are missing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.main import create_app
from collector.settings import CollectorSettings
from collector.store.db import Database
from tests.support.postgres import PostgresServer, PostgresUnavailable, start_postgres

API_TOKEN = "test-api-token"
_database_numbers = itertools.count(1)


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty Anbu schema on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'anbu.sqlite3'}")
        db.create_schema()
        try:
            yield db
        finally:
            db.dispose()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"anbu_test_{next(_database_numbers)}"
    db = Database(server.create_database(name))
    db.create_schema()
    try:
        yield db
    finally:
        db.dispose()
        server.drop_database(name)


class FakeRuntime:
    """Stands in for ``collector.runtime.Collector``: a real database, no MQTT, no workers."""

    def __init__(self, db: Database, settings: CollectorSettings) -> None:
        self.db = db
        self.settings = settings
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

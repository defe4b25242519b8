"""Schema migrations on both backends: from nothing, and from a database made before them.

"Before migrations" is the exact DDL that ``create_all`` emitted on main at dfab9a2, kept in
``tests/collector/data/`` per dialect; the tests load it, put rows in, upgrade, and compare.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, inspect, select, text

from collector.cli import main as cli_main
from collector.store.db import Database
from collector.store.migrations import BASELINE, current_revision, head_revision, prepare, upgrade
from collector.store.models import Base, Dispatch, Household, Notification
from tests.support.postgres import PostgresServer

DATA = Path(__file__).parent / "data"
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
_names = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables at all (a new file, or a new PostgreSQL database)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        db = Database(server.create_database(f"migrations_{next(_names)}"))
    try:
        yield db
    finally:
        db.dispose()


def drift(db: Database) -> list[object]:
    """What Alembic would change to make the database match today's models (nothing, we hope)."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [d for d in compare_metadata(context, Base.metadata) if d[0] != "remove_table"]


def load_pre_migration_schema(db: Database) -> None:
    sql = (DATA / f"schema_before_migrations.{db.dialect}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    with db.engine.begin() as connection:
        for statement in filter(None, (s.strip() for s in body.split(";"))):
            connection.execute(text(statement))


def insert_old_home_and_sos(connection: Connection) -> None:
    """One home and one open SOS dispatch, in plain SQL with the oldest schema's columns only
    (today's models have columns the old schemas lack)."""
    connection.execute(
        text(
            "INSERT INTO households (id, district, resident_name, address, silence_period_h,"
            " risk_level, created_at) VALUES ('h0001', 'mapo', '박순자', '', 48, 'blue', :t)"
        ),
        {"t": "2026-11-01 00:00:00"},
    )
    connection.execute(
        text(
            "INSERT INTO dispatches (household_id, reason, priority, status, created_at,"
            " escalation_level) VALUES ('h0001', 'sos', 'urgent', 'open', :t, 0)"
        ),
        {"t": "2026-11-01 00:00:00"},
    )


def test_migrations_from_nothing_give_todays_models(empty: Database) -> None:
    assert current_revision(empty) is None
    assert upgrade(empty) == head_revision()
    assert drift(empty) == []


def test_prepare_on_an_empty_database_is_the_same_schema_at_head(empty: Database) -> None:
    assert prepare(empty) == head_revision()
    assert current_revision(empty) == head_revision()
    assert drift(empty) == []
    assert prepare(empty) == head_revision()  # again: nothing to do


def test_a_database_from_before_migrations_is_upgraded_with_its_rows(empty: Database) -> None:
    load_pre_migration_schema(empty)
    assert current_revision(empty) is None
    assert "ix_dispatches_created_at_id" not in {
        ix["name"] for ix in inspect(empty.engine).get_indexes("dispatches")
    }
    with empty.engine.begin() as connection:
        insert_old_home_and_sos(connection)
    assert drift(empty) != []  # the old schema lacks today's indexes

    assert upgrade(empty) == head_revision()
    assert drift(empty) == []
    with empty.session() as session:
        assert session.scalar(select(func.count()).select_from(Dispatch)) == 1
        home = session.get(Household, "h0001")
        assert home is not None and home.resident_name == "박순자"


def test_upgrade_goes_step_by_step_from_the_baseline(empty: Database) -> None:
    assert upgrade(empty, BASELINE) == BASELINE
    assert "ix_households_district_id" not in {
        ix["name"] for ix in inspect(empty.engine).get_indexes("households")
    }
    assert upgrade(empty) == head_revision()
    assert drift(empty) == []


def test_init_db_upgrades_a_pre_migration_database(
    empty: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_pre_migration_schema(empty)
    monkeypatch.setenv("ANBU_DATABASE_URL", empty.url)
    assert cli_main(["init-db"]) == 0
    assert current_revision(empty) == head_revision()
    assert "dispatches" in capsys.readouterr().out


def test_a_half_made_database_is_refused_not_guessed(empty: Database) -> None:
    with empty.engine.begin() as connection:
        connection.execute(text("CREATE TABLE households (id VARCHAR(64) PRIMARY KEY)"))
    with pytest.raises(RuntimeError, match="not one this collector made"):
        upgrade(empty)


def test_0007_asks_consent_of_every_home_and_unacknowledges_what_the_collector_closed(
    empty: Database,
) -> None:
    assert upgrade(empty, "0006_offline_dispatch_texts") == "0006_offline_dispatch_texts"
    t = "2026-11-01 00:00:00"
    later = "2026-11-01 01:00:00"
    with empty.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO households (id, district, resident_name, address, silence_period_h,"
                " risk_level, created_at, guardian_phone, caregiver_pinned)"
                " VALUES ('h0001', 'mapo', '박순자', '', 48, 'blue', :t, '010-1', false)"
            ),
            {"t": t},
        )
        insert = text(
            "INSERT INTO dispatches (household_id, reason, priority, status, created_at,"
            " escalation_level, acknowledged_at, acknowledged_by, resolved_at, outcome)"
            " VALUES ('h0001', :reason, 'normal', 'resolved', :t, 0, :acked, :by, :acked,"
            " :outcome)"
        )
        # Resolved by the collector when the device came back; then one a caregiver resolved.
        connection.execute(
            insert,
            {"reason": "device_offline", "t": t, "acked": later, "by": "anbu",
             "outcome": "device_problem"},
        )  # fmt: skip
        connection.execute(
            insert,
            {"reason": "device_offline", "t": t, "acked": later, "by": "김지원",
             "outcome": "device_problem"},
        )  # fmt: skip
    assert upgrade(empty) == head_revision()
    assert drift(empty) == []
    with empty.session() as session:
        home = session.get(Household, "h0001")
        assert home is not None and home.guardian_opt_in is False
        rows = session.scalars(select(Dispatch).order_by(Dispatch.id)).all()
        assert [(d.acknowledged_by, d.acknowledged_at is None) for d in rows] == [
            (None, True),
            ("김지원", False),
        ]
        assert all(d.resolved_at is not None for d in rows)


def test_0008_keeps_every_notification_and_lets_a_text_have_one(empty: Database) -> None:
    assert upgrade(empty, "0007_guardian_consent") == "0007_guardian_consent"
    with empty.engine.begin() as connection:
        insert_old_home_and_sos(connection)
        connection.execute(
            text(
                "INSERT INTO notifications (dispatch_id, channel, purpose, recipient_role,"
                " recipient, subject, body, status, attempts, created_at, next_attempt_at)"
                " VALUES (1, 'sms', 'sos', 'caregiver', '010-1', 's', 'b', 'sent', 1, :t, :t)"
            ),
            {"t": "2026-11-01 00:00:00"},
        )
    assert upgrade(empty) == head_revision()
    assert drift(empty) == []
    with empty.session() as session:
        [kept] = session.scalars(select(Notification)).all()
        assert (kept.dispatch_id, kept.service_request_id, kept.body) == (1, None, "b")

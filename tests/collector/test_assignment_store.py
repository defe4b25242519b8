"""Geographic assignment applied to the store (SQLite and PostgreSQL) and through the CLI."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from collector.cli import main as cli_main
from collector.store.assignment import assign_district, pin
from collector.store.db import Database
from collector.store.models import Caregiver, Household
from collector.store.seed import seed_district

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def loads(db: Database) -> dict[int | None, int]:
    with db.session() as s:
        rows = s.execute(
            select(Household.caregiver_id, func.count()).group_by(Household.caregiver_id)
        ).all()
    return {r[0]: r[1] for r in rows}


def test_a_district_is_shared_out_with_backups_and_stays_put(database: Database) -> None:
    seed_district(database, "seodaemun", 250, 3, rng_seed=3, now=T0)
    with database.session() as s:
        first = assign_district(s, "seodaemun", capacity=100, redraw=True)
    assert first.unassigned == () and first.caregivers == 3
    assert max(loads(database).values()) <= 100 and None not in loads(database)
    with database.session() as s:
        carers = s.scalars(select(Caregiver)).all()
        assert all(c.backup_id not in (None, c.id) for c in carers)
    # A second run changes nothing; a new home moves nobody else.
    with database.session() as s:
        assert assign_district(s, "seodaemun").moved == 0
        s.add(
            Household(
                id="new-1",
                district="seodaemun",
                resident_name="새 가구",
                latitude=37.57,
                longitude=126.93,
                created_at=T0,
            )
        )
    with database.session() as s:
        assert assign_district(s, "seodaemun").moved == 1
        home = s.get(Household, "new-1")
        assert home is not None and home.caregiver_id is not None


def test_a_pin_survives_reassignment_and_a_redraw(database: Database) -> None:
    seed_district(database, "seodaemun", 30, 3, rng_seed=4, now=T0)
    with database.session() as s:
        assign_district(s, "seodaemun", redraw=True)
        home = s.scalars(select(Household).order_by(Household.id)).first()
        assert home is not None
        other = s.scalar(
            select(Caregiver.id).where(Caregiver.id != home.caregiver_id).order_by(Caregiver.id)
        )
        assert other is not None
        pin(s, home.id, other)
        pinned_id = home.id
    with database.session() as s:
        assign_district(s, "seodaemun", redraw=True)
        again = s.get(Household, pinned_id)
        assert again is not None and again.caregiver_id == other and again.caregiver_pinned
        with pytest.raises(ValueError, match="not an active caregiver"):
            pin(s, pinned_id, 9999)


def test_the_cli_reports_what_it_moved(
    database: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_district(database, "mapo", 40, 2, rng_seed=5, now=T0)
    monkeypatch.setenv("ANBU_DATABASE_URL", database.url)
    assert cli_main(["assign", "--district", "mapo", "--capacity", "15", "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["unassigned"] == 10 and out["dry_run"] is True
    assert None not in loads(database)  # dry run: nothing written
    assert cli_main(["assign", "--district", "mapo", "--capacity", "25"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["unassigned"] == 0 and out["caregivers"] == 2
    assert max(loads(database).values()) <= 25

"""The store on SQLite and PostgreSQL: constraints, UTC times, seeding and importing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, StatementError

from collector.store.db import Database
from collector.store.models import (
    Caregiver,
    Device,
    Dispatch,
    DispatchReason,
    DispatchStatus,
    Household,
    Priority,
    RiskLevel,
)
from collector.store.seed import (
    SEOUL_DISTRICTS,
    device_id_for,
    load_households_json,
    seed_district,
)

NOW = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
KST = dt.timezone(dt.timedelta(hours=9))


def sos_dispatch(household_id: str, message_id: str | None) -> Dispatch:
    return Dispatch(
        household_id=household_id,
        reason=DispatchReason.SOS,
        priority=Priority.URGENT,
        status=DispatchStatus.OPEN,
        sos_message_id=message_id,
        created_at=NOW,
    )


@pytest.fixture
def home(database: Database) -> str:
    with database.session() as session:
        session.add(
            Household(id="h0001", district="seodaemun", resident_name="박순자", created_at=NOW)
        )
    return "h0001"


def test_a_redelivered_sos_cannot_open_a_second_dispatch(database: Database, home: str) -> None:
    with database.session() as session:
        session.add(sos_dispatch(home, "m-1"))
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(sos_dispatch(home, "m-1"))
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Dispatch)) == 1


def test_dispatches_without_an_sos_message_do_not_clash(database: Database, home: str) -> None:
    with database.session() as session:
        session.add_all([sos_dispatch(home, None), sos_dispatch(home, None)])
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Dispatch)) == 2


def test_times_come_back_aware_utc(database: Database, home: str) -> None:
    in_seoul = dt.datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=KST)
    with database.session() as session:
        dispatch = sos_dispatch(home, "m-2")
        dispatch.created_at = in_seoul
        session.add(dispatch)
    with database.sessions() as session:  # a fresh session: values read from the database
        stored = session.scalars(select(Dispatch)).one()
        assert stored.created_at == in_seoul
        assert stored.created_at.tzinfo is dt.UTC
        assert stored.created_at.hour == 1
        assert stored.acknowledged_at is None


def test_naive_times_are_refused(database: Database, home: str) -> None:
    with pytest.raises(StatementError, match="naive datetime"), database.session() as session:
        dispatch = sos_dispatch(home, "m-3")
        dispatch.created_at = dt.datetime(2026, 3, 2, 10, 0)
        session.add(dispatch)


def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(Device(id="d0001", household_id="nowhere"))


# Seeding


def test_seed_district_makes_homes_devices_and_assigns_one_caregiver_per_100(
    database: Database,
) -> None:
    result = seed_district(database, "seodaemun", homes=250, caregivers=3, rng_seed=7, now=NOW)
    assert len(result.caregiver_ids) == 3
    assert result.household_ids[:2] == ("h0001", "h0002")
    assert result.device_ids == tuple(device_id_for(h) for h in result.household_ids)
    assert result.unassigned == ()
    with database.session() as session:
        homes = session.scalars(select(Household).order_by(Household.id)).all()
        assert len(homes) == 250
        loads = sorted(
            n
            for _, n in session.execute(
                select(Household.caregiver_id, func.count()).group_by(Household.caregiver_id)
            )
        )
        assert loads == [83, 83, 84]
        gu, lat, lon = SEOUL_DISTRICTS["seodaemun"]
        for h in homes:
            assert h.address.startswith(f"서울특별시 {gu} ")
            assert h.latitude is not None and abs(h.latitude - lat) < 0.05
            assert h.longitude is not None and abs(h.longitude - lon) < 0.05
            assert 24 <= h.silence_period_h <= 120
            assert h.created_at == NOW
            assert all("가" <= ch <= "힣" for ch in h.resident_name)
        assert {h.risk_level for h in homes} == set(RiskLevel)
        with_guardian = [h for h in homes if h.guardian_name]
        assert 0.4 < len(with_guardian) / len(homes) < 0.8
        assert all(h.guardian_phone and h.guardian_email for h in with_guardian)
        devices = session.scalars(select(Device)).all()
        assert {(d.id, d.household_id) for d in devices} == {
            (device_id_for(h.id), h.id) for h in homes
        }
        emails = session.scalars(select(Caregiver.email)).all()
        assert all(e.endswith("@example.org") for e in emails)


def _snapshot(database: Database) -> list[tuple[object, ...]]:
    with database.session() as session:
        return [
            (h.id, h.resident_name, h.address, h.latitude, h.guardian_name, h.risk_level)
            for h in session.scalars(select(Household).order_by(Household.id))
        ]


def test_seed_is_deterministic(database: Database, tmp_path: Path) -> None:
    seed_district(database, "mapo", homes=30, caregivers=1, rng_seed=11, now=NOW)
    other = Database(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    other.create_schema()
    seed_district(other, "mapo", homes=30, caregivers=1, rng_seed=11, now=NOW)
    assert _snapshot(database) == _snapshot(other)
    third = Database(f"sqlite:///{tmp_path / 'third.sqlite3'}")
    third.create_schema()
    seed_district(third, "mapo", homes=30, caregivers=1, rng_seed=12, now=NOW)
    assert _snapshot(third) != _snapshot(database)
    other.dispose()
    third.dispose()


def test_seeding_again_continues_the_numbering(database: Database) -> None:
    seed_district(database, "seodaemun", homes=3, caregivers=1, now=NOW)
    second = seed_district(database, "gangnam", homes=2, caregivers=1, now=NOW)
    assert second.household_ids == ("h0004", "h0005")
    assert second.device_ids == ("d0004", "d0005")
    with database.session() as session:
        gangnam_cg = session.get(Caregiver, second.caregiver_ids[0])
        assert gangnam_cg is not None and gangnam_cg.district == "gangnam"
        assert {
            h.caregiver_id for h in session.scalars(select(Household)) if h.district == "gangnam"
        } == {gangnam_cg.id}


def test_seed_leaves_homes_unassigned_when_caregivers_are_full(database: Database) -> None:
    result = seed_district(database, "jongno", homes=5, caregivers=1, capacity=3, now=NOW)
    assert result.unassigned == ("h0004", "h0005")


def test_seed_refuses_a_district_that_cannot_be_an_mqtt_topic(database: Database) -> None:
    with pytest.raises(ValueError, match="district='서대문구'"):
        seed_district(database, "서대문구", homes=1, caregivers=1)


def test_device_id_for_only_knows_seeded_ids() -> None:
    assert device_id_for("h0042") == "d0042"
    with pytest.raises(ValueError, match="not a seeded household id"):
        device_id_for("home-1")


# Importing a welfare office's list


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "households.json"
    path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


OFFICE = {
    "caregivers": [
        {"name": "김미영", "phone": "010-0000-1001", "email": "my@example.org", "district": "mapo"},
        {"name": "이정희", "phone": "010-0000-1002", "email": "jh@example.org", "district": "mapo"},
    ],
    "households": [
        {
            "id": "mapo-001",
            "district": "mapo",
            "resident_name": "최말순",
            "address": "서울특별시 마포구 성미산로 3",
            "caregiver_email": "jh@example.org",
            "device_id": "mapo-dev-001",
            "risk_level": "red",
            "silence_period_h": 24,
        },
        {"id": "mapo-002", "district": "mapo", "resident_name": "정영수"},
        {
            "id": "mapo-003",
            "district": "mapo",
            "resident_name": "한복순",
            "device_id": "mapo-dev-3",
        },
    ],
}


def test_import_creates_assigns_and_registers_devices(database: Database, tmp_path: Path) -> None:
    result = load_households_json(database, write(tmp_path, OFFICE), now=NOW)
    assert (result.caregivers_created, result.households_created, result.devices_created) == (
        2,
        3,
        2,
    )
    with database.session() as session:
        by_email = {c.email: c.id for c in session.scalars(select(Caregiver))}
        homes = {h.id: h for h in session.scalars(select(Household))}
        assert homes["mapo-001"].caregiver_id == by_email["jh@example.org"]
        assert homes["mapo-001"].risk_level is RiskLevel.RED
        # The least-loaded caregiver gets the next home, then they alternate.
        assert homes["mapo-002"].caregiver_id == by_email["my@example.org"]
        assert homes["mapo-003"].caregiver_id is not None
        device = session.get(Device, "mapo-dev-001")
        assert device is not None and device.household_id == "mapo-001"


def test_importing_again_updates_instead_of_duplicating(database: Database, tmp_path: Path) -> None:
    load_households_json(database, write(tmp_path, OFFICE), now=NOW)
    changed = json.loads(json.dumps(OFFICE))
    changed["households"][1]["address"] = "서울특별시 마포구 월드컵로 10"
    result = load_households_json(database, write(tmp_path, changed), now=NOW)
    assert (result.caregivers_created, result.caregivers_updated) == (0, 2)
    assert (result.households_created, result.households_updated, result.devices_created) == (
        0,
        3,
        0,
    )
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Household)) == 3
        home = session.get(Household, "mapo-002")
        assert home is not None and home.address.endswith("월드컵로 10")
        assert home.caregiver_id is not None


def test_a_bare_list_of_households_is_accepted(database: Database, tmp_path: Path) -> None:
    path = write(tmp_path, [{"id": "h-1", "district": "mapo", "resident_name": "정영수"}])
    result = load_households_json(database, path, now=NOW)
    assert (result.households_created, result.unassigned) == (1, ("h-1",))


GOOD = {"id": "h-0", "district": "mapo", "resident_name": "정영수"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"district": "마포"}, "households.1.district: String should match .* \\(value: '마포'\\)"),
        ({"age": 80}, "households.1.age: Extra inputs are not permitted"),
        ({"caregiver_email": "x@y.z"}, "household 'h-1': no caregiver with e-mail 'x@y.z'"),
    ],
)
def test_bad_records_reject_the_whole_file(
    database: Database, tmp_path: Path, bad: dict[str, object], message: str
) -> None:
    path = write(tmp_path, {"households": [GOOD, GOOD | {"id": "h-1"} | bad]})
    with pytest.raises(ValueError, match=message) as caught:
        load_households_json(database, path, now=NOW)
    assert str(path) in str(caught.value)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Household)) == 0


def test_not_json_is_reported(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "households.json"
    path.write_text("id,name\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not JSON"):
        load_households_json(database, path)


# From the command line (``anbu collector init-db | seed | import-households``)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from collector.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_init_db_seed_and_import(
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANBU_DATABASE_URL", database.url)
    code, out, _ = run_cli(["init-db"], capsys)
    assert code == 0
    assert "households" in json.loads(out)["tables"]

    code, out, _ = run_cli(["seed", "--district", "seodaemun", "--homes", "150"], capsys)
    assert code == 0
    assert json.loads(out) == {
        "district": "seodaemun",
        "caregivers": 2,
        "households": 150,
        "first": "h0001",
        "last": "h0150",
        "unassigned": 0,
    }

    code, out, _ = run_cli(["import-households", str(write(tmp_path, OFFICE))], capsys)
    assert code == 0
    assert json.loads(out)["households_created"] == 3
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Household)) == 153


def test_cli_reads_an_env_file_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from_file = tmp_path / "file.sqlite3"
    env_file = tmp_path / "collector.env"
    env_file.write_text(f"ANBU_DATABASE_URL=sqlite:///{from_file}\n", encoding="utf-8")
    assert run_cli(["--env-file", str(env_file), "init-db"], capsys)[0] == 0
    assert from_file.exists()

    from_env = tmp_path / "sub" / "env.sqlite3"
    from_env.parent.mkdir()  # the collector no longer creates a database's directory
    monkeypatch.setenv("ANBU_DATABASE_URL", f"sqlite:///{from_env}")
    assert run_cli(["init-db", "--env-file", str(env_file)], capsys)[0] == 0
    assert from_env.exists()


def test_cli_bad_settings_name_field_value_and_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANBU_HTTP_PORT", "eighty")
    code, _, err = run_cli(["init-db"], capsys)
    assert code == 2
    assert "http_port = 'eighty' (from environment variable ANBU_HTTP_PORT)" in err

    monkeypatch.delenv("ANBU_HTTP_PORT")
    env_file = tmp_path / "prod.env"
    env_file.write_text("ANBU_ENVIRONMENT=production\nANBU_MQTT_PASSWORD=s3cret\n", "utf-8")
    code, _, err = run_cli(
        ["--env-file", str(env_file), "seed", "--district", "x", "--homes", "1"], capsys
    )
    assert code == 2
    assert "api_token = 'changethis' (from default; set ANBU_API_TOKEN)" in err
    assert "s3cret" not in err

    env_file.write_text("ANBU_MQTT_URL=http://broker\nANBU_API_TOKEN=tok\n", "utf-8")
    code, _, err = run_cli(["--env-file", str(env_file), "init-db"], capsys)
    assert code == 2
    assert f"mqtt_url = 'http://broker' (from {env_file} (ANBU_MQTT_URL))" in err

    code, _, err = run_cli(["--env-file", str(tmp_path / "missing.env")], capsys)
    assert code == 2
    assert "no such file" in err


def test_cli_seed_refuses_a_bad_district(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANBU_DATABASE_URL", f"sqlite:///{tmp_path / 'a.sqlite3'}")
    code, _, err = run_cli(["seed", "--district", "서대문구", "--homes", "1"], capsys)
    assert code == 2
    assert "district='서대문구'" in err


@pytest.mark.parametrize("argv", [["--help"], ["seed", "--help"], ["init-db", "--help"]])
def test_cli_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from collector.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert "usage: anbu collector" in capsys.readouterr().out

"""Seeding and importing at scale: in-memory assignment gives what the domain rule gives.

The rule itself is ``collector.domain.assignment.choose_caregiver``; seeding keeps loads in a heap
so that 100,000 homes do not each scan every caregiver. These tests hold the heap to the rule,
and the bulk writes to the same results as before, on both databases.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from collector.domain.assignment import CaregiverLoad, choose_caregiver
from collector.store.db import Database
from collector.store.models import Device, Household
from collector.store.seed import _Loads, load_households_json, seed_district

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("rng_seed", range(20))
def test_heap_assignment_matches_the_domain_rule(rng_seed: int) -> None:
    rng = random.Random(rng_seed)
    capacity = rng.randint(1, 8)
    loads = [
        CaregiverLoad(cid, "mapo", rng.randint(0, capacity)) for cid in rng.sample(range(1, 50), 6)
    ]
    heap = _Loads(list(loads), capacity)
    plain = {load.id: load for load in loads}
    for step in range(60):
        if step % 17 == 16:  # a caregiver hired mid-way
            new_id = 100 + step
            heap.add_caregiver(new_id, "mapo")
            plain[new_id] = CaregiverLoad(new_id, "mapo", 0)
        if step % 11 == 10:  # a home moved to a named caregiver
            named = rng.choice(list(plain))
            heap.took(named)
            load = plain[named]
            plain[named] = CaregiverLoad(load.id, load.district, load.households + 1)
        expected = choose_caregiver("mapo", list(plain.values()), capacity=capacity)
        assert heap.assign("mapo", None) == expected
        if expected is not None:
            load = plain[expected]
            plain[expected] = CaregiverLoad(load.id, load.district, load.households + 1)


def test_seeding_many_homes_balances_caregivers(database: Database) -> None:
    result = seed_district(database, "mapo", homes=3_000, caregivers=31, now=NOW)
    assert len(result.household_ids) == 3_000 and result.unassigned == ()
    with database.session() as session:
        loads = [
            n
            for _, n in session.execute(
                select(Household.caregiver_id, func.count()).group_by(Household.caregiver_id)
            )
        ]
        assert sorted(loads) == [96] * 7 + [97] * 24
        assert session.scalar(select(func.count()).select_from(Device)) == 3_000


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "office.json"
    path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


CAREGIVERS = [
    {"name": "김미영", "phone": "010-0000-1001", "email": "a@example.org", "district": "mapo"},
    {"name": "이정희", "phone": "010-0000-1002", "email": "b@example.org", "district": "mapo"},
]


def test_a_household_named_twice_in_one_file_is_one_row(database: Database, tmp_path: Path) -> None:
    first = {"id": "m1", "district": "mapo", "resident_name": "정영수"}
    homes = [
        first | {"caregiver_email": "b@example.org"},
        first | {"address": "월드컵로 1", "caregiver_email": "a@example.org"},
        {"id": "m2", "district": "mapo", "resident_name": "한복순"},
    ]
    result = load_households_json(
        database, write(tmp_path, {"caregivers": CAREGIVERS, "households": homes}), now=NOW
    )
    assert (result.households_created, result.households_updated) == (2, 1)
    with database.session() as session:
        m1, m2 = session.scalars(select(Household).order_by(Household.id)).all()
        assert m1.address == "월드컵로 1"
        # m1 moved from b to a, so b has fewer homes and gets m2.
        assert (m1.caregiver.email, m2.caregiver.email) == ("a@example.org", "b@example.org")


def test_one_device_claimed_by_two_homes_rejects_the_file(
    database: Database, tmp_path: Path
) -> None:
    homes = [
        {"id": "m1", "district": "mapo", "resident_name": "정영수", "device_id": "dev-9"},
        {"id": "m2", "district": "mapo", "resident_name": "한복순", "device_id": "dev-9"},
    ]
    with pytest.raises(ValueError, match="device 'dev-9' already belongs to household 'm1'"):
        load_households_json(database, write(tmp_path, {"households": homes}), now=NOW)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Household)) == 0
        assert session.scalar(select(func.count()).select_from(Device)) == 0


def test_importing_many_homes_writes_them_all(database: Database, tmp_path: Path) -> None:
    homes = [
        {"id": f"m{n:05d}", "district": "mapo", "resident_name": "박순자"}
        | ({"device_id": f"md{n:05d}"} if n % 3 == 0 else {})
        for n in range(12_000)
    ]
    caregivers = [
        {"name": "김", "phone": "010-1", "email": f"c{k}@example.org", "district": "mapo"}
        for k in range(120)
    ]
    path = write(tmp_path, {"caregivers": caregivers, "households": homes})
    result = load_households_json(database, path, now=NOW)
    assert (result.households_created, result.devices_created, result.unassigned) == (
        12_000,
        4_000,
        (),
    )
    again = load_households_json(database, path, now=NOW)
    assert (again.households_created, again.households_updated, again.devices_created) == (
        0,
        12_000,
        0,
    )
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Household)) == 12_000


def test_import_records_consent_and_a_reimport_without_it_keeps_it(
    database: Database, tmp_path: Path
) -> None:
    homes = [
        {"id": "m1", "district": "mapo", "resident_name": "정영수", "guardian_phone": "010-1",
         "guardian_opt_in": True},
        {"id": "m2", "district": "mapo", "resident_name": "한복순", "guardian_phone": "010-2"},
    ]  # fmt: skip
    file = write(tmp_path, {"caregivers": CAREGIVERS, "households": homes})
    load_households_json(database, file, now=NOW)

    def consent() -> list[tuple[str, bool]]:
        with database.session() as session:
            rows = session.scalars(select(Household).order_by(Household.id))
            return [(h.id, h.guardian_opt_in) for h in rows]

    assert consent() == [("m1", True), ("m2", False)]
    # The office's next export lacks the column, and m2's consent was recorded on the pages.
    with database.session() as session:
        m2 = session.get(Household, "m2")
        assert m2 is not None
        m2.guardian_opt_in = True
    for home in homes:
        home.pop("guardian_opt_in", None)
    load_households_json(database, write(tmp_path, {"caregivers": CAREGIVERS, "households": homes}))
    assert consent() == [("m1", True), ("m2", True)]
    homes[0]["guardian_opt_in"] = False  # withdrawn
    load_households_json(database, write(tmp_path, {"caregivers": CAREGIVERS, "households": homes}))
    assert consent() == [("m1", False), ("m2", True)]

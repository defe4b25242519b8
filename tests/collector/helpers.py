"""Small builders shared by collector tests: a registered district in a real database."""

from __future__ import annotations

import datetime as dt

from collector.store.db import Database
from collector.store.models import Caregiver, Device, Household

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
DISTRICT = "seodaemun"


def register_homes(
    db: Database, devices: tuple[str, ...] = ("dev-1", "dev-2"), *, guardian_opt_in: bool = True
) -> None:
    """One caregiver; household ``h-N`` with device ``dev-N`` for each device id given, each
    with a guardian (told of alarms unless ``guardian_opt_in`` is False)."""
    db.create_schema()
    with db.session() as s:
        caregiver = Caregiver(
            name="김지원", phone="010-1111-2222", email="jiwon@example.org", district=DISTRICT
        )
        s.add(caregiver)
        s.flush()
        for device_id in devices:
            n = device_id.split("-")[1]
            s.add(
                Household(
                    id=f"h-{n}",
                    district=DISTRICT,
                    resident_name=f"박순자{n}",
                    address=f"연희로 {n}",
                    guardian_name="이보호",
                    guardian_phone="010-3333-4444",
                    guardian_opt_in=guardian_opt_in,
                    caregiver_id=caregiver.id,
                    created_at=NOW,
                )
            )
            s.flush()
            s.add(Device(id=device_id, household_id=f"h-{n}"))

"""Small builders shared by collector tests: a registered district in a real database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from collector.domain.silence_checkin import CheckinPolicy
from collector.silence_flow import SilenceFlow, StoreDispatches
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.store.db import Database
from collector.store.models import Caregiver, Device, Household
from collector.store.silence import SilenceFlagRow

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


class NoPublisher:
    """A home whose device is offline: the silence flow must dispatch without asking it."""

    def publish(self, topic: str, payload: bytes) -> None:
        raise AssertionError(f"nothing should be published ({topic})")


def raise_silence_flag(
    db: Database, *, at: dt.datetime, dispatches: StoreDispatches | None = None
) -> SilenceFlagRow:
    """Run the real silence runtime and flow from ``NOW`` to ``at`` with no life sign (the home's
    device offline, so no check-in): exactly one flag is raised; returned detached."""
    flow = SilenceFlow(
        db, NoPublisher(), policy=CheckinPolicy(answer_window_min=10), dispatches=dispatches
    )
    clock = [NOW]
    runtime = SilenceRuntime(
        db,
        on_flag=flow.on_flag,
        settings=SilenceRuntimeSettings(learn=False),
        clock=lambda: clock[0],
    )
    runtime.create_schema()
    runtime.restore()
    clock[0] = at
    assert len(runtime.tick()) == 1
    with db.session() as s:
        row = s.scalars(select(SilenceFlagRow)).one()
        s.expunge(row)
        return row

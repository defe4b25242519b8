"""Retention: heartbeat rows and seen message ids do not grow forever.

Every ``interval_s`` the job prunes heartbeat rows received more than ``heartbeats_days`` ago and
``seen_messages`` rows older than ``seen_messages_days``. Before a heartbeat row goes, its
counters are added to its device's day in ``device_days`` (one row per device per Korean calendar
day), in the same transaction as the delete, so a rollup is counted exactly once even if the job
stops half-way. Work goes in batches of ``batch`` rows, each its own short transaction, so ingest is
never locked out for long.

    job = RetentionJob(db, RetentionPolicy(heartbeats_days=30, seen_messages_days=14),
                       interval_s=3600, clock=utcnow)
    job.run_once()          # -> Pruned(heartbeats=..., seen_messages=..., device_days=...)

``seen_messages_days`` must outlast any redelivery: a message id pruned and then redelivered
would be handled again. The broker's session expiry and the agents' outbox re-send are minutes
to hours; the default keeps two weeks.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from collector.domain.intake import KST
from collector.store.db import Database
from collector.store.models import DeviceDay, HeartbeatRecord, SeenMessage
from collector.store.sql import insert_for, table_of

log = logging.getLogger("anbu.collector.retention")

COUNTERS = (
    "motion_count",
    "speech_s",
    "wake_word_count",
    "interactions",
    "button_presses",
    "audio_overruns",
)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long rows are kept, in days (fractions allowed)."""

    heartbeats_days: float = 30.0
    seen_messages_days: float = 14.0

    def __post_init__(self) -> None:
        for name in ("heartbeats_days", "seen_messages_days"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be a positive number")

    def cutoffs(self, now: dt.datetime) -> Cutoffs:
        """What is older than these goes. Pure: ``now`` is given."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return Cutoffs(
            heartbeats_before=now - dt.timedelta(days=self.heartbeats_days),
            seen_messages_before=now - dt.timedelta(days=self.seen_messages_days),
        )


@dataclass(frozen=True, slots=True)
class Cutoffs:
    heartbeats_before: dt.datetime
    seen_messages_before: dt.datetime


@dataclass(frozen=True, slots=True)
class Pruned:
    heartbeats: int = 0
    seen_messages: int = 0
    device_days: int = 0
    """Device-day rollup rows written or added to."""


def roll_up(rows: list[dict[str, Any]]) -> dict[tuple[str, dt.date], dict[str, Any]]:
    """Heartbeat rows summed per (device, Korean calendar day of receipt), as the ingest's
    rollups are. Pure."""
    days: dict[tuple[str, dt.date], dict[str, Any]] = {}
    for row in rows:
        key = (row["device_id"], row["received_at"].astimezone(KST).date())
        day = days.get(key)
        if day is None:
            day = days[key] = {"heartbeats": 0} | {name: 0 for name in COUNTERS}
        day["heartbeats"] += 1
        for name in COUNTERS:
            day[name] += row[name]
    return days


def prune(db: Database, cutoffs: Cutoffs, *, batch: int = 5_000) -> Pruned:
    """Roll up and delete what is older than ``cutoffs``, ``batch`` rows per transaction."""
    if batch < 1:
        raise ValueError(f"batch={batch} must be at least 1")
    heartbeats = seen = device_days = 0
    while True:
        with db.session() as session:
            removed, days = _prune_heartbeats(session, cutoffs.heartbeats_before, batch)
        heartbeats += removed
        device_days += days
        if removed < batch:
            break
    while True:
        with db.session() as session:
            ids = session.scalars(
                select(SeenMessage.message_id)
                .where(SeenMessage.received_at < cutoffs.seen_messages_before)
                .limit(batch)
            ).all()
            if ids:
                session.execute(delete(SeenMessage).where(SeenMessage.message_id.in_(ids)))
        seen += len(ids)
        if len(ids) < batch:
            break
    return Pruned(heartbeats=heartbeats, seen_messages=seen, device_days=device_days)


def _prune_heartbeats(session: Session, before: dt.datetime, batch: int) -> tuple[int, int]:
    columns = [
        HeartbeatRecord.id,
        HeartbeatRecord.device_id,
        HeartbeatRecord.received_at,
        *(getattr(HeartbeatRecord, name) for name in COUNTERS),
    ]
    rows = [
        dict(row._mapping)
        for row in session.execute(
            select(*columns)
            .where(HeartbeatRecord.received_at < before)
            .order_by(HeartbeatRecord.received_at, HeartbeatRecord.id)
            .limit(batch)
        )
    ]
    if not rows:
        return 0, 0
    days = roll_up(rows)
    values = [{"device_id": device, "day": day} | sums for (device, day), sums in days.items()]
    statement = insert_for(session, table_of(DeviceDay))
    statement = statement.on_conflict_do_update(
        index_elements=[DeviceDay.device_id, DeviceDay.day],
        set_={
            name: getattr(DeviceDay, name) + getattr(statement.excluded, name)
            for name in ("heartbeats", *COUNTERS)
        },
    )
    session.execute(statement, values)
    session.execute(delete(HeartbeatRecord).where(HeartbeatRecord.id.in_([r["id"] for r in rows])))
    return len(rows), len(days)


class RetentionJob:
    """Runs :func:`prune` every ``interval_s`` in its own thread; ``run_once()`` for tests."""

    def __init__(
        self,
        db: Database,
        policy: RetentionPolicy,
        *,
        interval_s: float,
        clock: Callable[[], dt.datetime],
        batch: int = 5_000,
    ) -> None:
        self.db = db
        self.policy = policy
        self.interval_s = interval_s
        self.clock = clock
        self.batch = batch
        self.runs = 0
        self.failures = 0
        self.last: Pruned | None = None
        self.last_run_at: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anbu-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_once(self) -> Pruned:
        now = self.clock()
        pruned = prune(self.db, self.policy.cutoffs(now), batch=self.batch)
        self.runs += 1
        self.last = pruned
        self.last_run_at = now
        log.info(
            "retention run",
            extra={
                "heartbeats": pruned.heartbeats,
                "seen_messages": pruned.seen_messages,
                "device_days": pruned.device_days,
            },
        )
        return pruned

    def health(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "failures": self.failures,
            "last_run_at": None if self.last_run_at is None else self.last_run_at.isoformat(),
            "last_pruned": None
            if self.last is None
            else {"heartbeats": self.last.heartbeats, "seen_messages": self.last.seen_messages},
        }

    def _run(self) -> None:
        # First run soon after start-up, then every interval.
        wait = min(self.interval_s, 60.0)
        while not self._stop.wait(wait):
            wait = self.interval_s
            try:
                self.run_once()
            except Exception:
                self.failures += 1
                log.exception("retention run failed; trying again next interval")

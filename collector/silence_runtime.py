"""Silence in the running collector: the ingest calls in with life signs, flags come out.

Interface for the ingest (thread-safe; O(log n); no database access except one query for the
period of a home never seen before)::

    runtime.on_life_sign(household_id, LifeSignKind.MOTION, at)   # any life sign
    runtime.on_device_state(household_id, online=False)           # last will / back online

and for staff and the API::

    runtime.set_period(household_id, period_h)                    # table result or override

Flags go to ``on_flag(flag, flag_id)``, once per quiet stretch across every collector sharing
the database (the ``silence_flags`` insert is the arbiter). Life signs are written behind, every
``flush_interval_s``, in one transaction; after a crash the restore also takes each home's
newest ``devices.last_life_sign_at``, which the ingest writes with the event itself, so a
life sign lost from the write-behind can only make a deadline earlier, never missed.

One thread (``start``/``stop``) sleeps until the next deadline or flush, whichever is sooner.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from collector.domain.silence import LifeSignKind, SilenceFlag, from_epoch, to_epoch
from collector.domain.silence_routine import Routine, RoutineObservations, RoutineSettings
from collector.domain.silence_schedule import HomeRow, SilenceTracker
from collector.store.db import Database
from collector.store.models import Device, Household
from collector.store.silence import HouseholdSilence, SilenceFlagRow

log = logging.getLogger("anbu.collector.silence")

_FLUSH_CHUNK = 500
"""Homes written per flush transaction."""

FlagHandler = Callable[[SilenceFlag, int], None]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class SilenceRuntimeSettings:
    default_period_h: float = 14.0
    """For a home with no period anywhere (neither in ``household_silence`` nor ``households``)."""
    flush_interval_s: float = 5.0
    relearn_every_h: float = 24.0
    learn: bool = True
    instance_id: str = "collector"


@dataclass(slots=True)
class _Learning:
    observations: RoutineObservations
    learned_at_s: float | None
    dirty: bool = False


class SilenceRuntime:
    """Owns the :class:`SilenceTracker`; persists it; raises flags exactly once."""

    def __init__(
        self,
        db: Database,
        *,
        on_flag: FlagHandler,
        settings: SilenceRuntimeSettings | None = None,
        routine_settings: RoutineSettings | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.db = db
        self.on_flag = on_flag
        self.settings = settings or SilenceRuntimeSettings()
        self.routine_settings = routine_settings or RoutineSettings()
        self.clock = clock
        self.tracker = SilenceTracker()
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._learning: dict[str, _Learning] = {}
        self._unsaved: list[SilenceFlag] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flags_raised = 0
        self.flags_taken_elsewhere = 0
        self.flags_stale = 0
        self.last_tick_at: dt.datetime | None = None

    # -- start-up ---------------------------------------------------------------------------

    def create_schema(self) -> None:
        self.db.create_schema()  # this module imported the silence tables onto Base

    def restore(self) -> int:
        """Rebuild every deadline from the store; return the number of homes scheduled."""
        rows: list[HomeRow] = []
        offline: set[str] = set()
        with self.db.session() as session:
            device_signs = dict(
                session.execute(
                    select(Device.household_id, func.max(Device.last_life_sign_at)).group_by(
                        Device.household_id
                    )
                ).all()
            )
            # Offline: a device whose state is known (it connected once) and is offline, and
            # no other device of the home online. Never-connected devices are provisioning.
            known_state = session.execute(
                select(Device.household_id, Device.online).where(
                    Device.state_changed_at.is_not(None)
                )
            ).all()
            up = {hid for hid, online in known_state if online}
            offline = {hid for hid, online in known_state if not online} - up
            for saved in session.scalars(select(HouseholdSilence)):
                last = saved.last_life_sign_at
                newer = device_signs.get(saved.household_id)
                if newer is not None and newer > last:
                    last = newer
                rows.append(
                    HomeRow(
                        saved.household_id,
                        to_epoch(last),
                        saved.period_h,
                        self._routine_of(saved),
                        _kind(saved.last_kind),
                        None if saved.flagged_for is None else to_epoch(saved.flagged_for),
                    )
                )
                if self.settings.learn and saved.observations:
                    self._learning[saved.household_id] = self._observations_of(saved)
            # Homes registered but never scheduled yet: their quiet stretch starts at their
            # devices' last life sign, or when the household was registered.
            scheduled = {row.household_id for row in rows}
            for household_id, period_h, created_at in session.execute(
                select(Household.id, Household.silence_period_h, Household.created_at)
            ):
                if household_id in scheduled:
                    continue
                last = device_signs.get(household_id) or created_at
                rows.append(
                    HomeRow(
                        household_id, to_epoch(last), period_h or self.settings.default_period_h
                    )
                )
        if self.settings.learn:
            # Every home's learning tables now, not at its second life sign: they are a fixed
            # size (about 1 KB a home), so memory is flat from the start instead of growing
            # over the first day as homes report in (10 MiB for 10,000 homes).
            for row in rows:
                if row.household_id not in self._learning:
                    self._learning[row.household_id] = self._new_learning()
        with self._lock:
            self.tracker = SilenceTracker()
            self.tracker.restore(rows)
            for household_id in offline:
                self.tracker.suspend_routine(household_id)
        gc.freeze()  # long-lived homes leave the collector's generations (no multi-ms pauses)
        log.info("silence schedule restored", extra={"homes": len(rows), "offline": len(offline)})
        return len(rows)

    def _routine_of(self, saved: HouseholdSilence) -> Routine | None:
        if not saved.routine:
            return None
        try:
            return Routine.from_json(saved.routine, self.routine_settings)
        except ValueError as exc:
            log.error(
                "stored routine unreadable; using the fixed period",
                extra={"household_id": saved.household_id, "error": str(exc)},
            )
            return None

    def _observations_of(self, saved: HouseholdSilence) -> _Learning:
        learned = None if saved.routine_learned_at is None else to_epoch(saved.routine_learned_at)
        try:
            observations = RoutineObservations.from_json(
                saved.observations or "", self.routine_settings
            )
        except ValueError as exc:
            log.error(
                "stored observations unreadable; learning again",
                extra={"household_id": saved.household_id, "error": str(exc)},
            )
            observations = RoutineObservations(self.routine_settings)
        return _Learning(observations, learned)

    def _new_learning(self) -> _Learning:
        return _Learning(RoutineObservations(self.routine_settings), None)

    # -- what the ingest calls ---------------------------------------------------------------

    def on_life_sign(self, household_id: str, kind: LifeSignKind, at: dt.datetime) -> None:
        """A life sign from any source (device, check-in answer, external API)."""
        at_s = to_epoch(at)
        with self._lock:
            known = household_id in self.tracker
        # Only a home never seen before costs a query (for its period), outside the lock.
        period_h = None if known else self._period_from_households(household_id)
        with self._lock:
            soonest = self.tracker.next_due_s()
            if household_id not in self.tracker:
                self.tracker.life_sign(household_id, at_s, kind, period_h=period_h)
            else:
                previous = self.tracker.last_life_sign_s(household_id)
                previous_context = self.tracker.last_context(household_id)
                if not self.tracker.life_sign(household_id, at_s, kind):
                    return  # older than what we know
                if self.settings.learn and previous is not None:
                    learning = self._learning.get(household_id)
                    if learning is None:  # a home registered since the restore
                        learning = self._learning[household_id] = self._new_learning()
                    learning.observations.observe_gap(previous, at_s, previous_context)
                    learning.dirty = True
            self._dirty.add(household_id)
            # A sign of a context with a short limit can bring the deadline forward (after a
            # long one's): wake the loop if it now sleeps past it.
            deadline = self.tracker.deadline(household_id)
            earlier = deadline is not None and (soonest is None or deadline.due_s < soonest)
        if earlier:
            self._wake.set()

    def on_device_state(self, household_id: str, *, online: bool) -> None:
        """Offline: only the fixed period applies (the routine waits); online: both again."""
        with self._lock:
            if online:
                self.tracker.resume_routine(household_id)
            else:
                self.tracker.suspend_routine(household_id)
        self._wake.set()

    def set_period(self, household_id: str, period_h: float) -> None:
        """A new period from the rule table or a staff override."""
        if period_h <= 0:
            raise ValueError(f"period_h must be > 0, got {period_h}")
        with self._lock:
            routine = self.tracker.routine_of(household_id)
            self.tracker.configure(
                household_id, period_h=period_h, routine=routine, now_s=to_epoch(self.clock())
            )
            self._dirty.add(household_id)
        self._wake.set()  # a shorter period can bring the next deadline forward

    def _period_from_households(self, household_id: str) -> float:
        with self.db.session() as session:
            period = session.scalar(
                select(Household.silence_period_h).where(Household.id == household_id)
            )
        return float(period) if period else self.settings.default_period_h

    # -- deadlines -----------------------------------------------------------------------------

    def tick(self) -> list[SilenceFlag]:
        """Raise every flag that is due; return those this collector raised."""
        now = self.clock()
        with self._lock:
            due = self._unsaved + self.tracker.due(to_epoch(now))
            self._unsaved = []
        raised: list[tuple[SilenceFlag, int]] = []
        for flag in due:
            try:
                flag_id = self._claim(flag, now)
            except SQLAlchemyError:
                log.exception("could not store a silence flag; retrying next tick")
                with self._lock:
                    self._unsaved.append(flag)
                continue
            if flag_id is None:
                self.flags_taken_elsewhere += 1
                continue
            if flag_id < 0:
                self.flags_stale += 1  # another collector saw a newer life sign
                continue
            raised.append((flag, flag_id))
        self.last_tick_at = now
        for flag, flag_id in raised:
            self.flags_raised += 1
            log.warning(
                "home silent",
                extra={
                    "household_id": flag.household_id,
                    "limit": flag.reason.limit.value,
                    "last_life_sign_at": flag.reason.last_life_sign_at.isoformat(),
                    "flag_id": flag_id,
                },
            )
            try:
                self.on_flag(flag, flag_id)
            except Exception:
                log.exception("silence flag handler failed", extra={"flag_id": flag_id})
        return [flag for flag, _ in raised]

    def _claim(self, flag: SilenceFlag, now: dt.datetime) -> int | None:
        """Insert the flag row and return its id.

        None if another collector already raised this stretch; -1 if the store knows a newer
        life sign than this collector does (with a shared subscription each collector sees only
        its share of the messages), in which case the home is re-armed from that sign.
        """
        reason = flag.reason
        newer = self._newest_stored_sign(flag.household_id)
        if newer is not None and newer > reason.last_life_sign_at:
            with self._lock:
                self.tracker.life_sign(flag.household_id, to_epoch(newer))
            return -1
        try:
            with self.db.session() as session:
                row = SilenceFlagRow(
                    household_id=flag.household_id,
                    stretch_started_at=reason.last_life_sign_at,
                    last_kind=None if reason.last_kind is None else reason.last_kind.value,
                    limit=reason.limit.value,
                    limit_h=reason.limit_h,
                    period_h=reason.period_h,
                    due_at=flag.due_at,
                    raised_at=now,
                    raised_by=self.settings.instance_id,
                    status="open",
                )
                session.add(row)
                session.flush()
                saved = session.get(HouseholdSilence, flag.household_id)
                if saved is None:
                    saved = HouseholdSilence(
                        household_id=flag.household_id,
                        last_life_sign_at=reason.last_life_sign_at,
                        period_h=reason.period_h,
                        updated_at=now,
                    )
                    session.add(saved)
                saved.flagged_for = reason.last_life_sign_at
                return row.id
        except IntegrityError:
            return None

    def _newest_stored_sign(self, household_id: str) -> dt.datetime | None:
        """The newest life sign any collector stored for the home (its row or its devices)."""
        with self.db.session() as session:
            saved = session.get(HouseholdSilence, household_id)
            device_sign = session.scalar(
                select(func.max(Device.last_life_sign_at)).where(
                    Device.household_id == household_id
                )
            )
        candidates = [device_sign, None if saved is None else saved.last_life_sign_at]
        known = [t for t in candidates if t is not None]
        return max(known) if known else None

    # -- persistence -------------------------------------------------------------------------

    def flush(self) -> int:
        """Write the homes that changed since the last flush; relearn routines that are due."""
        now = self.clock()
        now_s = to_epoch(now)
        relearn_s = self.settings.relearn_every_h * 3600
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            snapshot = []
            for household_id in dirty:
                row = self.tracker.row(household_id)
                if row is None:
                    continue
                learning = self._learning.get(household_id)
                observations = routine_json = None
                if learning is not None and learning.dirty:
                    learning.dirty = False
                    observations = learning.observations.to_json()
                    stale = (
                        learning.learned_at_s is None or now_s - learning.learned_at_s >= relearn_s
                    )
                    if stale:
                        routine = learning.observations.routine()
                        if routine is not None:
                            learning.learned_at_s = now_s
                            self.tracker.configure(
                                household_id, period_h=row.period_h, routine=routine, now_s=now_s
                            )
                            routine_json = routine.to_json()
                snapshot.append((row, observations, routine_json))
        if not snapshot:
            return 0
        # In chunks, each read with one query and written in its own short transaction: one
        # SELECT per home kept a transaction open for minutes with 10,000 homes under load.
        for start in range(0, len(snapshot), _FLUSH_CHUNK):
            chunk = snapshot[start : start + _FLUSH_CHUNK]
            try:
                self._write_chunk(chunk, now)
            except SQLAlchemyError:
                log.exception("silence flush failed; will retry")
                with self._lock:
                    self._dirty |= {row.household_id for row, _, _ in snapshot[start:]}
                return start
        return len(snapshot)

    def _write_chunk(
        self, chunk: list[tuple[HomeRow, str | None, str | None]], now: dt.datetime
    ) -> None:
        with self.db.session() as session:
            ids = [row.household_id for row, _, _ in chunk]
            saved_rows = {
                saved.household_id: saved
                for saved in session.scalars(
                    select(HouseholdSilence).where(HouseholdSilence.household_id.in_(ids))
                )
            }
            for row, observations, routine_json in chunk:
                saved = saved_rows.get(row.household_id)
                if saved is None:
                    saved = HouseholdSilence(household_id=row.household_id)
                    session.add(saved)
                saved.last_life_sign_at = from_epoch(row.last_life_sign_s)
                saved.last_kind = None if row.last_kind is None else row.last_kind.value
                saved.period_h = row.period_h
                saved.updated_at = now
                if observations is not None:
                    saved.observations = observations
                if routine_json is not None:
                    saved.routine = routine_json
                    saved.routine_learned_at = now

    # -- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="anbu-silence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        next_flush = to_epoch(self.clock()) + self.settings.flush_interval_s
        while not self._stop.is_set():
            try:
                self.tick()
                now_s = to_epoch(self.clock())
                if now_s >= next_flush:
                    self.flush()
                    next_flush = now_s + self.settings.flush_interval_s
            except Exception:
                log.exception("silence loop failed")
            with self._lock:
                next_due = self.tracker.next_due_s()
            wake_at = min(next_flush, next_due) if next_due is not None else next_flush
            self._wake.wait(max(0.0, wake_at - to_epoch(self.clock())))
            self._wake.clear()

    def health(self) -> dict[str, object]:
        with self._lock:
            next_due = self.tracker.next_due_s()
            homes = len(self.tracker)
        return {
            "homes": homes,
            "next_deadline_at": None if next_due is None else from_epoch(next_due).isoformat(),
            "flags_raised": self.flags_raised,
            "flags_taken_by_other_collectors": self.flags_taken_elsewhere,
            "flags_dropped_for_a_newer_stored_sign": self.flags_stale,
            "unsaved_flags": len(self._unsaved),
            "pending_writes": len(self._dirty),
            "last_tick_at": None if self.last_tick_at is None else self.last_tick_at.isoformat(),
        }


def _kind(value: str | None) -> LifeSignKind | None:
    try:
        return None if value is None else LifeSignKind(value)
    except ValueError:
        return None

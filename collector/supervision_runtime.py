"""Device supervision in the running collector: heartbeats and states in, tickets in the store.

Interface for the ingest (thread-safe; memory only, no database access)::

    supervision.on_heartbeat(device_id, household_id, facts, at)   # HeartbeatFacts from the message
    supervision.on_state(device_id, household_id, "offline", at)   # last will / retained state

``tick()`` (the silence runtime's thread or the scheduler calls it, e.g. once a minute) runs
:func:`~collector.domain.supervision.decide_tickets` for every device and writes the tickets it
opens and closes to ``technician_tickets``. The partial unique index (one open ticket per device
and kind) keeps two collectors from opening the same ticket twice. ``on_offline_changed`` is
told when a home's device goes offline or comes back, so the silence runtime can pause and resume
the home's routine.

A home with no device up for ``offline_dispatch_after_s`` gets one ``device_offline`` dispatch per
outage through the ``dispatches`` adapter (:mod:`collector.offline_dispatch`); closing the
``offline`` ticket when a device returns settles it. ``on_notify`` is called after a commit that
queued messages, to wake the notification worker.

Device health lives in memory: after a restart the first heartbeat (or the missed-heartbeat
timer from the restored ``devices.last_heartbeat_at``) rebuilds it; open tickets are read back.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from collector.domain.supervision import (
    CloseTicket,
    DeviceHealth,
    HeartbeatFacts,
    OpenTicket,
    SupervisionSettings,
    TicketKind,
    decide_tickets,
    home_offline_since,
    is_offline,
    merge_stored,
    observe_heartbeat,
    observe_state,
    offline_dispatch_due,
)
from collector.offline_dispatch import LostRace, NotYet, StoreOfflineDispatches
from collector.store.db import Database
from collector.store.models import Device
from collector.store.silence import TechnicianTicket

log = logging.getLogger("anbu.collector.supervision")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SupervisionRuntime:
    """Keeps every device's health and turns it into technician tickets."""

    def __init__(
        self,
        db: Database,
        *,
        settings: SupervisionSettings | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        on_offline_changed: Callable[[str, bool], None] = lambda _household, _offline: None,
        dispatches: StoreOfflineDispatches | None = None,
        on_notify: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.dispatches = dispatches or StoreOfflineDispatches()
        self.on_notify = on_notify
        self.settings = settings or SupervisionSettings()
        self.clock = clock
        self.on_offline_changed = on_offline_changed
        self._health: dict[str, DeviceHealth] = {}
        self._open: dict[str, set[TicketKind]] = {}
        self._offline: set[str] = set()
        self._lock = threading.Lock()
        self.tickets_opened = 0
        self.tickets_closed = 0
        self.offline_dispatches = 0
        self._dispatched_homes: set[str] = set()
        """Homes whose current outage has its dispatch (a cache of the tickets' link)."""
        self._listening_since: dt.datetime | None = None

    def restore(self) -> int:
        """Read devices and open tickets back; return the number of devices watched."""
        self._listening_since = self.clock()
        with self.db.session() as session:
            devices = session.execute(
                select(
                    Device.id,
                    Device.household_id,
                    Device.online,
                    Device.state_changed_at,
                    Device.last_heartbeat_at,
                )
            ).all()
            open_rows = session.execute(
                select(TechnicianTicket.device_id, TechnicianTicket.kind).where(
                    TechnicianTicket.closed_at.is_(None)
                )
            ).all()
        with self._lock:
            for device_id, household_id, online, state_at, heartbeat_at in devices:
                self._health[device_id] = DeviceHealth(
                    device_id,
                    household_id,
                    state="online" if online or state_at is None else "offline",
                    state_at=state_at,
                    first_heartbeat_at=heartbeat_at,
                    last_heartbeat_at=heartbeat_at,
                )
            for device_id, kind in open_rows:
                try:
                    self._open.setdefault(device_id, set()).add(TicketKind(kind))
                except ValueError:
                    log.error("unknown ticket kind in the store", extra={"kind": kind})
        return len(devices)

    def on_heartbeat(
        self, device_id: str, household_id: str, facts: HeartbeatFacts, at: dt.datetime
    ) -> None:
        with self._lock:
            health = self._health.get(device_id) or DeviceHealth(device_id, household_id)
            self._health[device_id] = observe_heartbeat(
                health, facts, now=at, settings=self.settings
            )

    def on_state(self, device_id: str, household_id: str, state: str, at: dt.datetime) -> None:
        """``state`` is ``online`` or ``offline``; anything else raises ``ValueError``."""
        with self._lock:
            health = self._health.get(device_id) or DeviceHealth(device_id, household_id)
            self._health[device_id] = observe_state(health, state, now=at)

    def tick(self) -> list[OpenTicket | CloseTicket]:
        """Open and close tickets for every device; return what was written."""
        now = self.clock()
        decisions: list[OpenTicket | CloseTicket] = []
        changed: list[tuple[str, bool]] = []
        with self._lock:
            suspects = [
                device_id
                for device_id, health in self._health.items()
                if is_offline(health, now=now, settings=self.settings)
            ]
        stored = self._stored_liveness(suspects)
        self._reload_open()
        with self._lock:
            for device_id, (online, state_at, heartbeat_at) in stored.items():
                health = self._health.get(device_id)
                if health is not None:
                    self._health[device_id] = merge_stored(
                        health, online=online, state_at=state_at, last_heartbeat_at=heartbeat_at
                    )
            waiting = self._undecided(now)
            for device_id, health in self._health.items():
                if device_id in waiting:
                    continue
                open_kinds = frozenset(self._open.get(device_id, ()))
                decisions += decide_tickets(health, open_kinds, now=now, settings=self.settings)
            homes_offline: dict[str, bool] = {}
            for device_id, health in self._health.items():
                if device_id in waiting:
                    continue
                offline = is_offline(health, now=now, settings=self.settings)
                # A home is offline only when none of its devices is up.
                homes_offline[health.household_id] = (
                    homes_offline.get(health.household_id, True) and offline
                )
            for household_id, offline in homes_offline.items():
                if offline != (household_id in self._offline):
                    changed.append((household_id, offline))
                    (self._offline.add if offline else self._offline.discard)(household_id)
                if not offline:
                    self._dispatched_homes.discard(household_id)
            due = self._homes_due_dispatch(homes_offline, now)
        written = [d for d in decisions if self._write(d, now)]
        for household_id, offline in changed:
            self.on_offline_changed(household_id, offline)
        for household_id, since in due.items():
            self._open_dispatch(household_id, since, now)
        return written

    def _homes_due_dispatch(
        self, homes_offline: dict[str, bool], now: dt.datetime
    ) -> dict[str, dt.datetime]:
        """Offline homes due their dispatch and not known to have it. Call with the lock held."""
        devices: dict[str, list[DeviceHealth]] = {}
        for health in self._health.values():
            if homes_offline.get(health.household_id):
                devices.setdefault(health.household_id, []).append(health)
        due: dict[str, dt.datetime] = {}
        for household_id, healths in devices.items():
            if household_id in self._dispatched_homes:
                continue
            since = home_offline_since(healths, now=now, settings=self.settings)
            if since is not None and offline_dispatch_due(since, now=now, settings=self.settings):
                due[household_id] = since
        return due

    def _open_dispatch(self, household_id: str, since: dt.datetime, now: dt.datetime) -> None:
        try:
            with self.db.session() as session:
                dispatch_id = self.dispatches.open_for(session, household_id, since, now)
        except LostRace:
            log.info(
                "device_offline dispatch opened by another collector",
                extra={"household_id": household_id},
            )
            dispatch_id = None
        except NotYet:
            return  # the ticket's write failed this tick; both are retried on the next
        except SQLAlchemyError:
            log.exception("could not open a device_offline dispatch; retrying next tick")
            return
        with self._lock:
            self._dispatched_homes.add(household_id)
            if dispatch_id is not None:
                self.offline_dispatches += 1
        if dispatch_id is not None:
            log.warning(
                "device_offline dispatch opened",
                extra={"household_id": household_id, "dispatch_id": dispatch_id},
            )
            self.on_notify()

    def _undecided(self, now: dt.datetime) -> set[str]:
        """Devices not heard since this collector started listening, while fewer than the
        missed-heartbeat allowance have passed: their heartbeats during the collector's own
        downtime say nothing about them (without this, a collector back after 15 minutes
        would open an offline ticket for every device). Call with the lock held."""
        since = self._listening_since
        if since is None or (now - since).total_seconds() >= self.settings.offline_after_s:
            return set()
        return {
            device_id
            for device_id, health in self._health.items()
            if health.state == "online"
            and health.last_heartbeat_at is not None
            and health.last_heartbeat_at < since
        }

    def _reload_open(self) -> None:
        """The open tickets as stored: another collector, or staff by hand, may have closed one
        (a ticket closed by hand whose condition still holds is opened again, as a new one)."""
        try:
            with self.db.session() as session:
                rows = session.execute(
                    select(TechnicianTicket.device_id, TechnicianTicket.kind).where(
                        TechnicianTicket.closed_at.is_(None)
                    )
                ).all()
        except SQLAlchemyError:
            log.exception("could not read open tickets; using what this collector knows")
            return
        open_now: dict[str, set[TicketKind]] = {}
        for device_id, kind in rows:
            try:
                open_now.setdefault(device_id, set()).add(TicketKind(kind))
            except ValueError:
                log.error("unknown ticket kind in the store", extra={"kind": kind})
        with self._lock:
            self._open = open_now

    def _stored_liveness(
        self, device_ids: list[str]
    ) -> dict[str, tuple[bool, dt.datetime | None, dt.datetime | None]]:
        """``online``, ``state_changed_at`` and ``last_heartbeat_at`` as stored, for the devices
        this collector thinks are offline (few, usually): another collector may have heard them."""
        found: dict[str, tuple[bool, dt.datetime | None, dt.datetime | None]] = {}
        if not device_ids:
            return found
        try:
            with self.db.session() as session:
                for start in range(0, len(device_ids), 500):
                    rows = session.execute(
                        select(
                            Device.id,
                            Device.online,
                            Device.state_changed_at,
                            Device.last_heartbeat_at,
                        ).where(Device.id.in_(device_ids[start : start + 500]))
                    )
                    for device_id, online, state_at, heartbeat_at in rows:
                        found[device_id] = (bool(online), state_at, heartbeat_at)
        except SQLAlchemyError:
            log.exception("could not read device liveness; deciding on what this collector heard")
        return found

    def _write(self, decision: OpenTicket | CloseTicket, now: dt.datetime) -> bool:
        notify = False
        try:
            with self.db.session() as session:
                if isinstance(decision, OpenTicket):
                    session.add(
                        TechnicianTicket(
                            device_id=decision.device_id,
                            household_id=decision.household_id,
                            kind=decision.kind.value,
                            detail=decision.detail,
                            opened_at=now,
                        )
                    )
                else:
                    closed = 0
                    tickets = session.scalars(
                        select(TechnicianTicket)
                        .where(
                            TechnicianTicket.device_id == decision.device_id,
                            TechnicianTicket.kind == decision.kind.value,
                            TechnicianTicket.closed_at.is_(None),
                        )
                        .with_for_update(skip_locked=True)
                    ).all()
                    for ticket in tickets:
                        if decision.kind is TicketKind.OFFLINE:
                            notify = self.dispatches.device_back(session, ticket, now) or notify
                        ticket.closed_at = now
                        ticket.close_detail = decision.detail
                        closed += 1
                    if not closed:
                        # Another collector (or staff, by hand) closed it first: not ours.
                        with self._lock:
                            self._open.get(decision.device_id, set()).discard(decision.kind)
                        return False
        except IntegrityError:
            # Another collector opened it first: it is open either way, but not ours to report.
            with self._lock:
                self._open.setdefault(decision.device_id, set()).add(decision.kind)
            return False
        except SQLAlchemyError:
            log.exception("could not write a technician ticket; retrying next tick")
            return False
        if notify:
            self.on_notify()
        with self._lock:
            kinds = self._open.setdefault(decision.device_id, set())
            if isinstance(decision, OpenTicket):
                kinds.add(decision.kind)
                self.tickets_opened += 1
                log.warning(
                    "technician ticket opened",
                    extra={"device_id": decision.device_id, "kind": decision.kind.value},
                )
            else:
                kinds.discard(decision.kind)
                self.tickets_closed += 1
                log.info(
                    "technician ticket closed",
                    extra={"device_id": decision.device_id, "kind": decision.kind.value},
                )
        return True

    def health(self) -> dict[str, object]:
        with self._lock:
            return {
                "devices": len(self._health),
                "open_tickets": sum(len(k) for k in self._open.values()),
                "homes_offline": len(self._offline),
                "tickets_opened": self.tickets_opened,
                "tickets_closed": self.tickets_closed,
                "offline_dispatches": self.offline_dispatches,
            }

"""The bulk lane in a process of its own (``ingest_bulk_process``), so heartbeats never share a GIL
with an SOS.

In one process the event lane, the bulk lane and their paho threads take turns on one interpreter
lock: under a flood of heartbeats every step of an SOS (read, decode, commit, acknowledge, notify)
waits its turn behind heartbeat work, and on a loaded machine that made the SOS path seconds slow.
With this setting the collector's main process keeps the event lane, notifications, escalation,
silence and the API; a child process runs the bulk connections, the bulk lane and the time-series
sink, at a lower CPU priority (``ingest_bulk_nice``), so the operating system, not the interpreter,
puts an SOS first.

The child sends the main process what the silence schedule and device supervision read of each
committed batch (life signs, device states, a heartbeat's health fields) and a health snapshot
every second. It dies with the main process (the
parent-death signal, and a check of its parent's pid), and the main process starts it again if it
dies: its unacknowledged messages wait at the broker meanwhile, in its persistent session.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

from collector.service import BulkResult
from collector.settings import CollectorSettings

log = logging.getLogger("anbu.collector.bulk_process")

_SNAPSHOT_EVERY_S = 1.0
_STALE_AFTER_S = 5.0
_STEADY_AFTER_S = 60.0
_MAX_RESTART_DELAY_S = 30.0
_PR_SET_PDEATHSIG = 1


def restart_delay(lived_s: float, previous_s: float, base_s: float) -> float:
    """How long to wait before starting a child again that died after ``lived_s``: ``base_s``
    after a steady run, else twice the previous wait, up to 30 s."""
    if lived_s > _STEADY_AFTER_S:
        return base_s
    return min(_MAX_RESTART_DELAY_S, max(base_s, 2 * previous_s))


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (``kill -9`` included)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent-pid check below still holds
        pass


def child_main(
    settings: CollectorSettings,
    out: mp.Queue[Any],
    stop: MpEvent,
    parent_pid: int,
    clock: Callable[[], dt.datetime] | None = None,
) -> None:
    """The child: bulk connections → bulk lane → store; signs and health to ``out``.

    ``clock`` stamps what the child receives (None: the wall clock); it crosses the spawn, so
    it must pickle (a module-level function or object)."""
    _die_with_parent()
    from anbu import logs
    from collector.domain.supervision import facts_of
    from collector.ingest import bulk_intakes, utcnow
    from collector.pipeline import BulkLane
    from collector.registry import DeviceRegistry, load_all, store_lookup
    from collector.service import build_service
    from collector.store.db import Database
    from collector.telemetry import HeartbeatPoint, telemetry_from_settings

    logs.setup(settings.log_level)
    now = clock or utcnow
    db = Database(settings.database_url, pool_size=2)
    registry = DeviceRegistry(store_lookup(db.sessions))
    with db.sessions() as session:
        registry.replace_all(load_all(session))
    service = build_service(settings, db, registry)
    telemetry = telemetry_from_settings(settings)

    def after_commit(result: BulkResult) -> None:
        # What the main process's silence schedule and supervision read, in plain tuples.
        if not (result.life_signs or result.device_states or result.heartbeats):
            return  # dead letters only
        out.put(
            (
                "signs",
                BulkResult(
                    life_signs=result.life_signs,
                    states=result.states,
                    device_states=result.device_states,
                    supervised=[(a, at, facts_of(hb)) for a, at, hb in result.heartbeats],
                ),
            )
        )
        if result.heartbeats:
            telemetry.submit(
                [
                    HeartbeatPoint.from_heartbeat(a.district, a.household, a.device, at, hb)
                    for a, at, hb in result.heartbeats
                ]
            )

    lane = BulkLane(
        service,
        clock=now,
        batch_max=settings.ingest_batch_max,
        batch_wait_s=settings.ingest_batch_wait_ms / 1000,
        after_commit=after_commit,
        capacity=settings.ingest_receive_maximum * settings.ingest_bulk_clients,
    )
    intakes = bulk_intakes(settings, lane, now)
    lane.start()
    for intake in intakes:
        intake.start()
    log.info("bulk ingest process started", extra={"pid": os.getpid()})
    # Started at the collector's priority (on a loaded machine a lowered one made the start take
    # half a minute), lowered once it runs.
    if settings.ingest_bulk_nice:
        try:
            os.nice(settings.ingest_bulk_nice)
        except OSError as exc:
            log.warning("cannot lower the bulk process's priority", extra={"error": str(exc)})
    try:
        while not stop.wait(_SNAPSHOT_EVERY_S):
            if os.getppid() != parent_pid:
                log.warning("collector process gone: bulk ingest stops")
                break
            out.put(
                (
                    "health",
                    {
                        "lane": lane.health(),
                        "connected": all(i.connected.is_set() for i in intakes),
                        "problems": {
                            i.client_id: i.last_problem for i in intakes if i.last_problem
                        },
                        "telemetry": telemetry.health(),
                        "counts": dict(service.counts),
                        "at": time.monotonic(),
                    },
                )
            )
    finally:
        for intake in intakes:
            intake.stop()
        lane.stop()
        telemetry.close()
        db.dispose()


class BulkProcess:
    """The main process's handle on the bulk child: start, supervise, read, stop."""

    def __init__(
        self,
        settings: CollectorSettings,
        *,
        after_bulk: Callable[[BulkResult], None],
        restart_delay_s: float = 1.0,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.after_bulk = after_bulk
        self.restart_delay_s = restart_delay_s
        self.restarts = 0
        self._delay_s = 0.0
        self._spawned_at = 0.0
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._out: mp.Queue[Any] = self._ctx.Queue()
        self._process: BaseProcess | None = None
        self._snapshot: dict[str, Any] = {}
        self._stopping = threading.Event()
        self._reader = threading.Thread(target=self._read, name="anbu-bulk-reader", daemon=True)

    def start(self) -> None:
        """Start the child (if :meth:`spawn_early` has not) and read what it reports."""
        if self._process is None:
            self._spawn()
        self._reader.start()

    def spawn_early(self) -> None:
        """Start the child now, so its start-up overlaps the main process's."""
        if self._process is None:
            self._spawn()

    def _spawn(self) -> None:
        # A child killed while holding the lock of its queue or stop event would leave them
        # locked for good: every child gets new ones.
        self._out = self._ctx.Queue()
        self._stop = self._ctx.Event()
        self._process = self._ctx.Process(
            target=child_main,
            args=(self.settings, self._out, self._stop, os.getpid(), self.clock),
            name="anbu-bulk",
            daemon=True,
        )
        self._process.start()
        self._spawned_at = time.monotonic()

    def _read(self) -> None:
        while not self._stopping.is_set():
            try:
                message = self._out.get(timeout=0.5)
            except queue.Empty:
                self._supervise()
                continue
            except (EOFError, OSError):
                self._supervise()
                continue
            if message[0] == "signs":
                try:
                    self.after_bulk(message[1])
                except Exception:
                    log.exception("life signs from the bulk process failed")
            elif message[0] == "health":
                self._snapshot = message[1]

    def _supervise(self) -> None:
        process = self._process
        if process is None or process.is_alive() or self._stopping.is_set():
            return
        # A child that dies at once (say, its database is away when it starts) is started again
        # after 1, 2, 4 … 30 s, not every second: each start costs a second of CPU.
        lived_s = time.monotonic() - self._spawned_at
        self._delay_s = restart_delay(lived_s, self._delay_s, self.restart_delay_s)
        log.error(
            "bulk ingest process died: starting it again",
            extra={
                "exitcode": process.exitcode,
                "restarts": self.restarts,
                "lived_s": round(lived_s, 1),
                "in_s": self._delay_s,
            },
        )
        if self._stopping.wait(self._delay_s):
            return
        self.restarts += 1
        self._snapshot = {}
        self._spawn()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._stop.set()
        process = self._process
        if process is not None:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join(2.0)
        if self._reader.ident is not None:
            self._reader.join(timeout=2.0)

    # -- what the main process reports ----------------------------------------------------

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _fresh(self) -> dict[str, Any]:
        snap = self._snapshot
        if not snap or time.monotonic() - float(snap.get("at", 0.0)) > _STALE_AFTER_S:
            return {}
        return snap

    @property
    def connected(self) -> bool:
        return bool(self._fresh().get("connected"))

    def lane_health(self) -> dict[str, Any]:
        snap = self._fresh()
        alive = self._process is not None and self._process.is_alive()
        lane: dict[str, Any] = dict(snap.get("lane", {}))
        lane["process"] = {"pid": self.pid, "alive": alive, "restarts": self.restarts}
        if not snap:
            lane["process"]["problem"] = "no report from the bulk process for 5 s"
        return lane

    def problems(self) -> dict[str, str]:
        return dict(self._fresh().get("problems", {}))

    def telemetry_health(self) -> dict[str, object]:
        return dict(self._fresh().get("telemetry", {"enabled": None, "problem": "no report"}))

    def counts(self) -> dict[str, int]:
        return dict(self._fresh().get("counts", {}))

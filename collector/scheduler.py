"""A small loop that runs the escalation decisions every ``interval_s``."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from collector.service import Service

log = logging.getLogger("anbu.collector.scheduler")


class Scheduler:
    """Calls :meth:`Service.escalate_due` periodically; deadlines live in the database."""

    def __init__(
        self,
        service: Service,
        *,
        interval_s: float,
        clock: Callable[[], dt.datetime],
        on_notify: Callable[[], None],
        also: Callable[[dt.datetime], object] | None = None,
    ) -> None:
        self.service = service
        self.also = also
        """Run with each tick too (the silence check-ins whose answer window ran out)."""
        self.interval_s = interval_s
        self.clock = clock
        self.on_notify = on_notify
        self.runs = 0
        self.last_run_at: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anbu-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def tick(self) -> int:
        now = self.clock()
        queued = self.service.escalate_due(now)
        if self.also is not None:
            self.also(now)
        self.runs += 1
        self.last_run_at = now
        if queued:
            self.on_notify()
        return queued

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("escalation run failed")

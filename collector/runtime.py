"""Wiring only: settings in, a running collector out (database, ingest, notifier, scheduler)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from collector.domain.silence import LifeSignKind
from collector.domain.silence_checkin import CheckinPolicy
from collector.domain.silence_routine import RoutineSettings
from collector.domain.supervision import SupervisionSettings, facts_of
from collector.ingest import Ingest, utcnow
from collector.notify.base import Notifier
from collector.notify.email import SmtpNotifier
from collector.notify.sms import HttpSmsNotifier
from collector.notify.undelivered import UndeliveredPolicy
from collector.notify.worker import NotificationWorker
from collector.offline_dispatch import StoreOfflineDispatches
from collector.registry import DeviceRegistry, load_all, store_lookup
from collector.retention import RetentionJob, RetentionPolicy
from collector.scheduler import Scheduler
from collector.service import BulkResult, Outcome, build_service, staff_contact
from collector.settings import CollectorSettings
from collector.silence_flow import SilenceFlow, StoreDispatches
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.startup import first_line
from collector.store.db import Database
from collector.supervision_runtime import SupervisionRuntime
from collector.telemetry import (
    HeartbeatPoint,
    NullTelemetrySink,
    TelemetrySink,
    telemetry_from_settings,
)

log = logging.getLogger("anbu.collector")


def notifiers_from_settings(settings: CollectorSettings) -> dict[str, Notifier]:
    """The delivery channels that are configured; an unconfigured one is simply absent."""
    notifiers: dict[str, Notifier] = {}
    if settings.smtp_host:
        notifiers["email"] = SmtpNotifier.from_settings(settings)
    if settings.sms_gateway_url:
        notifiers["sms"] = HttpSmsNotifier.from_settings(settings)
    return notifiers


class Collector:
    """The collector service minus HTTP: ``start()``, ``stop()``, ``health()``."""

    def __init__(
        self,
        settings: CollectorSettings,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        notifiers: dict[str, Notifier] | None = None,
    ) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, pool_size=settings.db_pool_size)
        self.registry = DeviceRegistry(store_lookup(self.db.sessions))
        staff = staff_contact(settings)
        self.service = build_service(settings, self.db, self.registry)
        self.notifiers = notifiers_from_settings(settings) if notifiers is None else notifiers
        self.notifier = NotificationWorker(
            self.db,
            self.notifiers,
            max_attempts=settings.notify_max_attempts,
            clock=clock,
            undelivered=UndeliveredPolicy(
                escalate_after_s=settings.notify_escalate_after_s,
                staff=staff,
                dashboard_url=settings.public_url,
            ),
        )
        # With a bulk process the heartbeats' counters are written from there.
        self.telemetry: TelemetrySink = NullTelemetrySink()
        if not settings.ingest_bulk_process:
            self.telemetry = telemetry_from_settings(settings)
        self.ingest = Ingest(
            settings,
            self.service,
            on_notify=self.notifier.wake,
            after_bulk=self._after_bulk,
            after_event=self._after_event,
            on_checkin_answer=lambda topic, payload, at: self.silence_flow.on_answer(
                topic, payload, at
            ),
            clock=clock,
        )
        # Silent homes (docs/silence.md): life signs from both lanes feed the schedule; a flag
        # asks the home's speaker to check in (over the event connection) or opens a dispatch.
        self.silence_flow = SilenceFlow(
            self.db,
            self.ingest.event_intake,
            policy=CheckinPolicy(
                enabled=settings.silence_checkin,
                answer_window_min=settings.silence_checkin_window_min,
                listen_s=settings.silence_checkin_listen_s,
                repeats=settings.silence_checkin_repeats,
                request_ttl_min=settings.silence_checkin_ttl_min,
                staff=staff,
                dashboard_url=settings.public_url,
            ),
            dispatches=StoreDispatches(
                escalate_after_s=settings.silence_escalate_after_s,
                escalation=self.service.escalation_policy,
                links=self.service.links,
            ),
            on_notify=self.notifier.wake,
        )
        self.silence = SilenceRuntime(
            self.db,
            on_flag=self.silence_flow.on_flag,
            settings=SilenceRuntimeSettings(
                instance_id=settings.mqtt_client_id,
                flush_interval_s=settings.silence_flush_interval_s,
            ),
            routine_settings=RoutineSettings(
                learning_days=settings.silence_learning_days,
                margin_factor=settings.silence_routine_margin_factor,
                margin_h=settings.silence_routine_margin_h,
                by_context=settings.silence_routine_by_context,
            ),
            clock=clock,
        )
        self.silence_flow.on_life_sign = self.silence.on_life_sign
        # Device supervision (technician tickets); a home with no device up tells the silence
        # schedule, which then keeps only the fixed period (docs/silence.md).
        self.supervision = SupervisionRuntime(
            self.db,
            settings=SupervisionSettings(
                heartbeat_interval_s=settings.supervision_heartbeat_interval_s,
                missed_heartbeats=settings.supervision_missed_heartbeats,
                offline_dispatch_after_s=settings.supervision_offline_dispatch_after_s,
            ),
            clock=clock,
            on_offline_changed=self._home_offline_changed,
            dispatches=StoreOfflineDispatches(
                escalation=self.service.escalation_policy,
                links=self.service.links,
                staff=staff,
            ),
            on_notify=self.notifier.wake,
        )
        self._next_supervision_at: dt.datetime | None = None
        self.scheduler = Scheduler(
            self.service,
            interval_s=settings.scheduler_interval_s,
            clock=clock,
            on_notify=self.notifier.wake,
            also=self._periodic,
        )
        self.retention = RetentionJob(
            self.db,
            RetentionPolicy(
                heartbeats_days=settings.heartbeat_retention_days,
                seen_messages_days=settings.seen_message_retention_days,
            ),
            interval_s=settings.retention_interval_s,
            clock=clock,
        )
        self.started_at: dt.datetime | None = None

    def _home_offline_changed(self, household_id: str, offline: bool) -> None:
        if self.settings.silence_enabled:
            self.silence.on_device_state(household_id, online=not offline)

    def _periodic(self, now: dt.datetime) -> None:
        """With each scheduler tick: check-ins whose window ran out; now and then, tickets."""
        if self.settings.silence_enabled:
            self.silence_flow.tick(now)
        if self._next_supervision_at is None or now >= self._next_supervision_at:
            self._next_supervision_at = now + dt.timedelta(
                seconds=self.settings.supervision_interval_s
            )
            self.supervision.tick()

    def _after_bulk(self, result: BulkResult) -> None:
        """After a bulk commit: life signs and device states to the silence schedule and to
        supervision, each heartbeat's counters to the time-series sink (none blocks)."""
        if self.settings.silence_enabled:
            for household, kind, at in result.life_signs:
                self.silence.on_life_sign(household, LifeSignKind(kind), at)
            for household, online in result.states:
                self.silence.on_device_state(household, online=online)
        for address, state, at in result.device_states:
            self.supervision.on_state(address.device, address.household, state, at)
        supervised = result.supervised
        if supervised is None:
            supervised = [(a, at, facts_of(hb)) for a, at, hb in result.heartbeats]
        for address, at, facts in supervised:
            self.supervision.on_heartbeat(address.device, address.household, facts, at)
        if result.heartbeats:
            self.telemetry.submit(
                [
                    HeartbeatPoint.from_heartbeat(a.district, a.household, a.device, at, hb)
                    for a, at, hb in result.heartbeats
                ]
            )

    def _after_event(self, outcome: Outcome) -> None:
        """An SOS or a cancel is the resident pressing or speaking: a life sign."""
        if outcome.household_id and outcome.at and self.settings.silence_enabled:
            self.silence.on_life_sign(outcome.household_id, LifeSignKind.BUTTON, outcome.at)

    def start(self) -> None:
        self.db.create_schema()
        self.ingest.prepare()  # the bulk process starts while the rest is restored
        with self.db.sessions() as session:
            self.registry.replace_all(load_all(session))
        if self.settings.silence_enabled:
            self.silence.restore()
            self.silence.start()
        else:
            log.warning("silence flags are off (ANBU_SILENCE_ENABLED=false)")
        self.supervision.restore()
        self.notifier.start()
        self.scheduler.start()
        self.retention.start()
        self.ingest.start()
        self.started_at = utcnow()
        log.info("collector started", extra={"database": self.db.dialect})

    def stop(self) -> None:
        self.ingest.stop()
        if self.settings.silence_enabled:
            self.silence.stop()
        self.telemetry.close()
        self.scheduler.stop()
        self.retention.stop()
        self.notifier.stop()
        for notifier in self.notifiers.values():
            close = getattr(notifier, "close", None)
            if callable(close):
                close()
        self.db.dispose()
        log.info("collector stopped")

    def _counts(self) -> dict[str, int]:
        """What the service did, by outcome; the bulk process's counts added in."""
        counts = dict(self.service.counts)
        if self.ingest.bulk_process is not None:
            for key, n in self.ingest.bulk_process.counts().items():
                counts[key] = counts.get(key, 0) + n
        return counts

    def health(self) -> dict[str, Any]:
        try:
            database_ok = self.db.ping()
        except Exception as exc:
            log.warning("database ping failed", extra={"error": first_line(exc)})
            database_ok = False
        ingest = self.ingest.health()
        mqtt_ok = bool(ingest["mqtt_connected"])
        try:
            delivery = self.notifier.health()
        except Exception as exc:
            log.warning("notification health failed", extra={"error": str(exc)})
            delivery = {"degraded": True, "error": f"{type(exc).__name__}: {exc}"}
        return {
            "status": "ok" if database_ok and mqtt_ok and not delivery["degraded"] else "degraded",
            "database": database_ok,
            "database_backend": self.db.dialect,
            "mqtt_connected": mqtt_ok,
            "ingest": {
                "received": self.ingest.received,
                "store_failures": self.ingest.store_failures,
                "registered_devices": len(self.registry),
                **self._counts(),
                **ingest,
            },
            "notifications": self.notifier.counts(),
            "telemetry": self.telemetry.health()
            if self.ingest.bulk_process is None
            else self.ingest.bulk_process.telemetry_health(),
            "silence": self.silence.health(),
            "supervision": self.supervision.health(),
            "notification_delivery": delivery,
            "scheduler_runs": self.scheduler.runs,
            "retention": self.retention.health(),
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
        }

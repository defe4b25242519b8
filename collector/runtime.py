"""Wiring only: settings in, a running collector out (database, ingest, notifier, scheduler)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from collector.domain.dispatch import Contact, DispatchPolicy
from collector.domain.escalation import EscalationPolicy
from collector.domain.links import LinkSigner
from collector.domain.silence import LifeSignKind
from collector.escalation_config import load_escalation
from collector.ingest import Ingest, utcnow
from collector.notify.base import Notifier
from collector.notify.email import SmtpNotifier
from collector.notify.sms import HttpSmsNotifier
from collector.notify.undelivered import UndeliveredPolicy
from collector.notify.worker import NotificationWorker
from collector.registry import DeviceRegistry, load_all, store_lookup
from collector.retention import RetentionJob, RetentionPolicy
from collector.scheduler import Scheduler
from collector.service import BulkResult, Outcome, Service
from collector.settings import CollectorSettings
from collector.silence_flow import SilenceFlow, StoreDispatches
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.startup import first_line
from collector.store.db import Database
from collector.telemetry import HeartbeatPoint, TelemetrySink, telemetry_from_settings

log = logging.getLogger("anbu.collector")


def notifiers_from_settings(settings: CollectorSettings) -> dict[str, Notifier]:
    """The delivery channels that are configured; an unconfigured one is simply absent."""
    notifiers: dict[str, Notifier] = {}
    if settings.smtp_host:
        notifiers["email"] = SmtpNotifier.from_settings(settings)
    if settings.sms_gateway_url:
        notifiers["sms"] = HttpSmsNotifier.from_settings(settings)
    return notifiers


def escalation_policy(settings: CollectorSettings, staff: Contact | None) -> EscalationPolicy:
    """The chains of ``ANBU_ESCALATION_FILE``, or the built-in ladder when it is unset."""
    book, calendar = (None, None)
    if settings.escalation_file is not None:
        book, calendar = load_escalation(settings.escalation_file)
    policy = EscalationPolicy(
        repeat_after_s=settings.escalation_repeat_s,
        staff=staff,
        dashboard_url=settings.public_url,
        book=book,
        first_after_s=settings.sos_ack_timeout_s,
    )
    if calendar is not None:
        policy = dataclasses.replace(policy, calendar=calendar)
    return policy


def link_signer(settings: CollectorSettings) -> LinkSigner:
    """The signer of SMS/e-mail links; the pages verify with the same one."""
    return LinkSigner(
        settings.link_secret.encode(), settings.public_url, ttl_s=settings.link_ttl_h * 3600
    )


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
        staff = None
        if settings.staff_email or settings.staff_phone:
            staff = Contact(
                "staff", settings.staff_name, settings.staff_phone, settings.staff_email
            )
        self.service = Service(
            self.db,
            DispatchPolicy(
                ack_timeout_s=settings.sos_ack_timeout_s,
                staff=staff,
                dashboard_url=settings.public_url,
            ),
            escalation_policy(settings, staff),
            registry=self.registry,
            links=link_signer(settings),
        )
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
        self.telemetry: TelemetrySink = telemetry_from_settings(settings)
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
            on_notify=self.notifier.wake,
            dispatches=StoreDispatches(escalation=self.service.escalation_policy),
        )
        self.silence = SilenceRuntime(
            self.db,
            on_flag=self.silence_flow.on_flag,
            settings=SilenceRuntimeSettings(instance_id=settings.mqtt_client_id),
            clock=clock,
        )
        self.silence_flow.on_life_sign = self.silence.on_life_sign
        self.scheduler = Scheduler(
            self.service,
            interval_s=settings.scheduler_interval_s,
            clock=clock,
            on_notify=self.notifier.wake,
            also=self.silence_flow.tick,
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

    def _after_bulk(self, result: BulkResult) -> None:
        """After a bulk commit: life signs and device states to the silence schedule, each
        heartbeat's counters to the time-series sink (neither blocks)."""
        if self.settings.silence_enabled:
            for household, kind, at in result.life_signs:
                self.silence.on_life_sign(household, LifeSignKind(kind), at)
            for household, online in result.states:
                self.silence.on_device_state(household, online=online)
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
        with self.db.sessions() as session:
            self.registry.replace_all(load_all(session))
        if self.settings.silence_enabled:
            self.silence.restore()
            self.silence.start()
        else:
            log.warning("silence flags are off (ANBU_SILENCE_ENABLED=false)")
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
                "store_failures": self.ingest.events.store_failures
                + self.ingest.bulk.store_failures,
                "registered_devices": len(self.registry),
                **self.service.counts,
                **ingest,
            },
            "notifications": self.notifier.counts(),
            "telemetry": self.telemetry.health(),
            "silence": self.silence.health(),
            "notification_delivery": delivery,
            "scheduler_runs": self.scheduler.runs,
            "retention": self.retention.health(),
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
        }

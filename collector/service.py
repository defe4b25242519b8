"""Applies what arrives from devices to the store, using the pure decisions in ``domain/``.

``Service.handle(topic, payload, received_at)`` is the whole ingest path after the broker:

1. parse the topic and validate the payload against the contract;
2. check the device is registered to the household and district the topic names (a device
   cannot speak for another home even if the broker's ACL were wrong);
3. de-duplicate by message id, in the same transaction as the effect, so a redelivered message
   changes nothing (at-least-once delivery, exactly-once effect);
4. apply: heartbeat, state, SOS (dispatch + notifications), cancel, motion.

Anything that fails a check is kept in ``dead_letters`` with the reason; it never stops ingestion.
The return value says what the caller (ingest) must do next: acknowledge an SOS to the device,
wake the notification worker.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.domain.dispatch import (
    Contact,
    DispatchPolicy,
    HouseholdView,
    Message,
    OpenDispatchView,
    decide_cancel,
    decide_sos,
)
from collector.domain.escalation import DispatchState, EscalationPolicy, decide_escalation
from collector.domain.links import LinkSigner, fill_links
from collector.store.db import Database
from collector.store.models import (
    DeadLetter,
    Device,
    Dispatch,
    DispatchReason,
    DispatchStatus,
    EventRecord,
    HeartbeatRecord,
    Household,
    Notification,
    NotificationStatus,
    Priority,
    SeenMessage,
)
from firmware_config import ContractError
from firmware_config.messages import (
    CancelAck,
    CommandMessage,
    Heartbeat,
    MotionEvent,
    SosAck,
    SosCancel,
    SosEvent,
    State,
    decode_device_message,
)
from firmware_config.topics import DeviceAddress, parse

log = logging.getLogger("anbu.collector.service")


@dataclass
class Outcome:
    """What handling one message produced."""

    kind: str
    """heartbeat | state | sos | sos_cancel | motion | duplicate | dead_letter"""
    commands: list[tuple[DeviceAddress, CommandMessage]] = field(default_factory=list)
    notify: bool = False
    dispatch_id: int | None = None
    reason: str | None = None


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def household_view(household: Household) -> HouseholdView:
    """The plain-data view of a household that the pure decisions take."""
    caregiver = None
    if household.caregiver is not None and household.caregiver.active:
        c = household.caregiver
        caregiver = Contact("caregiver", c.name, c.phone, c.email)
    guardian = None
    if household.guardian_phone or household.guardian_email:
        guardian = Contact(
            "guardian",
            household.guardian_name or "보호자",
            household.guardian_phone,
            household.guardian_email,
        )
    return HouseholdView(
        household.id,
        household.district,
        household.resident_name,
        household.address,
        caregiver,
        guardian,
    )


def _open_view(dispatch: Dispatch | None) -> OpenDispatchView | None:
    if dispatch is None:
        return None
    return OpenDispatchView(dispatch.id, dispatch.reason, dispatch.created_at)


def _add_notifications(
    session: Session,
    dispatch_id: int,
    messages: tuple[Message, ...],
    now: dt.datetime,
    links: LinkSigner,
) -> int:
    for m in messages:
        session.add(
            Notification(
                dispatch_id=dispatch_id,
                channel=m.channel,
                purpose=m.purpose,
                recipient_role=m.recipient_role,
                recipient=m.recipient,
                subject=m.subject,
                body=fill_links(m.body, dispatch_id, now=now, signer=links),
                status=NotificationStatus.PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        )
    return len(messages)


class Service:
    """The collector's ingest and escalation logic over one database."""

    def __init__(
        self,
        db: Database,
        dispatch_policy: DispatchPolicy | None = None,
        escalation_policy: EscalationPolicy | None = None,
        links: LinkSigner | None = None,
    ) -> None:
        self.db = db
        self.dispatch_policy = dispatch_policy or DispatchPolicy()
        self.escalation_policy = escalation_policy or EscalationPolicy()
        # Without a configured secret the links still work as links; only the pages verify them.
        self.links = links or LinkSigner(
            secrets.token_bytes(32), self.dispatch_policy.dashboard_url
        )
        self.counts: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    # -- ingest -------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, received_at: dt.datetime) -> Outcome:
        """Handle one MQTT message; never raises for bad input (it is dead-lettered)."""
        try:
            outcome = self._handle(topic, payload, received_at)
        except ContractError as exc:
            outcome = self.dead_letter(topic, payload, str(exc), received_at)
        self._count(outcome.kind)
        return outcome

    def dead_letter(
        self, topic: str, payload: bytes, reason: str, received_at: dt.datetime
    ) -> Outcome:
        log.warning("dead letter", extra={"topic": topic[:200], "reason": reason})
        with self.db.session() as session:
            session.add(
                DeadLetter(
                    topic=topic[:512],
                    payload=payload[:8192],
                    reason=reason,
                    received_at=received_at,
                )
            )
        return Outcome("dead_letter", reason=reason)

    def _handle(self, topic: str, payload: bytes, now: dt.datetime) -> Outcome:
        parsed = parse(topic)
        if parsed.channel is None:
            raise ContractError(f"topic {topic!r} is a command topic; devices do not send those")
        message = decode_device_message(parsed.channel, payload)
        address = parsed.address
        with self.db.session() as session:
            device = session.get(Device, address.device)
            if device is None:
                raise ContractError(f"device {address.device!r} is not registered")
            household = device.household
            if household.id != address.household or household.district != address.district:
                raise ContractError(
                    f"device {device.id!r} belongs to {household.district}/{household.id}, "
                    f"not {address.district}/{address.household} (spoofed topic?)"
                )
            if isinstance(message, State):
                # Applied in arrival order: the last will carries the timestamp of the
                # connection it was registered with, so device timestamps would mislead here.
                device.online = message.state == "online"
                device.state_changed_at = now
                if message.agent_version:
                    device.agent_version = message.agent_version
                return Outcome("state")
            try:
                with session.begin_nested():
                    session.add(
                        SeenMessage(
                            message_id=message.message_id, device_id=device.id, received_at=now
                        )
                    )
            except IntegrityError:
                return self._duplicate(session, message, address, now)
            device.last_seen_at = now
            device.last_seq = max(device.last_seq, message.seq)
            if isinstance(message, Heartbeat):
                return self._heartbeat(session, device, message, now)
            if isinstance(message, SosEvent):
                return self._sos(session, device, household, message, address, now)
            if isinstance(message, SosCancel):
                return self._cancel(session, device, household, message, address, now)
            assert isinstance(message, MotionEvent)  # noqa: S101 - exhaustive over the contract
            session.add(self._event(device, household, "motion", message, now))
            device.last_life_sign_at = now
            return Outcome("motion")

    def _duplicate(
        self, session: Session, message: object, address: DeviceAddress, now: dt.datetime
    ) -> Outcome:
        # The device may not have heard our acknowledgement: say it again (idempotent on its side).
        outcome = Outcome("duplicate")
        if isinstance(message, SosEvent):
            dispatch = session.scalar(
                select(Dispatch).where(Dispatch.sos_message_id == message.message_id)
            )
            if dispatch is not None:
                outcome.commands.append(
                    (
                        address,
                        SosAck(
                            device_ts=now.timestamp(),
                            seq=0,
                            sos_id=message.message_id,
                            dispatch_id=dispatch.id,
                        ),
                    )
                )
        return outcome

    @staticmethod
    def _event(
        device: Device,
        household: Household,
        kind: str,
        message: SosEvent | SosCancel | MotionEvent,
        now: dt.datetime,
    ) -> EventRecord:
        return EventRecord(
            message_id=message.message_id,
            device_id=device.id,
            household_id=household.id,
            kind=kind,
            source=getattr(message, "source", None),
            phrase=getattr(message, "phrase", None),
            sos_id=getattr(message, "sos_id", None),
            device_ts=_utc(message.device_ts),
            received_at=now,
        )

    def _heartbeat(
        self, session: Session, device: Device, hb: Heartbeat, now: dt.datetime
    ) -> Outcome:
        session.add(
            HeartbeatRecord(
                message_id=hb.message_id,
                device_id=device.id,
                device_ts=_utc(hb.device_ts),
                received_at=now,
                seq=hb.seq,
                motion_count=hb.motion_count,
                speech_s=hb.speech_s,
                wake_word_count=hb.wake_word_count,
                interactions=hb.interactions,
                button_presses=hb.button_presses,
                uptime_s=hb.uptime_s,
                audio_overruns=hb.audio_overruns,
                outbox_depth=hb.outbox_depth,
            )
        )
        device.last_heartbeat_at = now
        device.agent_version = hb.agent_version
        device.last_outbox_depth = hb.outbox_depth
        if hb.motion_count or hb.speech_s > 0 or hb.interactions or hb.button_presses:
            device.last_life_sign_at = now
        return Outcome("heartbeat")

    def _open_sos(self, session: Session, household_id: str) -> Dispatch | None:
        return session.scalar(
            select(Dispatch)
            .where(
                Dispatch.household_id == household_id,
                Dispatch.reason == DispatchReason.SOS,
                Dispatch.status != DispatchStatus.RESOLVED,
            )
            .order_by(Dispatch.id.desc())
            .limit(1)
        )

    def _sos(
        self,
        session: Session,
        device: Device,
        household: Household,
        sos: SosEvent,
        address: DeviceAddress,
        now: dt.datetime,
    ) -> Outcome:
        session.add(self._event(device, household, "sos", sos, now))
        device.last_life_sign_at = now
        existing = self._open_sos(session, household.id)
        decision = decide_sos(
            household_view(household),
            _open_view(existing),
            source=sos.source,
            phrase=sos.phrase,
            message_id=sos.message_id,
            now=now,
            policy=self.dispatch_policy,
        )
        if decision.open_new:
            dispatch = Dispatch(
                household_id=household.id,
                caregiver_id=household.caregiver_id,
                reason=DispatchReason.SOS,
                priority=Priority.URGENT,
                status=DispatchStatus.OPEN,
                sos_message_id=sos.message_id,
                created_at=now,
                escalation_level=0,
                next_escalation_at=decision.escalate_at,
            )
            session.add(dispatch)
            session.flush()
            dispatch_id = dispatch.id
        else:
            assert decision.existing_dispatch_id is not None  # noqa: S101
            dispatch_id = decision.existing_dispatch_id
        _add_notifications(session, dispatch_id, decision.messages, now, self.links)
        log.info(
            "sos",
            extra={
                "household": household.id,
                "device": device.id,
                "dispatch": dispatch_id,
                "new_dispatch": decision.open_new,
                "source": sos.source,
            },
        )
        ack = SosAck(
            device_ts=now.timestamp(), seq=0, sos_id=sos.message_id, dispatch_id=dispatch_id
        )
        return Outcome(
            "sos", [(address, ack)], notify=bool(decision.messages), dispatch_id=dispatch_id
        )

    def _cancel(
        self,
        session: Session,
        device: Device,
        household: Household,
        cancel: SosCancel,
        address: DeviceAddress,
        now: dt.datetime,
    ) -> Outcome:
        session.add(self._event(device, household, "sos_cancel", cancel, now))
        device.last_life_sign_at = now
        dispatch = session.scalar(select(Dispatch).where(Dispatch.sos_message_id == cancel.sos_id))
        if dispatch is None:
            # The SOS itself may still be on its way (it is older, but a cancel can overtake it
            # on another collector); the repeated-SOS rule still catches an open dispatch.
            dispatch = self._open_sos(session, household.id)
        decision = decide_cancel(
            household_view(household),
            _open_view(dispatch),
            source=cancel.source,
            now=now,
            policy=self.dispatch_policy,
        )
        if dispatch is not None and decision.dispatch_id is not None:
            dispatch.cancelled_by_resident_at = dispatch.cancelled_by_resident_at or now
            _add_notifications(session, dispatch.id, decision.messages, now, self.links)
        ack = CancelAck(
            device_ts=now.timestamp(),
            seq=0,
            sos_id=cancel.sos_id,
            dispatch_id=None if dispatch is None else dispatch.id,
        )
        return Outcome(
            "sos_cancel",
            [(address, ack)],
            notify=bool(decision.messages),
            dispatch_id=None if dispatch is None else dispatch.id,
        )

    # -- escalation ---------------------------------------------------------------------

    def escalate_due(self, now: dt.datetime) -> int:
        """Apply every escalation due at ``now``; returns how many notifications were queued."""
        queued = 0
        with self.db.session() as session:
            due = session.scalars(
                select(Dispatch)
                .where(Dispatch.status == DispatchStatus.OPEN, Dispatch.next_escalation_at <= now)
                .order_by(Dispatch.next_escalation_at)
                .limit(100)
            ).all()
            for dispatch in due:
                state = DispatchState(
                    dispatch.id,
                    dispatch.status.value,
                    dispatch.escalation_level,
                    dispatch.next_escalation_at,
                    dispatch.created_at,
                )
                step = decide_escalation(
                    state,
                    household_view(dispatch.household),
                    now=now,
                    policy=self.escalation_policy,
                )
                # Conditional on what was read: an acknowledgement that lands meanwhile wins.
                claim = (
                    update(Dispatch)
                    .where(
                        Dispatch.id == dispatch.id,
                        Dispatch.status == DispatchStatus.OPEN,
                        Dispatch.escalation_level == dispatch.escalation_level,
                    )
                    .values(
                        escalation_level=dispatch.escalation_level
                        if step is None
                        else step.new_level,
                        next_escalation_at=None if step is None else step.next_due_at,
                    )
                    .execution_options(synchronize_session=False)
                )
                if session.execute(claim).rowcount != 1 or step is None:  # type: ignore[attr-defined]
                    continue
                queued += _add_notifications(session, dispatch.id, step.messages, now, self.links)
                log.warning("escalated", extra={"dispatch": dispatch.id, "level": step.new_level})
        return queued

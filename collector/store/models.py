"""Database tables: the collector's memory that survives restarts.

One schema for SQLite (default, demo, tests) and PostgreSQL (production). Times are stored as
timezone-aware UTC; ids that come from the field (household, device, message) are strings, ids the
collector makes (dispatch, notification) are integers.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way out, whatever the backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class RiskLevel(enum.StrEnum):
    """Seodaemun's welfare-map colours."""

    RED = "red"
    ORANGE = "orange"
    BLUE = "blue"


class DispatchStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    RESOLVED = "resolved"


class DispatchReason(enum.StrEnum):
    """The kind of a dispatch; each kind has its escalation chain (domain/escalation.py)."""

    SOS = "sos"
    SILENCE = "silence"
    DEVICE_OFFLINE = "device_offline"
    REQUEST = "request"
    """A resident or guardian asked for a call (voice or SMS): answered within a working day."""


class Priority(enum.StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    """Claimed by a notification worker; ``next_attempt_at`` is then the end of its lease."""
    SENT = "sent"
    FAILED = "failed"


def _enum(e: type[enum.StrEnum]) -> Enum:
    return Enum(e, native_enum=False, values_callable=lambda cls: [m.value for m in cls], length=16)


class Caregiver(Base):
    """A visiting caregiver (생활지원사), about one per 100 households."""

    __tablename__ = "caregivers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(254))
    district: Mapped[str] = mapped_column(String(64), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    backup_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"), nullable=True)
    """The caregiver who stands in when this one does not answer (escalation chains)."""

    households: Mapped[list[Household]] = relationship(back_populates="caregiver")
    backup: Mapped[Caregiver | None] = relationship(remote_side="Caregiver.id")


class Household(Base):
    """One resident living alone, and who to call for them."""

    __tablename__ = "households"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    district: Mapped[str] = mapped_column(String(64), index=True)
    resident_name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(300), default="")
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    guardian_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    guardian_phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    guardian_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    guardian_opt_in: Mapped[bool] = mapped_column(default=False, server_default="0")
    """The resident agreed that the guardian is told of alarms (as Gangseo asks); without it the
    guardian is never messaged, whatever contact is recorded."""
    silence_period_h: Mapped[float] = mapped_column(Float, default=48.0)
    risk_level: Mapped[RiskLevel] = mapped_column(_enum(RiskLevel), default=RiskLevel.BLUE)
    caregiver_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"), nullable=True)
    caregiver_pinned: Mapped[bool] = mapped_column(default=False, server_default="0")
    """A supervisor chose this caregiver: geographic reassignment leaves the household alone."""
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    caregiver: Mapped[Caregiver | None] = relationship(back_populates="households")
    devices: Mapped[list[Device]] = relationship(back_populates="household")

    # The API lists a district's households by id; assignment counts them by caregiver.
    __table_args__ = (
        Index("ix_households_district_id", "district", "id"),
        Index("ix_households_caregiver_id", "caregiver_id"),
    )


class Device(Base):
    """An edge agent; ``online`` follows its retained state and last will."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"), index=True)
    online: Mapped[bool] = mapped_column(default=False)
    state_changed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_life_sign_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    agent_version: Mapped[str] = mapped_column(String(32), default="")
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_outbox_depth: Mapped[int] = mapped_column(Integer, default=0)
    last_audio_overruns: Mapped[int] = mapped_column(Integer, default=0)
    clock_offset_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Device clock minus receive time in its latest message; large values were overruled."""

    household: Mapped[Household] = relationship(back_populates="devices")


class SeenMessage(Base):
    """Message ids already handled: at-least-once delivery, exactly-once effect."""

    __tablename__ = "seen_messages"

    message_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    # Retention prunes the oldest (collector/retention.py).
    __table_args__ = (Index("ix_seen_messages_received_at", "received_at"),)


class HeartbeatRecord(Base):
    __tablename__ = "heartbeats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    device_ts: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    seq: Mapped[int] = mapped_column(Integer)
    motion_count: Mapped[int] = mapped_column(Integer)
    speech_s: Mapped[float] = mapped_column(Float)
    wake_word_count: Mapped[int] = mapped_column(Integer)
    interactions: Mapped[int] = mapped_column(Integer)
    button_presses: Mapped[int] = mapped_column(Integer)
    uptime_s: Mapped[float] = mapped_column(Float)
    audio_overruns: Mapped[int] = mapped_column(Integer)
    outbox_depth: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_heartbeats_device_ts", "device_id", "device_ts"),
        # Retention prunes the oldest (collector/retention.py).
        Index("ix_heartbeats_received_at", "received_at"),
    )


class DeviceDay(Base):
    """A device's heartbeat counters summed per Korean calendar day: what staff reports read.

    Each heartbeat's own counters go to the time-series database; the SQL store keeps this
    rollup (written by the ingest for every batch, and by retention for legacy heartbeat rows
    before it prunes them) and each device's latest state. ``last_seq`` makes a redelivered batch
    count once.
    """

    __tablename__ = "device_days"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    heartbeats: Mapped[int] = mapped_column(Integer)
    motion_count: Mapped[int] = mapped_column(BigInteger)
    speech_s: Mapped[float] = mapped_column(Float)
    wake_word_count: Mapped[int] = mapped_column(BigInteger)
    interactions: Mapped[int] = mapped_column(BigInteger)
    button_presses: Mapped[int] = mapped_column(BigInteger)
    audio_overruns: Mapped[int] = mapped_column(BigInteger, server_default="0")
    max_outbox_depth: Mapped[int] = mapped_column(Integer, server_default="0")
    last_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")


class EventRecord(Base):
    """SOS, cancel and motion events as the device sent them."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    phrase: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sos_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    dispatch_id: Mapped[int | None] = mapped_column(ForeignKey("dispatches.id"), nullable=True)
    """The dispatch an SOS opened or joined, or a cancel marked."""
    device_ts: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Dispatch(Base):
    """A caregiver sent to a household: open -> acknowledged -> resolved (with an outcome)."""

    __tablename__ = "dispatches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"), index=True)
    caregiver_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"), nullable=True)
    reason: Mapped[DispatchReason] = mapped_column(_enum(DispatchReason))
    priority: Mapped[Priority] = mapped_column(_enum(Priority))
    status: Mapped[DispatchStatus] = mapped_column(_enum(DispatchStatus), index=True)
    # The SOS message that opened it; unique so a redelivered SOS cannot open a second dispatch.
    sos_message_id: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancelled_by_resident_at: Mapped[dt.datetime | None] = mapped_column(
        UtcDateTime(), nullable=True
    )
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    household: Mapped[Household] = relationship()
    caregiver: Mapped[Caregiver | None] = relationship()
    notifications: Mapped[list[Notification]] = relationship(back_populates="dispatch")

    # The API lists newest first, with or without a status or household filter.
    __table_args__ = (
        Index("ix_dispatches_created_at_id", "created_at", "id"),
        Index("ix_dispatches_status_created_at_id", "status", "created_at", "id"),
        Index("ix_dispatches_household_created_at_id", "household_id", "created_at", "id"),
    )


class Notification(Base):
    """One message to one person on one channel; delivered by a worker, retried, recorded."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispatch_id: Mapped[int | None] = mapped_column(
        ForeignKey("dispatches.id"), index=True, nullable=True
    )
    """The dispatch it is about; None for the one kind that has none (``service_request_id``)."""
    service_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_requests.id"), nullable=True
    )
    """A text from an unknown number left unanswered past its working day (no dispatch)."""
    channel: Mapped[str] = mapped_column(String(8))  # "email" | "sms"
    purpose: Mapped[str] = mapped_column(String(32))  # "sos" | "cancel" | "escalation-1" ...
    recipient_role: Mapped[str] = mapped_column(String(16))  # "caregiver" | "guardian" | "staff"
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[NotificationStatus] = mapped_column(_enum(NotificationStatus), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    dispatch: Mapped[Dispatch | None] = relationship(back_populates="notifications")

    __table_args__ = (UniqueConstraint("dispatch_id", "channel", "recipient", "purpose"),)


class DeadLetter(Base):
    """A message that could not be handled, kept with the reason; ingestion goes on."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    details: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)

    # The API lists newest first.
    __table_args__ = (Index("ix_dead_letters_received_at_id", "received_at", "id"),)


class ServiceRequest(Base):
    """A non-urgent request for a call (by voice on the device, or by SMS to the district)."""

    __tablename__ = "service_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    """The device message id, or the SMS gateway's message id: a redelivery is ignored."""
    channel: Mapped[str] = mapped_column(String(8))  # "voice" | "sms"
    household_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    """None when an SMS came from a number no household has: kept for staff to match."""
    district: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str | None] = mapped_column(String(32), nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    """Answer by then (one working day); the dispatch escalates when it passes."""
    routed_to: Mapped[str] = mapped_column(String(16))  # "caregiver" | "department"
    dispatch_id: Mapped[int | None] = mapped_column(ForeignKey("dispatches.id"), nullable=True)
    handled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """A text from an unknown number: when a supervisor assigned it to a household or marked
    it handled (the requests page); None while it waits."""
    handled_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    handled_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """A text from an unknown number still waiting when its working day passed: when the
    district's supervisor was told (once)."""


# Tables that live in modules of their own (accounts, sessions, audit log and dispatch steps; data
# requests; silence and tickets): importing them here registers them with Base, so that
# create_schema() and the migrations see every table.
from collector.store import accounts as _accounts  # noqa: E402, F401
from collector.store import audit as _audit  # noqa: E402, F401
from collector.store import silence as _silence  # noqa: E402, F401

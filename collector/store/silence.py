"""Tables for silence: each home's schedule row, the flags raised, and technician tickets.

Kept apart from ``models.py`` (no foreign keys into its tables) so the ingest's own tables can
change without touching these. Registered on the same ``Base``, so ``Database.create_schema()``
makes them once this module is imported (``collector.silence_runtime`` does).

Exactly-once across several collectors: a flag row is unique per (household, start of the
quiet stretch, limit), so when two collectors reach the same deadline only the first insert
wins and only that collector acts on it. (One stretch can carry a routine flag and later a
period flag: a home whose routine flag was raised before its device was found offline is
flagged again when the fixed period runs out.) A ticket is unique per (device, kind) while open.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from collector.store.models import Base, UtcDateTime


class HouseholdSilence(Base):
    """What the silence schedule needs to rebuild a home's deadline after a restart."""

    __tablename__ = "household_silence"

    household_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_life_sign_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    period_h: Mapped[float] = mapped_column(Float)
    routine: Mapped[str | None] = mapped_column(Text, nullable=True)
    """``Routine.to_json()``; None while the home is still learning."""
    observations: Mapped[str | None] = mapped_column(Text, nullable=True)
    """What the learner has seen so far (``RoutineObservations`` as JSON)."""
    routine_learned_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    flagged_for: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """``last_life_sign_at`` of the stretch already flagged (so it is not flagged again)."""
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class SilenceFlagRow(Base):
    """A home flagged as silent, and what became of it (check-in, close, dispatch)."""

    __tablename__ = "silence_flags"
    __table_args__ = (
        UniqueConstraint(
            "household_id", "stretch_started_at", "limit", name="uq_silence_flag_stretch"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[str] = mapped_column(String(64), index=True)
    stretch_started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    """The last life sign before the silence."""
    last_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    limit: Mapped[str] = mapped_column(String(16))  # SilenceLimit value
    limit_h: Mapped[float] = mapped_column(Float)
    period_h: Mapped[float] = mapped_column(Float)
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    raised_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    raised_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    """open → checkin → closed | dispatched; or open → dispatched; or open → closed."""
    checkin_id: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    checkin_due_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    record: Mapped[str | None] = mapped_column(Text, nullable=True)
    dispatch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TechnicianTicket(Base):
    """A device that needs a technician: offline, dropping audio, stuck outbox, deaf mic."""

    __tablename__ = "technician_tickets"
    __table_args__ = (
        Index(
            "uq_ticket_open",
            "device_id",
            "kind",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    household_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))  # TicketKind value
    detail: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    close_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    dispatch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The ``device_offline`` dispatch this outage opened (``offline`` tickets only): set once,
    by a conditional UPDATE, so each outage is dispatched once."""

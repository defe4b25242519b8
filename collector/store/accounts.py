"""Tables for people who log in: accounts with roles, server-side sessions, the audit log, each
dispatch's step history and the caregivers' needs notes on households.

Imported by :mod:`collector.store.models` so ``create_schema()`` makes them with the rest. The audit
log is append-only in the database itself: a trigger refuses UPDATE and DELETE on SQLite and
PostgreSQL alike, so not even a bug in the collector can rewrite who looked at a resident's record.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from collector.store.models import Base, UtcDateTime, _enum


class Role(enum.StrEnum):
    """What an account may see and do."""

    ADMIN = "admin"
    """Everything, every district."""
    SUPERVISOR = "supervisor"
    """A district's welfare supervisor: every household and dispatch of that district, the map,
    the audit log."""
    CAREGIVER = "caregiver"
    """A visiting caregiver: only the households assigned to their caregiver record."""
    TECHNICIAN = "technician"
    """Installs and repairs devices: the API docs, no resident records."""


class Account(Base):
    """A person who logs in to the pages. Machine clients use the API token instead."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role))
    district: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The supervisor's (and caregiver's) district; None for an admin."""
    caregiver_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"), nullable=True)
    """For a caregiver account: the caregiver record whose households it sees."""
    language: Mapped[str] = mapped_column(String(8), default="ko")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class WebSession(Base):
    """A logged-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)


class AuditEntry(Base):
    """Who viewed which resident's record, who changed which dispatch: append-only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(100))
    """The account's username, or ``api-token`` for a machine client."""
    action: Mapped[str] = mapped_column(String(32))
    """view_household | view_dispatch | acknowledge | on_site | resolve | note | login | ..."""
    district: Mapped[str | None] = mapped_column(String(64), nullable=True)
    household_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dispatch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_audit_district_at", "district", "at"),)


class DispatchStep(Base):
    """One thing a person did to a dispatch (acknowledge, on site, resolve, note), with its time."""

    __tablename__ = "dispatch_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispatch_id: Mapped[int] = mapped_column(ForeignKey("dispatches.id"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    by: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class HouseholdNote(Base):
    """A caregiver's note on a household's needs (medicines, mobility, who has a key...)."""

    __tablename__ = "household_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    by: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)


_SQLITE_GUARDS = [
    (
        f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    )
    for verb in ("UPDATE", "DELETE")
]
_POSTGRES_GUARDS = [
    (
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$ LANGUAGE plpgsql"
    ),
    (
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    ),
]


def append_only_guards(dialect: str) -> list[str]:
    """The statements that make ``audit_log`` refuse UPDATE and DELETE on ``dialect``."""
    return list(_SQLITE_GUARDS if dialect == "sqlite" else _POSTGRES_GUARDS)


def _guard(target: Any, connection: Any, **_kw: Any) -> None:
    for statement in append_only_guards(connection.dialect.name):
        connection.exec_driver_sql(statement)


event.listen(AuditEntry.__table__, "after_create", _guard)

"""The ingest lanes (device latest state, rollup sequence, events linked to their dispatch),
the caregiver and staff pages (accounts, sessions, the append-only audit log, dispatch steps,
household notes), silent homes (periods, flags, technician tickets) and data requests.

Revision ID: 0004_merged_features
Revises: 0003_retention
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from collector.store.accounts import append_only_guards

revision = "0004_merged_features"
down_revision: str | None = "0003_retention"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("district", sa.String(length=64), nullable=True),
        sa.Column("household_id", sa.String(length=64), nullable=True),
        sa.Column("dispatch_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_district_at", ["district", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
    # the audit log refuses UPDATE and DELETE, as create_schema() makes it
    for statement in append_only_guards(op.get_bind().dialect.name):
        op.execute(statement)

    op.create_table(
        "data_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("data_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_requests_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_data_requests_household_id"), ["household_id"], unique=False
        )

    op.create_table(
        "household_silence",
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("last_life_sign_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_kind", sa.String(length=16), nullable=True),
        sa.Column("period_h", sa.Float(), nullable=False),
        sa.Column("routine", sa.Text(), nullable=True),
        sa.Column("observations", sa.Text(), nullable=True),
        sa.Column("routine_learned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flagged_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("household_id"),
    )
    op.create_table(
        "silence_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("stretch_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_kind", sa.String(length=16), nullable=True),
        sa.Column("limit", sa.String(length=16), nullable=False),
        sa.Column("limit_h", sa.Float(), nullable=False),
        sa.Column("period_h", sa.Float(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_by", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checkin_id", sa.String(length=32), nullable=True),
        sa.Column("checkin_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("dispatch_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("checkin_id"),
        sa.UniqueConstraint(
            "household_id", "stretch_started_at", "limit", name="uq_silence_flag_stretch"
        ),
    )
    with op.batch_alter_table("silence_flags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_silence_flags_household_id"), ["household_id"], unique=False
        )

    op.create_table(
        "technician_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("technician_tickets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_technician_tickets_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(
            "uq_ticket_open",
            ["device_id", "kind"],
            unique=True,
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "supervisor",
                "caregiver",
                "technician",
                name="role",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("district", sa.String(length=64), nullable=True),
        sa.Column("caregiver_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["caregiver_id"],
            ["caregivers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "household_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("household_notes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_household_notes_household_id"), ["household_id"], unique=False
        )

    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_web_sessions_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "dispatch_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispatch_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dispatch_id"],
            ["dispatches.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dispatch_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dispatch_steps_dispatch_id"), ["dispatch_id"], unique=False
        )

    with op.batch_alter_table("device_days", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_outbox_depth", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_audio_overruns", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("clock_offset_s", sa.Float(), nullable=True))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatch_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_events_sos_id"), ["sos_id"], unique=False)
        batch_op.create_foreign_key("fk_events_dispatch_id", "dispatches", ["dispatch_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint("fk_events_dispatch_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_events_sos_id"))
        batch_op.drop_column("dispatch_id")

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("clock_offset_s")
        batch_op.drop_column("last_audio_overruns")

    with op.batch_alter_table("device_days", schema=None) as batch_op:
        batch_op.drop_column("last_seq")
        batch_op.drop_column("max_outbox_depth")

    with op.batch_alter_table("dispatch_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_steps_dispatch_id"))

    op.drop_table("dispatch_steps")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_account_id"))

    op.drop_table("web_sessions")
    with op.batch_alter_table("household_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_household_notes_household_id"))

    op.drop_table("household_notes")
    op.drop_table("accounts")
    with op.batch_alter_table("technician_tickets", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_ticket_open",
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_technician_tickets_device_id"))

    op.drop_table("technician_tickets")
    with op.batch_alter_table("silence_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_silence_flags_household_id"))

    op.drop_table("silence_flags")
    op.drop_table("household_silence")
    with op.batch_alter_table("data_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_requests_household_id"))
        batch_op.drop_index(batch_op.f("ix_data_requests_at"))

    op.drop_table("data_requests")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
        batch_op.drop_index("ix_audit_district_at")

    op.drop_table("audit_log")

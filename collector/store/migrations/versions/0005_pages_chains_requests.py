"""Escalation chains and requests: each caregiver's backup, a supervisor's pinned assignment,
and the non-urgent requests (voice and SMS) with their answer deadline.

Revision ID: 0005_pages_chains_requests
Revises: 0004_merged_features
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_pages_chains_requests"
down_revision: str | None = "0004_merged_features"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("caregivers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backup_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_caregivers_backup_id", "caregivers", ["backup_id"], ["id"])
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("caregiver_pinned", sa.Boolean(), nullable=False, server_default="0")
        )
    op.create_table(
        "service_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=True),
        sa.Column("district", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("routed_to", sa.String(length=16), nullable=False),
        sa.Column("dispatch_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["dispatch_id"], ["dispatches.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("service_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_service_requests_household_id"), ["household_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("service_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_requests_household_id"))
    op.drop_table("service_requests")
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_column("caregiver_pinned")
    with op.batch_alter_table("caregivers", schema=None) as batch_op:
        batch_op.drop_constraint("fk_caregivers_backup_id", type_="foreignkey")
        batch_op.drop_column("backup_id")

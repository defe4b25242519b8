"""Retention: indexes to find the oldest heartbeats and seen message ids; daily device rollups.

Revision ID: 0003_retention
Revises: 0002_list_indexes
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_retention"
down_revision: str | None = "0002_list_indexes"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_heartbeats_received_at", "heartbeats", ["received_at"])
    op.create_index("ix_seen_messages_received_at", "seen_messages", ["received_at"])
    op.create_table(
        "device_days",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("heartbeats", sa.Integer(), nullable=False),
        sa.Column("motion_count", sa.BigInteger(), nullable=False),
        sa.Column("speech_s", sa.Float(), nullable=False),
        sa.Column("wake_word_count", sa.BigInteger(), nullable=False),
        sa.Column("interactions", sa.BigInteger(), nullable=False),
        sa.Column("button_presses", sa.BigInteger(), nullable=False),
        sa.Column("audio_overruns", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("device_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("device_days")
    op.drop_index("ix_seen_messages_received_at", table_name="seen_messages")
    op.drop_index("ix_heartbeats_received_at", table_name="heartbeats")

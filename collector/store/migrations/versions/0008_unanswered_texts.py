"""Texts from unknown numbers escalate when their working day passes unanswered: when the
supervisor was told (``service_requests.escalated_at``), and notifications that belong to such a
text instead of a dispatch (``notifications.service_request_id``, ``dispatch_id`` nullable).

Revision ID: 0008_unanswered_texts
Revises: 0007_guardian_consent
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_unanswered_texts"
down_revision: str | None = "0007_guardian_consent"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("service_request_id", sa.Integer(), nullable=True))
        batch_op.alter_column("dispatch_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(
            "fk_notifications_service_request_id",
            "service_requests",
            ["service_request_id"],
            ["id"],
        )


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE dispatch_id IS NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint("fk_notifications_service_request_id", type_="foreignkey")
        batch_op.alter_column("dispatch_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("service_request_id")
    with op.batch_alter_table("service_requests", schema=None) as batch_op:
        batch_op.drop_column("escalated_at")

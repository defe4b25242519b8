"""Device-offline dispatches and unmatched texts: the dispatch an outage opened, on its tickets;
who handled a text from an unknown number, and when.

Revision ID: 0006_offline_dispatch_texts
Revises: 0005_pages_chains_requests
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_offline_dispatch_texts"
down_revision: str | None = "0005_pages_chains_requests"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("technician_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatch_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("service_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("handled_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("handled_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_requests", schema=None) as batch_op:
        batch_op.drop_column("handled_note")
        batch_op.drop_column("handled_by")
        batch_op.drop_column("handled_at")
    with op.batch_alter_table("technician_tickets", schema=None) as batch_op:
        batch_op.drop_column("dispatch_id")

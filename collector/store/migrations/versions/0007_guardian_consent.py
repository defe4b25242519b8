"""Guardians told only with the resident's consent (``households.guardian_opt_in``, no for every
home until recorded), and no acknowledgement on dispatches the collector resolved by itself.

Revision ID: 0007_guardian_consent
Revises: 0006_offline_dispatch_texts
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_guardian_consent"
down_revision: str | None = "0006_offline_dispatch_texts"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("guardian_opt_in", sa.Boolean(), nullable=False, server_default="0")
        )
    # A device-offline dispatch resolved when the device came back was written as acknowledged
    # by "anbu" at that moment; nobody acknowledged it, and the reports counted it.
    op.execute(
        "UPDATE dispatches SET acknowledged_at = NULL, acknowledged_by = NULL "
        "WHERE acknowledged_by = 'anbu' AND outcome = 'device_problem' "
        "AND acknowledged_at = resolved_at"
    )


def downgrade() -> None:
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_column("guardian_opt_in")

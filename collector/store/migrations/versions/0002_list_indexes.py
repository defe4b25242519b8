"""An index for every API list's sort order, and for counting households by caregiver.

Revision ID: 0002_list_indexes
Revises: 0001_baseline
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002_list_indexes"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None

INDEXES = (
    ("ix_dispatches_created_at_id", "dispatches", ["created_at", "id"]),
    ("ix_dispatches_status_created_at_id", "dispatches", ["status", "created_at", "id"]),
    ("ix_dispatches_household_created_at_id", "dispatches", ["household_id", "created_at", "id"]),
    ("ix_households_district_id", "households", ["district", "id"]),
    ("ix_households_caregiver_id", "households", ["caregiver_id"]),
    ("ix_dead_letters_received_at_id", "dead_letters", ["received_at", "id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)

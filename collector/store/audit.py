"""Data requests: who exported or deleted a resident's data, and when. Personal data never goes in.

Each request is also written to the general audit log (``audit_log``, ``collector/store/accounts``)
that supervisors read; this table keeps the request's counts for the API's ``/audit`` listing.

The table registers itself on the shared metadata; ``collector/store/db.py`` imports this module so
``create_schema`` makes it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from collector.store.models import Base, UtcDateTime


class AuditRecord(Base):
    """One recorded action on a resident's data."""

    __tablename__ = "data_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(32))  # "export" | "delete"
    household_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    """Counts only (rows exported or deleted per table), never names, addresses or texts."""

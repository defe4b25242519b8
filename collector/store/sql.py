"""Statements both backends run alike: ``INSERT … ON CONFLICT`` in each dialect's own words."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, table: Table) -> Any:
    """An ``INSERT`` for ``table`` that knows ``on_conflict_do_nothing/do_update`` on this backend.

    Typed ``Any`` because the two dialects' insert classes share that API but no base class.
    """
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def table_of(model: type[Any]) -> Table:
    """The Core table behind a mapped class (typed, for set-based statements)."""
    return cast(Table, model.__table__)

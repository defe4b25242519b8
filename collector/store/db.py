"""Engine and sessions for SQLite (default) or PostgreSQL (production), chosen by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from collector.store.changes import TableChanges


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


DEFAULT_POOL_SIZE = 20
"""Connections kept open: the API's session slots plus ingest, notifications and escalation."""
DEFAULT_POOL_TIMEOUT_S = 5.0
"""How long a caller waits for a free connection before ``sqlalchemy.exc.TimeoutError``."""


class Database:
    """One engine and session factory; ``create_schema()`` creates or migrates the schema.

    URLs: ``sqlite:///path/anbu.sqlite3`` or ``postgresql+psycopg://user@host:port/db``.
    The pool holds ``pool_size`` connections and never more (no overflow): the HTTP API takes
    at most ``api_db_sessions`` of them (see ``collector.api.deps``), so a burst of requests
    cannot starve ingest, and nothing waits longer than ``pool_timeout_s`` for a connection.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = DEFAULT_POOL_SIZE,
        pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size={pool_size} must be at least 1")
        self.url = url
        self.pool_size = pool_size
        kwargs: dict[str, Any] = {"echo": echo}
        if not url.startswith("sqlite:///:memory:") and url not in ("sqlite://", "sqlite:///"):
            kwargs |= {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": pool_timeout_s}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.changes = TableChanges()
        """Which tables this process is writing or has written (for the API's page cache)."""
        self.changes.watch(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """The schema at the newest migration: created, or upgraded (``store/migrations``)."""
        from collector.store.migrations import prepare

        prepare(self)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> bool:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    def dispose(self) -> None:
        self.engine.dispose()

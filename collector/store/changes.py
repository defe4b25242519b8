"""Which tables this process has written, and whether such a write may still be uncommitted.

    changes = TableChanges()
    changes.watch(engine)
    seen = changes.snapshot({"dispatches", "households"})   # None while a write is unsettled
    ... read a page ...
    changes.unchanged(seen)                                  # True: no write to them since

Every statement the engine runs is looked at: an ``INSERT``, ``UPDATE`` or ``DELETE`` marks its
tables *unsettled* on that connection from the moment it runs until the connection's transaction
has ended (the connection is back in the pool, or begins its next transaction), and moves each
table's generation on at both ends. A reader that took a snapshot while nothing it reads was
unsettled, and finds the same generations after reading, read nothing that changed meanwhile; a
commit always lands before its settle. This sees every write through this engine (the API, the
pages, ingest, notifications, retention), not writes by other processes.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

from sqlalchemy import Engine, event

ALL = "*"
"""Stands for every table: a write whose tables could not be read from its statement."""

_WRITE = re.compile(
    # "ON CONFLICT ... DO UPDATE SET" names no table: the lookahead skips it
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
    r"\s+(?!SET\b)[\"`]?(\w+)",
    re.IGNORECASE,
)
_READ_ONLY = (
    "SELECT", "PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "SHOW", "SET ",
    "EXPLAIN",
)  # fmt: skip
_KEY = "anbu_written"
_NONE: frozenset[str] = frozenset()


def written_tables(statement: str) -> frozenset[str]:
    """The tables ``statement`` writes (lower case), empty for a read, ``{ALL}`` if unsure."""
    if statement.lstrip()[:10].upper().startswith(_READ_ONLY):
        return _NONE
    tables = frozenset(name.lower() for name in _WRITE.findall(statement))
    return tables or frozenset({ALL})


class TableChanges:
    """Generations and unsettled writes per table, fed by :meth:`watch`; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: Counter[str] = Counter()
        self._unsettled: Counter[str] = Counter()

    def watch(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine, "begin", self._begin)
        event.listen(engine.pool, "checkin", self._checkin)
        # A connection dropped mid-transaction: its write, if any, is over too.
        event.listen(engine.pool, "invalidate", self._checkin_failed)
        event.listen(engine.pool, "close", self._checkin)

    def snapshot(self, tables: frozenset[str]) -> tuple[int, ...] | None:
        """The generations of ``tables`` (and of ``ALL``), or None while any is unsettled."""
        with self._lock:
            if any(self._unsettled[t] for t in tables) or self._unsettled[ALL]:
                return None
            return self._generations(tables)

    def unchanged(self, tables: frozenset[str], seen: tuple[int, ...] | None) -> bool:
        """No write to ``tables`` began or ended since ``seen`` was taken, and none is pending."""
        return seen is not None and self.snapshot(tables) == seen

    def _generations(self, tables: frozenset[str]) -> tuple[int, ...]:
        return (self._generation[ALL], *(self._generation[t] for t in sorted(tables)))

    # engine and pool events

    def _before_execute(
        self, conn: Any, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any
    ) -> None:
        tables = written_tables(statement)
        if not tables:
            return
        held: set[str] = conn.info.setdefault(_KEY, set())
        new = tables - held
        if new:
            held |= new
            with self._lock:
                for table in new:
                    self._unsettled[table] += 1
                    self._generation[table] += 1

    def _begin(self, conn: Any) -> None:
        # The connection's previous transaction, if it wrote, ended before this one began.
        self._settle(conn.info)

    def _checkin(self, _dbapi_connection: Any, record: Any) -> None:
        self._settle(record.info)

    def _checkin_failed(self, _dbapi_connection: Any, record: Any, _exc: Any) -> None:
        self._settle(record.info)

    def _settle(self, info: dict[str, Any]) -> None:
        held: set[str] | None = info.pop(_KEY, None)
        if not held:
            return
        with self._lock:
            for table in held:
                self._unsettled[table] -= 1
                self._generation[table] += 1

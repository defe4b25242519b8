"""The bulk lane's hot statements, run through the driver's own ``executemany``.

SQLAlchemy's per-row parameter processing cost more than the database itself for a batch of
thousands of heartbeats; these few statements are written once for both backends (the
``ON CONFLICT … DO UPDATE … WHERE`` form is the same in SQLite and PostgreSQL) and handed to the
DB-API cursor of the session's own connection, inside the session's transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

LATEST = """
UPDATE devices SET
  last_seen_at = :heard, last_heartbeat_at = :heard,
  last_seq = CASE WHEN last_seq < :seq THEN :seq ELSE last_seq END,
  agent_version = CASE WHEN last_seq < :seq THEN :version ELSE agent_version END,
  last_outbox_depth = CASE WHEN last_seq < :seq THEN :depth ELSE last_outbox_depth END,
  last_audio_overruns = CASE WHEN last_seq < :seq THEN :overruns ELSE last_audio_overruns END,
  clock_offset_s = :offset
WHERE id = :id
"""

LIFE_SIGN = """
UPDATE devices SET last_life_sign_at = :alive
WHERE id = :id AND (last_life_sign_at IS NULL OR last_life_sign_at < :alive)
"""

ROLLUP = """
INSERT INTO device_days (device_id, day, heartbeats, motion_count, speech_s, wake_word_count,
                         interactions, button_presses, max_outbox_depth, last_seq)
VALUES (:device_id, :day, :heartbeats, :motion_count, :speech_s, :wake_word_count,
        :interactions, :button_presses, :max_outbox_depth, :last_seq)
ON CONFLICT (device_id, day) DO UPDATE SET
  heartbeats = device_days.heartbeats + excluded.heartbeats,
  motion_count = device_days.motion_count + excluded.motion_count,
  speech_s = device_days.speech_s + excluded.speech_s,
  wake_word_count = device_days.wake_word_count + excluded.wake_word_count,
  interactions = device_days.interactions + excluded.interactions,
  button_presses = device_days.button_presses + excluded.button_presses,
  max_outbox_depth = CASE WHEN excluded.max_outbox_depth > device_days.max_outbox_depth
                     THEN excluded.max_outbox_depth ELSE device_days.max_outbox_depth END,
  last_seq = excluded.last_seq
WHERE device_days.last_seq < excluded.last_seq
"""

_NAMED = re.compile(r":(\w+)")


def _sqlite_time(value: dt.datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime stores (UTC, no zone), so both can compare.
    # isoformat is several times cheaper than strftime, and this runs twice per heartbeat.
    utc = value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)
    return utc.isoformat(sep=" ", timespec="microseconds")[:26]  # without the "+00:00"


def for_driver(
    session: Session, rows: Sequence[dict[str, Any]], *, times: tuple[str, ...] = ()
) -> Sequence[dict[str, Any]]:
    """``rows`` as the session's driver takes them (SQLite: the ``times`` columns as text).

    Done before the first write of a batch, so that SQLite's write lock is held for the
    statements only.
    """
    if not times or session.get_bind().dialect.name == "postgresql":
        return rows
    return [{**r, **{k: _sqlite_time(r[k]) for k in times}} for r in rows]


def run(session: Session, sql: str, params: Sequence[dict[str, Any]]) -> None:
    """Run ``sql`` (``:name`` parameters) once per row of :func:`for_driver` ``params`` on the
    session's own connection."""
    if not params:
        return
    connection = session.connection().connection
    statement = sql
    if session.get_bind().dialect.name == "postgresql":
        statement = _NAMED.sub(r"%(\1)s", sql)
    cursor = connection.cursor()
    try:
        cursor.executemany(statement, params)
    finally:
        cursor.close()

"""Schema migrations (Alembic) for SQLite and PostgreSQL, run from code, no ``alembic.ini``.

    upgrade(db)              # to the newest revision, through every revision
    prepare(db)              # what ``anbu collector init-db`` and start-up do (fast when empty)
    current_revision(db)     # "0002_list_indexes", or None for an empty database

A database made by ``create_all`` before migrations existed has the baseline's tables but no
``alembic_version``: :func:`upgrade` stamps it at the baseline, then applies what came after.
How to add a revision: ``docs/migrations.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from collector.store.db import Database
from collector.store.models import Base

log = logging.getLogger("anbu.collector.migrations")

BASELINE = "0001_baseline"
HERE = Path(__file__).resolve().parent
# Present in every database the baseline describes; its absence means "empty".
_BASELINE_TABLES = {"caregivers", "households", "devices", "dispatches", "notifications"}


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration revisions under {HERE / 'versions'}")
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str:
    """Bring ``db`` to ``revision`` (default the newest); returns the revision it is now at."""
    with db.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names())
        version = MigrationContext.configure(connection).get_current_revision()
        if version is None and tables >= _BASELINE_TABLES:
            log.info("stamping a pre-migration database at the baseline")
            command.stamp(config, BASELINE)
        elif version is None and tables & _BASELINE_TABLES:
            missing = ", ".join(sorted(_BASELINE_TABLES - tables))
            raise RuntimeError(
                f"the database has some of Anbu's tables but not {missing} and no "
                "alembic_version: it is not one this collector made; refusing to migrate it"
            )
        command.upgrade(config, revision)
        now = MigrationContext.configure(connection).get_current_revision()
    log.info("database schema at revision", extra={"revision": now})
    return now or ""


def prepare(db: Database) -> str:
    """The schema at the newest revision, however the database starts.

    Empty: every table from the models at once and stamped at head (the same schema, which
    ``tests/collector/test_migrations.py`` checks, in a fraction of the time). Otherwise: upgrade.
    """
    with db.engine.begin() as connection:
        empty = not set(inspect(connection).get_table_names()) & _BASELINE_TABLES
        if empty:
            Base.metadata.create_all(connection)
            config = alembic_config()
            config.attributes["connection"] = connection
            command.stamp(config, "head")
    if empty:
        return head_revision()
    return upgrade(db)

"""Alembic's entry point: migrate the connection handed over by ``collector.store.migrations``.

Run through :func:`collector.store.migrations.upgrade` (``anbu collector init-db``), which passes
an open connection; the ``alembic`` command line works too, given ``-x url=DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from collector.store.models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: later revisions use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///var/anbu.sqlite3 ...")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()

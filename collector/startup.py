"""Start-up checks that turn a misconfigured database into one line an operator can act on.

SQLite: the file's directory must already exist (the collector never creates directories, so a
typo such as ``sqlite:////nonexistent/dir/x.sqlite3`` is reported, not silently built), and the
path must be absolute (``sqlite:///var/x`` would be relative to wherever the collector started).

PostgreSQL (or SQLite) that cannot be reached or refuses the role: :func:`database_problem` gives
the driver's first line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from collector.store.db import Database


class StartupError(RuntimeError):
    """Something the operator must fix before the collector can start; the text says what."""


def check_sqlite_path(url: str) -> None:
    """Raise :class:`StartupError` when a SQLite URL names a relative path or a missing folder."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StartupError(f"database_url {url!r} is not a database URL ({exc})") from exc
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(str(parsed.database))
    if not path.is_absolute():
        raise StartupError(
            f"database_url {url!r} names the relative path {str(path)!r}: use four slashes "
            f"and an absolute path, e.g. sqlite:////var/lib/anbu-collector/anbu.sqlite3"
        )
    if not path.parent.is_dir():
        raise StartupError(
            f"database_url {url!r}: directory {path.parent} does not exist "
            "(the collector does not create it): create it or set ANBU_DATABASE_URL"
        )


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line only (SQLAlchemy appends SQL and a help link)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip() or type(inner).__name__
    return text.splitlines()[0].strip()


def database_problem(db: Database) -> str | None:
    """None when the database answers and its tables exist (made if missing); else why not."""
    try:
        db.create_schema()
        db.ping()
    except SQLAlchemyError as exc:
        where = make_url(db.url).render_as_string(hide_password=True)
        return f"database {where} is not usable: {first_line(exc)}"
    except OSError as exc:
        return f"database {db.url}: {exc}"
    return None

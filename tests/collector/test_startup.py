"""collector.startup: SQLite paths checked before use, database errors as one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.startup import StartupError, check_sqlite_path, database_problem, first_line
from collector.store.db import Database


def test_sqlite_paths(tmp_path: Path) -> None:
    check_sqlite_path(f"sqlite:///{tmp_path / 'ok.sqlite3'}")
    check_sqlite_path("sqlite://")  # in memory
    check_sqlite_path("postgresql+psycopg://u@127.0.0.1:1/x")  # not a file: nothing to check
    with pytest.raises(StartupError, match=re.escape("relative path 'var/x.sqlite3'")):
        check_sqlite_path("sqlite:///var/x.sqlite3")
    with pytest.raises(
        StartupError, match=re.escape(f"directory {tmp_path / 'no'} does not exist")
    ):
        check_sqlite_path(f"sqlite:///{tmp_path / 'no' / 'x.sqlite3'}")
    assert not (tmp_path / "no").exists()
    with pytest.raises(StartupError, match="is not a database URL"):
        check_sqlite_path("no url at all")


def test_an_unusable_database_is_one_line(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'no' / 'x.sqlite3'}")  # SQLite cannot open it
    problem = database_problem(db)
    db.dispose()
    assert problem is not None and "\n" not in problem
    assert problem.endswith("unable to open database file")
    assert database_problem(Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")) is None


def test_first_line_drops_what_sqlalchemy_appends() -> None:
    from sqlalchemy.exc import OperationalError

    exc = OperationalError("SELECT 1", {}, Exception('FATAL: role "x" does not exist\nDETAIL'))
    assert first_line(exc) == 'FATAL: role "x" does not exist'
    assert first_line(ValueError("")) == "ValueError"

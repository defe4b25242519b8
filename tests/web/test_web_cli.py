"""``anbu collector add-account``: a real subprocess making a login that then works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from collector.main import create_app
from collector.settings import CollectorSettings
from collector.store.db import Database
from tests.web.conftest import FakeRuntime, csrf_of, seed


def add_account(db_url: str, password: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANBU_DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "anbu", "collector", "add-account", *args],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_add_account_reads_the_password_from_stdin_and_the_login_works(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'anbu.sqlite3'}"
    db = Database(url)
    seeded = seed(db)
    made = add_account(
        url,
        "봄날의 햇살 2026",
        "--username", "lee.sup", "--role", "caregiver", "--name", "이지은",
        "--district", "seodaemun", "--caregiver-id", str(seeded.caregivers["care-b"]),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert '"username": "lee.sup"' in made.stdout
    assert "봄날의 햇살" not in made.stdout + made.stderr

    settings = CollectorSettings(database_url=url, link_secret="x" * 32)
    with TestClient(create_app(FakeRuntime(db, settings), settings=settings)) as client:
        page = client.get("/login")
        done = client.post(
            "/login",
            data={"username": "lee.sup", "password": "봄날의 햇살 2026",
                  "csrf": csrf_of(page.text), "next": "/care/households/h-b1"},
            follow_redirects=False,
        )  # fmt: skip
        assert done.status_code == 303
        assert client.get("/care/households/h-b1").status_code == 200
        assert client.get("/care/households/h-a1").status_code == 403
    db.dispose()


def test_add_account_explains_what_is_wrong(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'anbu.sqlite3'}"
    seed(Database(url))
    short = add_account(url, "short", "--username", "x", "--role", "admin", "--name", "X")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    no_district = add_account(
        url, "long enough pass", "--username", "y", "--role", "supervisor", "--name", "Y"
    )
    assert no_district.returncode == 2 and "needs a district" in no_district.stderr
    taken = add_account(
        url, "long enough pass", "--username", "care-a", "--role", "admin", "--name", "Z"
    )
    assert taken.returncode == 2 and "'care-a' is taken" in taken.stderr

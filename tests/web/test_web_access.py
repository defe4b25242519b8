"""Logins, sessions, CSRF, the login throttle, security headers and who may see what —
through the real app and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from collector.store.accounts import AuditEntry, WebSession
from collector.store.db import Database
from tests.web.conftest import PASSWORD, csrf_of, log_in, raise_sos

Login = Callable[[str], TestClient]


def test_login_page_is_served_with_security_headers(app: FastAPI) -> None:
    with TestClient(app) as client:
        page = client.get("/login")
    assert page.status_code == 200
    assert 'name="password"' in page.text and 'type="password"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"


def test_the_login_page_speaks_english_on_request(app: FastAPI) -> None:
    with TestClient(app) as client:
        korean = client.get("/login?next=/care")
        assert "아이디" in korean.text and 'href="/login?lang=en&amp;next=/care"' in korean.text
        english = client.get("/login?lang=en&next=/care")
        assert "Username" in english.text and '<html lang="en">' in english.text
        assert client.get("/login?lang=xx").text.count("아이디") >= 1


def test_pages_need_a_login_and_come_back_after_it(app: FastAPI) -> None:
    with TestClient(app) as client:
        first = client.get("/care/households/h-a1", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=/care/households/h-a1"
        done = log_in(client, "care-a", next_path="/care/households/h-a1")
        assert (done.status_code, done.headers["location"]) == (303, "/care/households/h-a1")
        assert client.get("/care/households/h-a1").status_code == 200


def test_wrong_password_is_refused_and_sets_no_session(app: FastAPI, database: Database) -> None:
    with TestClient(app) as client:
        response = log_in(client, "care-a", password="wrong password")
        assert response.status_code == 401
        assert "아이디 또는 비밀번호가 맞지 않습니다" in response.text
        assert "anbu_session" not in client.cookies
    with database.session() as s:
        assert s.scalar(select(WebSession.token_hash)) is None
        failed = s.scalars(select(AuditEntry).where(AuditEntry.action == "login_failed")).all()
        assert [e.actor for e in failed] == ["care-a"]


def test_a_password_typed_as_the_username_is_not_written_to_the_audit_log(
    app: FastAPI, database: Database
) -> None:
    with TestClient(app) as client:
        assert log_in(client, PASSWORD, password="x" * 8).status_code == 401
    with database.session() as s:
        actors = s.scalars(select(AuditEntry.actor)).all()
    assert actors == ["(unknown username)"]


def test_login_needs_the_forms_csrf_token(app: FastAPI) -> None:
    with TestClient(app) as client:
        client.get("/login")
        response = client.post(
            "/login",
            data={"username": "care-a", "password": PASSWORD, "csrf": "forged", "next": "/"},
            follow_redirects=False,
        )
    assert response.status_code == 403
    assert "anbu_session" not in client.cookies


def test_login_is_rate_limited_per_username_even_with_the_right_password(app: FastAPI) -> None:
    with TestClient(app) as client:
        for _ in range(5):
            assert log_in(client, "care-a", password="guess-guess").status_code == 401
        blocked = log_in(client, "care-a")
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        assert "로그인 시도가 너무 많습니다" in blocked.text
        # Another person is not locked out by someone guessing care-a's password...
        # ...except from the same address, which the limit also counts.
    with TestClient(app, client=("10.0.0.9", 50000)) as other:
        assert log_in(other, "care-b").status_code == 303


def test_open_redirect_is_refused(app: FastAPI) -> None:
    with TestClient(app) as client:
        done = log_in(client, "care-a", next_path="//evil.example/")
    assert done.headers["location"] == "/care"


def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    login: Login, database: Database
) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    client = login("care-a")
    forged = client.post(f"/care/dispatches/{dispatch_id}/acknowledge", data={"csrf": "x"})
    assert forged.status_code == 403
    page = client.get(f"/care/dispatches/{dispatch_id}")
    assert 'data-status="open"' in page.text


def test_logout_kills_the_session_on_the_server(login: Login, database: Database) -> None:
    client = login("care-a")
    cookie = client.cookies["anbu_session"]
    page = client.get("/care")
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 200
    with database.session() as s:
        assert s.scalar(select(WebSession.token_hash)) is None
    client.cookies.set("anbu_session", cookie)  # a copied cookie is dead too
    assert client.get("/care", follow_redirects=False).status_code == 303


def test_caregiver_sees_only_their_households(login: Login) -> None:
    client = login("care-a")
    assert client.get("/care/households/h-a1").status_code == 200
    other = client.get("/care/households/h-b1")
    assert other.status_code == 403
    assert "볼 수 있는 권한이 없습니다" in other.text
    assert client.get("/care/households/h-m1").status_code == 403
    assert client.get("/map").status_code == 403
    assert client.get("/audit").status_code == 403


def test_caregiver_cannot_see_or_act_on_another_caregivers_dispatch(
    login: Login, database: Database
) -> None:
    theirs = raise_sos(database, "h-b1")
    mine = raise_sos(database, "h-a1")
    client = login("care-a")
    listing = client.get("/care").text
    assert f"dispatch-{mine}" in listing and f"dispatch-{theirs}" not in listing
    assert client.get(f"/care/dispatches/{theirs}").status_code == 403
    csrf = csrf_of(listing)
    assert (
        client.post(f"/care/dispatches/{theirs}/acknowledge", data={"csrf": csrf}).status_code
        == 403
    )
    assert 'data-status="open"' in login("care-b").get(f"/care/dispatches/{theirs}").text


def test_supervisor_sees_their_district_only(login: Login, database: Database) -> None:
    raise_sos(database, "h-m1")
    client = login("sup-seo")
    assert client.get("/care/households/h-a1").status_code == 200
    assert client.get("/care/households/h-b1").status_code == 200
    assert client.get("/care/households/h-m1").status_code == 403
    homes = client.get("/map/data.json").json()["households"]
    assert sorted(h["id"] for h in homes) == ["h-a1", "h-a2", "h-b1"]
    assert "h-m1" not in client.get("/care").text


def test_admin_sees_every_district_and_technician_no_resident(login: Login) -> None:
    admin = login("admin")
    homes = admin.get("/map/data.json").json()["households"]
    assert {h["id"] for h in homes} == {"h-a1", "h-a2", "h-b1", "h-m1"}
    tech = login("tech")
    assert tech.get("/care/households/h-a1").status_code == 403
    assert tech.get("/map").status_code == 403


def test_every_view_of_a_record_is_audited_and_supervisors_read_it(
    login: Login, database: Database
) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    care = login("care-a")
    care.get("/care/households/h-a1")
    care.get(f"/care/dispatches/{dispatch_id}")
    care.get("/care/households/h-b1")  # refused: not a view
    with database.session() as s:
        rows = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.household_id).where(
                AuditEntry.action.like("view_%")
            )
        ).all()
    assert sorted(rows) == [
        ("care-a", "view_dispatch", "h-a1"),
        ("care-a", "view_household", "h-a1"),
    ]
    page = login("sup-seo").get("/audit")
    assert page.status_code == 200 and "view_household" in page.text
    assert "view_household" not in login("sup-mapo").get("/audit").text


def test_the_audit_log_refuses_updates_and_deletes_in_the_database(
    login: Login, database: Database
) -> None:
    login("care-a").get("/care/households/h-a1")
    for statement in ("UPDATE audit_log SET actor = 'nobody'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
            conn.execute(text(statement))
    with database.session() as s:
        assert "nobody" not in s.scalars(select(AuditEntry.actor)).all()


def test_docs_are_offline_and_public_in_development(app: FastAPI) -> None:
    with TestClient(app) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "http://" not in page.text and "https://" not in page.text
        for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
            assert client.get(asset).status_code == 200
        assert client.get("/static/docs-init.js").status_code == 200
        assert client.get("/redoc").status_code == 404


def test_in_production_docs_need_a_staff_login_and_placeholder_link_secret_is_refused(
    database: Database, seeded: object
) -> None:
    import secrets

    from collector.main import create_app
    from collector.settings import CollectorSettings
    from tests.web.conftest import FakeRuntime

    strong = {"api_token": secrets.token_urlsafe(32), "mqtt_password": secrets.token_urlsafe(32)}
    with pytest.raises(ValueError, match="link_secret"):
        CollectorSettings(environment="production", database_url=database.url, **strong)
    settings = CollectorSettings(
        environment="production",
        link_secret=secrets.token_urlsafe(32),
        database_url=database.url,
        **strong,
    )
    app = create_app(FakeRuntime(database, settings), settings=settings)
    with TestClient(app) as client:
        first = client.get("/docs", follow_redirects=False)
        assert (first.status_code, first.headers["location"]) == (303, "/login?next=/docs")
        assert log_in(client, "care-a").status_code == 303
        assert client.get("/docs").status_code == 403
        assert client.get("/openapi.json").status_code == 403
    with TestClient(app) as client:
        assert client.get("/openapi.json", follow_redirects=False).status_code == 303
        log_in(client, "tech")
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "Anbu collector"


def test_the_way_back_after_login_keeps_the_whole_query(app: FastAPI) -> None:
    with TestClient(app) as client:
        first = client.get("/reports?month=2026-12&x=1", follow_redirects=False)
        assert first.headers["location"] == "/login?next=/reports%3Fmonth%3D2026-12%26x%3D1"
        done = log_in(client, "sup-seo", next_path="/reports?month=2026-12&x=1")
        assert done.headers["location"] == "/reports?month=2026-12&x=1"


def test_map_data_answers_304_to_its_etag_until_the_map_changes(
    login: Login, database: Database, app: FastAPI
) -> None:
    app.state.web.map_poll_s = 0.05
    supervisor = login("sup-seo")
    first = supervisor.get("/map/data.json")
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('"') and len(tag) == 26
    assert first.headers["cache-control"] == "no-store"
    same = supervisor.get("/map/data.json", headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    other = supervisor.get("/map/data.json", headers={"If-None-Match": '"x", W/' + tag})
    assert other.status_code == 304
    stale = supervisor.get("/map/data.json", headers={"If-None-Match": '"not-it"'})
    assert stale.status_code == 200 and stale.json() == first.json()
    # Another district's snapshot has its own tag, and the old one gets it in full.
    mapo = login("sup-mapo").get("/map/data.json", headers={"If-None-Match": tag})
    assert mapo.status_code == 200 and mapo.headers["etag"] != tag
    raise_sos(database, "h-b1")
    deadline = time.monotonic() + 10
    while True:  # the snapshot is refreshed in the background, ~map_poll_s behind the store
        changed = supervisor.get("/map/data.json", headers={"If-None-Match": tag})
        if changed.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    sos = {h["id"]: h["state"] for h in changed.json()["households"]}
    assert sos["h-b1"] == "sos"

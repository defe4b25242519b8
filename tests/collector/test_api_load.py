"""The API under load: rationed sessions, a fast 503 instead of a hang, keyset pages, indexes.

Real databases on both backends; the session slots and the connection pool are the app's own.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import inspect

from collector.api.cursor import BadCursor, decode_cursor, encode_cursor
from collector.main import create_app
from collector.settings import CollectorSettings
from collector.store.db import Database
from collector.store.models import Caregiver, Household
from tests.collector.conftest import API_TOKEN, FakeRuntime

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def add_households(db: Database, n: int, district: str = "seodaemun") -> list[str]:
    with db.session() as session:
        caregiver = Caregiver(
            name="김미영", phone="010-1", email="c@example.org", district=district
        )
        session.add(caregiver)
        session.flush()
        ids = [f"h{k:04d}" for k in range(n)]
        session.add_all(
            Household(
                id=hid,
                district=district,
                resident_name="박순자",
                caregiver_id=caregiver.id,
                created_at=T0,
            )
            for hid in ids
        )
    return ids


def client_for(database: Database, **knobs: Any) -> TestClient:
    settings = CollectorSettings(api_token=API_TOKEN, database_url=database.url, **knobs)
    return TestClient(create_app(FakeRuntime(database, settings), settings=settings), headers=AUTH)


def test_no_free_session_is_a_fast_503_with_retry_after(database: Database) -> None:
    with client_for(database, api_db_sessions=1, api_db_wait_s=0.2) as client:
        slots = client.app.state.session_slots  # type: ignore[attr-defined]
        assert slots.acquire()  # someone else holds the only slot
        try:
            started = time.monotonic()
            response = client.get("/api/v1/households")
            waited = time.monotonic() - started
        finally:
            slots.release()
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "busy" in response.json()["detail"]
        assert 0.2 <= waited < 2.0
        assert slots.refused == 1
        assert client.get("/api/v1/households").status_code == 200  # free again


def test_an_exhausted_pool_is_a_503_not_a_hang(database: Database) -> None:
    small = Database(database.url, pool_size=2, pool_timeout_s=0.3)
    try:
        with client_for(small, db_pool_size=3, api_db_sessions=2) as client:
            held = [small.engine.connect(), small.engine.connect()]  # e.g. ingest, notifier
            try:
                started = time.monotonic()
                response = client.get("/api/v1/dispatches")
                assert time.monotonic() - started < 3
            finally:
                for connection in held:
                    connection.close()
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert client.get("/api/v1/dispatches").status_code == 200
    finally:
        small.dispose()


def test_more_requests_than_sessions_all_succeed(database: Database) -> None:
    add_households(database, 30)
    with (
        client_for(database, api_db_sessions=2, api_db_wait_s=10) as client,
        ThreadPoolExecutor(16) as pool,
    ):
        codes = list(
            pool.map(lambda _: client.get("/api/v1/households?limit=5").status_code, range(64))
        )
    assert codes == [200] * 64


def test_sessions_must_leave_connections_for_ingest() -> None:
    with pytest.raises(ValidationError, match="api_db_sessions=20 must be below db_pool_size=20"):
        CollectorSettings(db_pool_size=20, api_db_sessions=20)


# Keyset pages


def walk(client: TestClient, path: str, limit: int) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = client.get(path, params=params).json()
        yield page
        cursor = page["next_cursor"]
        if cursor is None:
            return


def test_cursor_walks_the_whole_list_once(client: TestClient, database: Database) -> None:
    ids = add_households(database, 23)
    pages = list(walk(client, "/api/v1/households", 5))
    assert [len(p["data"]) for p in pages] == [5, 5, 5, 5, 3]
    assert [h["id"] for p in pages for h in p["data"]] == sorted(ids)
    assert {p["count"] for p in pages} == {23}
    by_offset = client.get("/api/v1/households", params={"limit": 5, "offset": 5}).json()
    assert by_offset["data"] == pages[1]["data"]


def test_an_exactly_full_last_page_has_no_next_cursor(
    client: TestClient, database: Database
) -> None:
    add_households(database, 10)
    pages = list(walk(client, "/api/v1/households", 5))
    assert [len(p["data"]) for p in pages] == [5, 5]


def test_cursor_pages_dispatches_newest_first(client: TestClient, database: Database) -> None:
    from tests.collector.test_api_dispatches import add_dispatch

    # Two share a creation time: the id breaks the tie, so none is skipped or repeated.
    made = [add_dispatch(database, created_at=T0 + dt.timedelta(minutes=k // 2)) for k in range(7)]
    pages = list(walk(client, "/api/v1/dispatches", 2))
    assert [d["id"] for p in pages for d in p["data"]] == sorted(made, reverse=True)


@pytest.mark.parametrize(
    "cursor",
    [
        "bm90LWpzb24",  # not JSON
        encode_cursor([1, 2]),  # the wrong number of keys for households
        encode_cursor([2**40]),  # an integer no column stores
        "W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW10",  # nested lists
        "!!",
    ],
)
def test_a_cursor_this_api_did_not_make_is_422(client: TestClient, cursor: str) -> None:
    response = client.get("/api/v1/households", params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert client.get("/api/v1/caregivers", params={"cursor": cursor}).status_code == 422


def test_cursor_and_offset_together_is_422(client: TestClient) -> None:
    cursor = encode_cursor(["h0001"])
    response = client.get("/api/v1/households", params={"cursor": cursor, "offset": 3})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


def test_cursor_round_trip_and_refusals() -> None:
    moment = dt.datetime(2026, 3, 2, 1, 0, 0, 123456, tzinfo=dt.UTC)
    assert decode_cursor(encode_cursor([moment, 7]), (dt.datetime, int)) == [moment, 7]
    for bad in ([True], ["x"], [None], [1.5]):
        with pytest.raises(BadCursor):
            decode_cursor(encode_cursor(bad), (int,))  # type: ignore[arg-type]
    with pytest.raises(BadCursor):
        decode_cursor(encode_cursor(["9999-12-31T23:00:00-05:00"]), (dt.datetime,))
    with pytest.raises(BadCursor):
        decode_cursor(encode_cursor(["2026-03-02T01:00:00"]), (dt.datetime,))  # no zone


# Every list's sort order has an index


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("dispatches", ["created_at", "id"]),
        ("dispatches", ["status", "created_at", "id"]),
        ("dispatches", ["household_id", "created_at", "id"]),
        ("dead_letters", ["received_at", "id"]),
        ("households", ["district", "id"]),
        ("households", ["caregiver_id"]),
    ],
)
def test_each_list_order_has_an_index(database: Database, table: str, columns: list[str]) -> None:
    indexes = [ix["column_names"] for ix in inspect(database.engine).get_indexes(table)]
    assert columns in indexes


def test_dispatch_list_reads_the_index_not_a_sort(database: Database) -> None:
    sql = "SELECT id FROM dispatches ORDER BY created_at DESC, id DESC LIMIT 100"
    with database.engine.connect() as conn:
        if database.dialect == "sqlite":
            plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "ix_dispatches_created_at_id" in plan
            assert "TEMP B-TREE" not in plan
            return
        # On a table this small PostgreSQL rightly prefers a scan; with scans priced out, the
        # plan shows whether an index can give the order without a sort.
        for knob in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.exec_driver_sql(f"SET {knob} = off")
        plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert "ix_dispatches_created_at_id" in plan
    assert "Sort" not in plan.replace("Sort Key", "")


def test_every_waiting_request_gets_its_503(database: Database) -> None:
    """Slots held for longer than the wait: each queued request is refused, none hangs."""
    with client_for(database, api_db_sessions=1, api_db_wait_s=0.3) as client:
        slots = client.app.state.session_slots  # type: ignore[attr-defined]
        release = threading.Event()

        def hold() -> None:
            assert slots.acquire()
            release.wait(5)
            slots.release()

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            with ThreadPoolExecutor(8) as pool:
                codes = list(
                    pool.map(lambda _: client.get("/api/v1/caregivers").status_code, range(8))
                )
        finally:
            release.set()
            holder.join()
        assert codes == [503] * 8
        assert client.get("/health").status_code == 200


# The list page micro-cache (api_list_cache_s)


def test_without_the_cache_every_list_is_exact(database: Database) -> None:
    with client_for(database, api_list_cache_s=0) as client:
        assert client.get("/api/v1/households").json()["count"] == 0
        add_households(database, 2)
        assert client.get("/api/v1/households").json()["count"] == 2


def test_cached_pages_repeat_until_their_tables_are_written(database: Database) -> None:
    with client_for(database, api_list_cache_s=60) as client:
        first = client.get("/api/v1/households").content
        assert client.get("/api/v1/households").content == first
        cache = client.app.state.page_cache  # type: ignore[attr-defined]
        assert cache.hits == 1
        add_households(database, 2)  # behind the API's back, as ingest would: seen at once
        assert client.get("/api/v1/households").json()["count"] == 2
        caregivers = client.get("/api/v1/caregivers").json()["count"]
        devices = client.get("/api/v1/devices").content
        with database.session() as session:
            session.add(
                Caregiver(name="이정희", phone="010-2", email="j@example.org", district="mapo")
            )
        hits = cache.hits
        assert client.get("/api/v1/devices").content == devices
        assert cache.hits == hits + 1  # caregivers written, devices not: still cached
        assert client.get("/api/v1/caregivers").json()["count"] == caregivers + 1


def test_a_new_sos_dispatch_is_in_the_next_cached_page(database: Database) -> None:
    """Ingest's SOS (the real ``Service``, same process) is listed at once, not after ttl_s."""
    from collector.domain.dispatch import Contact, DispatchPolicy
    from collector.domain.escalation import EscalationPolicy
    from collector.service import Service
    from firmware_config.messages import SosEvent
    from firmware_config.topics import Channel, DeviceAddress
    from tests.collector.helpers import DISTRICT, NOW, register_homes

    register_homes(database)
    staff = Contact("staff", "구청", None, "staff@example.org")
    svc = Service(
        database,
        DispatchPolicy(ack_timeout_s=60, staff=staff),
        EscalationPolicy(repeat_after_s=300, staff=staff),
    )
    with client_for(database, api_list_cache_s=60) as client:
        assert client.get("/api/v1/dispatches").json()["count"] == 0
        assert client.get("/api/v1/dispatches").json()["count"] == 0  # now from the cache
        sos = SosEvent(device_ts=NOW.timestamp(), seq=1, source="button")
        svc.handle(
            DeviceAddress(DISTRICT, "h-1", "dev-1").topic(Channel.SOS), sos.to_payload(), NOW
        )
        page = client.get("/api/v1/dispatches").json()
        assert page["count"] == 1
        assert page["data"][0]["status"] == "open"


def test_an_acknowledgement_from_the_pages_is_in_the_next_cached_page(database: Database) -> None:
    """The caregiver pages write through ``write_lifecycle``, not the API: still seen at once."""
    from collector.domain import lifecycle
    from collector.store.models import Dispatch, DispatchReason, DispatchStatus, Priority
    from collector.store.trail import write_lifecycle

    add_households(database, 1)
    with database.session() as session:
        session.add(
            Dispatch(
                household_id="h0000", reason=DispatchReason.SILENCE, priority=Priority.NORMAL,
                status=DispatchStatus.OPEN, created_at=T0, escalation_level=0,
            )
        )  # fmt: skip
    with client_for(database, api_list_cache_s=60) as client:
        assert client.get("/api/v1/dispatches").json()["data"][0]["status"] == "open"
        assert client.get("/api/v1/dispatches").json()["data"][0]["status"] == "open"
        before = lifecycle.Lifecycle()
        after = lifecycle.apply(before, lifecycle.Acknowledge("김미영"), now=T0)
        with database.session() as session:
            assert write_lifecycle(session, 1, before, after)
        item = client.get("/api/v1/dispatches").json()["data"][0]
        assert (item["status"], item["acknowledged_by"]) == ("acknowledged", "김미영")


def test_a_page_read_while_a_write_is_uncommitted_is_not_kept(database: Database) -> None:
    with client_for(database, api_list_cache_s=60) as client:
        client.get("/api/v1/households")
        writer = database.sessions()
        writer.add(Caregiver(name="이정희", phone="010-2", email="j@example.org", district="mapo"))
        writer.flush()  # written, not committed: a page read now may or may not see it
        assert client.get("/api/v1/caregivers").json()["count"] == 0
        writer.commit()
        writer.close()
        assert client.get("/api/v1/caregivers").json()["count"] == 1


def test_cached_pages_expire() -> None:
    from collector.api.cache import PageCache

    now = [100.0]
    cache = PageCache(1.0, clock=lambda: now[0])
    tables = frozenset({"households"})
    cache.put("k", b"old", cache.reading(tables))
    assert cache.get("k", tables) == b"old"
    now[0] += 1.0
    assert cache.get("k", tables) is None


def test_a_page_read_before_an_api_write_is_not_kept() -> None:
    from collector.api.cache import PageCache

    now = [100.0]
    cache = PageCache(5.0, clock=lambda: now[0])
    reading = cache.reading(frozenset({"households"}))
    now[0] += 0.1
    cache.clear()  # a write through the API finished while the page was being read
    cache.put("k", b"maybe stale", reading)
    assert cache.get("k", frozenset({"households"})) is None


@pytest.mark.parametrize(
    ("statement", "tables"),
    [
        ("SELECT * FROM dispatches", set()),
        ("  select 1", set()),
        ("PRAGMA foreign_keys=ON", set()),
        ("SAVEPOINT sa_savepoint_1", set()),
        ('INSERT INTO "dispatches" (id) VALUES (?)', {"dispatches"}),
        ("INSERT OR IGNORE INTO seen_messages (id) VALUES (?)", {"seen_messages"}),
        ("UPDATE dispatches SET status=? WHERE id=?", {"dispatches"}),
        ("DELETE FROM households WHERE id = %(id)s", {"households"}),
        (
            "WITH gone AS (DELETE FROM heartbeats WHERE id < 5 RETURNING device_id) "
            "UPDATE devices SET last_seen = NULL",
            {"heartbeats", "devices"},
        ),
        (
            "INSERT INTO devices (id) VALUES (%(id)s) ON CONFLICT (id) DO UPDATE SET x = 1",
            {"devices"},
        ),
        ("TRUNCATE dispatches", {"*"}),
        ("VACUUM", {"*"}),
    ],
)
def test_the_tables_a_statement_writes(statement: str, tables: set[str]) -> None:
    from collector.store.changes import written_tables

    assert written_tables(statement) == tables


def test_every_write_statement_sqlalchemy_sends_is_seen(database: Database) -> None:
    """The statements as each backend's dialect really sends them (ORM flush, Core, bulk)."""
    from sqlalchemy import delete, insert, update

    from collector.store.models import Dispatch, DispatchReason, DispatchStatus, Priority

    tables = frozenset({"dispatches"})
    changes = database.changes
    add_households(database, 1)
    for write in (
        insert(Dispatch).values(
            household_id="h0000", reason=DispatchReason.SOS, priority=Priority.URGENT,
            status=DispatchStatus.OPEN, created_at=T0, escalation_level=0,
        ),
        update(Dispatch).values(note="x"),
        delete(Dispatch),
    ):  # fmt: skip
        seen = changes.snapshot(tables)
        with database.session() as session:
            session.execute(write)
            assert changes.snapshot(tables) is None  # unsettled until the transaction is over
        assert not changes.unchanged(tables, seen)
        assert changes.snapshot(tables) is not None


def test_the_dispatch_list_bytes_equal_the_models(database: Database) -> None:
    """The plain-row JSON (orjson) is byte for byte what ``Page[DispatchPublic]`` would write."""
    from collector.api import crud
    from collector.api.deps import Pagination
    from collector.api.models import DispatchPublic, Page
    from collector.api.responses import json_page, json_rows
    from collector.store.models import Dispatch, DispatchReason, DispatchStatus, Priority

    add_households(database, 2)
    with database.session() as session:
        session.add_all(
            [
                Dispatch(
                    household_id="h0000", caregiver_id=1, reason=DispatchReason.SOS,
                    priority=Priority.URGENT, status=DispatchStatus.RESOLVED,
                    sos_message_id="sos-1", created_at=T0,
                    acknowledged_at=T0 + dt.timedelta(microseconds=123456),
                    acknowledged_by="김미영 \"팀장\"", resolved_at=T0 + dt.timedelta(hours=1),
                    outcome="safe", note="줄\n바꿈\t탭 ✓", escalation_level=2,
                    cancelled_by_resident_at=T0 + dt.timedelta(seconds=1),
                    next_escalation_at=T0 + dt.timedelta(days=400),
                ),
                Dispatch(
                    household_id="h0001", reason=DispatchReason.SILENCE,
                    priority=Priority.NORMAL, status=DispatchStatus.OPEN,
                    created_at=T0 - dt.timedelta(days=1),
                    escalation_level=0,
                ),
            ]
        )  # fmt: skip
    page = Pagination(limit=1, offset=0)
    with database.session() as session:
        listing = crud.list_dispatches(
            session, status=None, district=None, household_id=None, limit=1, offset=0
        )
        again = crud.list_dispatches(
            session, status=None, district=None, household_id=None, limit=1, offset=0,
            cursor=listing.next_cursor,
        )  # fmt: skip
    for one in (listing, again):
        models = [
            DispatchPublic.model_validate(dict(zip(crud.DISPATCH_FIELDS, row, strict=True)))
            for row in one.items
        ]
        expected = json_page(Page[DispatchPublic], models, one, page).body
        assert json_rows(crud.DISPATCH_FIELDS, one, page).body == expected


def test_the_cache_is_checked_after_the_token(database: Database) -> None:
    with client_for(database, api_list_cache_s=60) as client:
        assert client.get("/api/v1/households").status_code == 200
        response = client.get("/api/v1/households", headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401


def test_concurrent_misses_for_one_page_read_it_once(database: Database) -> None:
    import asyncio

    from starlette.requests import Request
    from starlette.responses import Response

    from collector.api.cache import PageCache
    from collector.api.deps import Db, SessionSlots

    reads = []

    def work(_session: object) -> Response:
        reads.append(1)
        time.sleep(0.2)  # a slow page: the other requests arrive meanwhile
        return Response(b'{"data": []}', media_type="application/json")

    db = Db(database, SessionSlots(4, 1.0), PageCache(5.0), writes=False)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/households",
        "query_string": b"",
        "headers": [],
        "server": ("testserver", 80),
        "scheme": "http",
        "root_path": "",
    }

    async def many() -> list[bytes]:
        answers = await asyncio.gather(
            *(db.page(Request(scope), work, frozenset({"households"})) for _ in range(10))
        )
        return [bytes(a.body) for a in answers]

    assert asyncio.run(many()) == [b'{"data": []}'] * 10
    assert len(reads) == 1


def test_the_cache_is_on_by_default_for_one_second(database: Database) -> None:
    """Default settings: a repeated list page is served from memory (staff screens poll)."""
    with client_for(database) as client:
        cache = client.app.state.page_cache  # type: ignore[attr-defined]
        assert cache.ttl_s == 1.0
        first = client.get("/api/v1/dispatches").content
        assert client.get("/api/v1/dispatches").content == first
        assert cache.hits == 1

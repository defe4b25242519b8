"""The map's server-sent events through uvicorn-less ASGI: the first event is the whole district,
later ones only what changed (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

from fastapi.testclient import TestClient

from collector.store.db import Database
from tests.web.conftest import raise_sos

Login = Callable[[str], TestClient]


def events(lines: Iterator[str]) -> Iterator[tuple[str, list[dict[str, object]]]]:
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def test_first_event_is_everything_then_only_the_household_that_changed(
    login: Login, database: Database
) -> None:
    client = login("sup-seo")
    client.app.state.web.map_poll_s = 0.05  # type: ignore[attr-defined]
    with client.stream("GET", "/map/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        received = events(stream.iter_lines())
        name, first = next(received)
        assert name == "households"
        assert sorted(h["id"] for h in first) == ["h-a1", "h-a2", "h-b1"]
        assert {h["state"] for h in first} == {"ok"}
        threading.Timer(0.2, raise_sos, args=(database, "h-b1")).start()
        name, update = next(received)
        assert [(h["id"], h["state"]) for h in update] == [("h-b1", "sos")]
    assert login("care-a").get("/map/events").status_code == 403

"""Dead letters: what ingest could not handle, newest first, payload shown safely."""

from __future__ import annotations

import base64
import datetime as dt

from fastapi.testclient import TestClient

from collector.store.db import Database
from collector.store.models import DeadLetter

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


def test_list_newest_first_with_text_and_exact_payload(
    client: TestClient, database: Database
) -> None:
    with database.session() as session:
        session.add(DeadLetter(topic="anbu/v1/x", payload=b"{", reason="bad json", received_at=T0))
        session.add(
            DeadLetter(
                topic="anbu/v1/y",
                payload=b"\xff\xfe\x00",
                reason="not utf-8",
                received_at=T0 + dt.timedelta(minutes=1),
                details={"error": "UnicodeDecodeError"},
            )
        )
    page = client.get("/api/v1/dead-letters").json()
    assert page["count"] == 2
    newest, oldest = page["data"]
    assert (newest["topic"], oldest["topic"]) == ("anbu/v1/y", "anbu/v1/x")
    assert newest["details"] == {"error": "UnicodeDecodeError"}
    assert newest["payload"] == "\ufffd\ufffd\x00"
    assert base64.b64decode(newest["payload_base64"]) == b"\xff\xfe\x00"
    assert oldest["payload"] == "{"
    assert oldest["received_at"] == "2026-03-02T01:00:00Z"
    assert "raw" not in oldest

    second = client.get("/api/v1/dead-letters", params={"limit": 1, "offset": 1}).json()
    assert [d["topic"] for d in second["data"]] == ["anbu/v1/x"]

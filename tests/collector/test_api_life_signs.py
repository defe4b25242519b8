"""External life signs over the API reach the real silence runtime."""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.domain.silence import LifeSignKind
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.store.db import Database
from tests.collector.helpers import NOW, register_homes

URL = "/api/v1/households/h-1/life-signs"


def test_a_phone_used_signal_restarts_the_quiet_stretch(
    app: FastAPI, client: TestClient, database: Database
) -> None:
    register_homes(database, ("dev-1",))
    silence = SilenceRuntime(
        database,
        on_flag=lambda *_: None,
        settings=SilenceRuntimeSettings(learn=False),
        clock=lambda: NOW,
    )
    silence.restore()
    app.state.silence = silence
    at = NOW.astimezone(dt.timezone(dt.timedelta(hours=9)))  # a feed in Korean time
    response = client.post(URL, json={"source": "telecom", "at": at.isoformat()})
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == LifeSignKind.EXTERNAL.value
    deadline = silence.tracker.deadline("h-1")
    assert deadline is not None and deadline.due_s == (NOW + dt.timedelta(hours=48)).timestamp()


def test_bad_signals_are_refused_with_the_reason(
    app: FastAPI, client: TestClient, database: Database
) -> None:
    register_homes(database, ("dev-1",))
    assert client.post(URL, json={"source": "telecom", "at": NOW.isoformat()}).status_code == 503
    app.state.silence = SilenceRuntime(database, on_flag=lambda *_: None)
    naive = client.post(URL, json={"source": "telecom", "at": "2026-11-24T03:00:00"})
    assert naive.status_code == 422 and "zone" in naive.text
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    late = client.post(URL, json={"source": "smart_meter", "at": future.isoformat()})
    assert late.status_code == 422 and "future" in late.text
    unknown = client.post(
        "/api/v1/households/h-9/life-signs", json={"source": "other", "at": NOW.isoformat()}
    )
    assert unknown.status_code == 404
    assert client.post(URL, json={"source": "gps", "at": NOW.isoformat()}).status_code == 422


def test_the_token_is_required(anonymous: TestClient) -> None:
    assert anonymous.post(URL, json={"source": "telecom", "at": NOW.isoformat()}).status_code == 401

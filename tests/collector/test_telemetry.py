"""The heartbeat time-series sink against a real VictoriaMetrics (InfluxDB v2 write protocol).

Only two things here are not real: ``FakeRefusingServer``, an HTTP server that answers 400 the
way InfluxDB does for bad data (VictoriaMetrics answers 204 even for malformed lines, so it cannot
show that path), and a bare TCP listener that never answers (a hung server).
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from collector.settings import CollectorSettings
from collector.telemetry import (
    FIELDS,
    TAGS,
    HeartbeatPoint,
    InfluxLineWriter,
    InfluxTelemetrySink,
    NullTelemetrySink,
    encode_point,
    telemetry_from_settings,
)
from firmware_config.messages import Heartbeat
from tests.support.victoria import Series, VictoriaMetrics, start_victoria

HEARTBEATS = '{__name__=~"heartbeat_.*"}'
# Twelve hours ago, on a whole second plus 123 ms. Points go a minute apart from here, up to 8.5 h
# on: all of them in the past (an export without `end` stops at now) and inside the server's
# one-day retention, whatever day the suite runs (a fixed date fell out of it the next day).
T0 = dt.datetime.now(dt.UTC).replace(microsecond=123_000) - dt.timedelta(hours=12)


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = start_victoria(tmp_path / "vm")
    try:
        yield server
    finally:
        server.stop()


def point(
    n: int, *, home: int = 1, at: dt.datetime | None = None, **fields: float
) -> HeartbeatPoint:
    values: dict[str, float | int] = {
        "motion_count": n,
        "speech_s": 1.5 * n,
        "wake_word_count": n % 3,
        "interactions": n % 5,
        "button_presses": 0,
        "uptime_s": 60.0 * n,
        "audio_overruns": 2,
        "outbox_depth": n % 2,
        "coalesced": 0,
    }
    values.update(fields)
    return HeartbeatPoint(
        district="seodaemun",
        household_id=f"h{home:04d}",
        device_id=f"d{home:04d}",
        at=at or T0 + dt.timedelta(seconds=60 * n),
        fields=values,
    )


def sink_for(server_url: str, **options: float) -> InfluxTelemetrySink:
    settings: dict[str, float] = {
        "batch_size": 50,
        "flush_interval_s": 0.05,
        "queue_max": 10_000,
        "retry_min_s": 0.05,
        "retry_max_s": 0.2,
        "timeout_ms": 2000,
    }
    settings.update(options)
    return InfluxTelemetrySink(
        InfluxLineWriter(
            server_url, "token", "anbu", "anbu", timeout_ms=int(settings["timeout_ms"])
        ),
        batch_size=int(settings["batch_size"]),
        flush_interval_s=settings["flush_interval_s"],
        queue_max=int(settings["queue_max"]),
        retry_min_s=settings["retry_min_s"],
        retry_max_s=settings["retry_max_s"],
    )


def wait_until(condition: object, timeout_s: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def samples_by_device(series: list[Series], field: str) -> dict[str, dict[int, float]]:
    """``{device: {timestamp_ms: value}}`` of ``heartbeat_<field>``."""
    out: dict[str, dict[int, float]] = {}
    for s in series:
        if s.name == f"heartbeat_{field}":
            out.setdefault(s.labels["device"], {}).update(
                zip(s.timestamps_ms, s.values, strict=True)
            )
    return out


def ms(at: dt.datetime) -> int:
    return round(at.timestamp() * 1000)


# --- read back from a real server ---


def test_points_are_read_back_with_names_labels_values_and_millisecond_timestamps(
    victoria: VictoriaMetrics,
) -> None:
    sink = sink_for(victoria.url)
    points = [point(n, home=home) for home in (1, 2, 3) for n in range(1, 5)]
    sink.submit(points)
    wait_until(lambda: sink.health()["written"] == len(points))
    series = victoria.wait_for_samples(len(points) * len(FIELDS), HEARTBEATS)
    sink.close()

    assert {s.name for s in series} == {f"heartbeat_{f}" for f in FIELDS}
    for s in series:
        assert s.labels.keys() == {"__name__", "district", "household", "device"}
        assert s.labels["district"] == "seodaemun"
        assert s.labels["household"] == "h" + s.labels["device"][1:]
    for field in FIELDS:
        got = samples_by_device(series, field)
        want: dict[str, dict[int, float]] = {}
        for p in points:
            want.setdefault(p.device_id, {})[ms(p.at)] = float(p.fields[field])
        assert got == want, field
    # 09:30:00.123 keeps its milliseconds
    assert ms(T0 + dt.timedelta(seconds=60)) in samples_by_device(series, "uptime_s")["d0001"]
    health = sink.health()
    assert health["enabled"] is True
    assert health["dropped"] == health["failed_writes"] == health["invalid"] == 0
    assert health["last_error"] is None


def test_close_flushes_what_is_queued(victoria: VictoriaMetrics) -> None:
    # A flush interval and batch far beyond the test: only close() can make these points go out.
    sink = sink_for(victoria.url, batch_size=10_000, flush_interval_s=3600)
    points = [point(n) for n in range(1, 21)]
    sink.submit(points)
    time.sleep(0.2)
    assert sink.health()["written"] == 0
    assert sink.health()["queued"] == 20
    started = time.monotonic()
    sink.close(timeout_s=5)
    assert time.monotonic() - started < 3
    assert sink.health()["written"] == 20
    series = victoria.wait_for_samples(20, '{__name__="heartbeat_motion_count"}')
    assert sorted(v for s in series for v in s.values) == [float(n) for n in range(1, 21)]


def test_points_from_a_decoded_heartbeat_carry_every_field(victoria: VictoriaMetrics) -> None:
    hb = Heartbeat(
        device_ts=T0.timestamp(), seq=7, interval_s=60, motion_count=4, speech_s=12.25,
        wake_word_count=1, interactions=2, button_presses=1, uptime_s=3600.5,
        audio_overruns=3, outbox_depth=1, agent_version="0.1.0", coalesced=2,
    )  # fmt: skip
    sink = sink_for(victoria.url)
    sink.submit([HeartbeatPoint.from_heartbeat("jongno", "h0009", "d0009", T0, hb)])
    sink.close()
    series = victoria.wait_for_samples(len(FIELDS), HEARTBEATS)
    values = {s.name: s.values for s in series}
    assert values == {f"heartbeat_{f}": (float(getattr(hb, f)),) for f in FIELDS}
    assert {s.labels["district"] for s in series} == {"jongno"}


# --- bad input loses nothing else ---


def test_invalid_values_are_left_out_and_counted_while_the_rest_is_written(
    victoria: VictoriaMetrics,
) -> None:
    naive = dt.datetime(2026, 12, 1, 9, 0)
    bad = [
        point(1, home=1, speech_s=float("nan")),  # one bad field: the others still go
        point(2, home=1, motion_count=2**64),
        point(3, home=1, outbox_depth=True),
        HeartbeatPoint("seodaemun", "h0002", "d0002", T0, {"sound_level": 3, "uptime_s": 5}),
        HeartbeatPoint("seodaemun", "h0003", "d0003", naive, {"uptime_s": 5}),  # whole point
        HeartbeatPoint("seodaemun", "h\n0004", "d0004", T0, {"uptime_s": 5}),  # whole point
        HeartbeatPoint(
            "seodaemun", "h0005", "d0005", T0, {"speech_s": float("inf")}
        ),  # nothing left
        HeartbeatPoint("seodaemun", "h0006", "d0006", T0, None),  # type: ignore[arg-type]
    ]
    good = [point(n, home=9) for n in range(1, 4)]
    sink = sink_for(victoria.url)
    sink.submit([*bad[:4], good[0], *bad[4:], *good[1:]])
    sink.submit(None)  # type: ignore[arg-type]  # not even a list: logged, never raised
    sink.close()
    health = sink.health()
    assert health["invalid"] == len(bad)
    assert health["written"] == 3 + 1 + 3  # three partial + h0002 without its unknown field + good
    series = victoria.wait_for_samples(7, '{__name__="heartbeat_uptime_s"}')
    assert {s.labels["device"] for s in series} == {"d0001", "d0002", "d0009"}
    motion = samples_by_device(victoria.export(HEARTBEATS), "motion_count")["d0001"]
    assert motion == {ms(point(1).at): 1.0, ms(point(3).at): 3.0}  # 2**64 left out
    speech = samples_by_device(victoria.export(HEARTBEATS), "speech_s")["d0001"]
    assert ms(point(1).at) not in speech and ms(point(2).at) in speech
    names = {s.name for s in victoria.export(HEARTBEATS)}
    assert "heartbeat_sound_level" not in names


def test_line_encoding_escapes_tags_and_truncates_to_milliseconds() -> None:
    at = dt.datetime(2026, 12, 1, 18, 30, 0, 123_999, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    line, problems = encode_point(
        HeartbeatPoint("a b,c=d", "h\\1", "d1", at, {"motion_count": 3, "speech_s": 0.5})
    )
    assert problems == []
    utc_ms = (at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    assert line == f"heartbeat,device=d1,district=a\\ b\\,c\\=d,household=h\\\\1 " \
        f"motion_count=3i,speech_s=0.5 {utc_ms}"  # fmt: skip
    assert str(utc_ms).endswith("123")


# --- the server goes away ---


def test_server_down_submit_never_blocks_drops_oldest_and_resumes(
    victoria: VictoriaMetrics,
) -> None:
    sink = sink_for(victoria.url, batch_size=10, queue_max=100)
    sink.submit([point(n, home=1) for n in range(1, 11)])
    wait_until(lambda: sink.health()["written"] == 10)
    victoria.stop()

    worst_s = 0.0
    for n in range(11, 511):  # 500 points while the server is down, one per submit
        started = time.perf_counter()
        sink.submit([point(n, home=2)])
        worst_s = max(worst_s, time.perf_counter() - started)
    health = sink.health()
    # A blocking submit would take a connect attempt each; 0.25 s leaves room for a loaded CI box.
    assert worst_s < 0.25, f"submit took {worst_s * 1000:.1f} ms while the server was down"
    wait_until(lambda: sink.health()["failed_writes"] >= 2)  # retried, with back-off
    health = sink.health()
    assert health["queued"] + health["in_flight"] <= 100 + 10  # the queue and one batch
    assert health["dropped"] == 500 - health["queued"] - health["in_flight"]  # type: ignore[operator]
    assert health["written"] == 10
    assert health["last_error"]

    victoria.start()
    wait_until(lambda: sink.health()["queued"] == 0 and sink.health()["in_flight"] == 0, 15)
    health = sink.health()
    assert health["written"] + health["dropped"] == 510
    sink.close()
    written = int(str(health["written"]))
    motion = samples_by_device(
        victoria.wait_for_samples(written, '{__name__="heartbeat_motion_count"}'), "motion_count"
    )
    # Drop oldest: the newest 100 of the outage all arrived; besides them only what the writer
    # held when the queue overflowed (the first points of the outage) was written.
    newest = {float(n) for n in range(411, 511)}
    outage = set(motion["d0002"].values())
    assert newest <= outage
    assert len(outage) == written - 10
    assert len(outage - newest) <= 10
    assert len(motion["d0001"]) == 10


def test_a_hung_server_never_blocks_submit_and_close_is_bounded(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        sink = sink_for(url, batch_size=5, queue_max=20, timeout_ms=30_000)
        sink.submit([point(n) for n in range(5)])
        wait_until(lambda: sink.health()["in_flight"] == 5)  # the writer is stuck in a request
        started = time.perf_counter()
        for n in range(100):
            sink.submit([point(n)])
        assert time.perf_counter() - started < 0.5  # a blocking submit would wait 30 s
        assert sink.health()["queued"] == 20
        started = time.perf_counter()
        sink.close(timeout_s=0.5)
        assert time.perf_counter() - started < 2.5
        health = sink.health()
        assert health["written"] == 0
        assert health["queued"] == 0
        # everything not in the stuck request was dropped at close, and said so
        assert health["dropped"] == 80 + 20  # 80 pushed out while queued, 20 left at close
        sink.submit([point(1)])  # after close: counted, never raised
        assert sink.health()["dropped"] == 101
        started = time.perf_counter()
        sink.close()  # a second close returns at once
        assert time.perf_counter() - started < 0.1


class FakeRefusingServer(http.server.BaseHTTPRequestHandler):
    """Answers every write with InfluxDB's 400 for unparsable data."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"code": "invalid", "message": "unable to parse"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return None


def test_refused_batches_are_counted_not_retried() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRefusingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink = sink_for(f"http://127.0.0.1:{server.server_address[1]}", batch_size=5)
        sink.submit([point(n) for n in range(12)])
        wait_until(lambda: sink.health()["rejected"] == 12)
        time.sleep(0.3)
        health = sink.health()
        assert health["failed_writes"] == 3  # three batches, one attempt each
        assert "400" in str(health["last_error"])
        sink.close()
    finally:
        server.shutdown()
        server.server_close()


# --- settings ---


def test_settings_choose_the_sink(victoria: VictoriaMetrics) -> None:
    assert isinstance(telemetry_from_settings(CollectorSettings()), NullTelemetrySink)
    null = NullTelemetrySink()
    null.submit([point(1)])
    assert null.health()["enabled"] is False

    settings = CollectorSettings(
        influx_url=victoria.url, influx_batch_size=2, influx_flush_interval_ms=20
    )
    sink = telemetry_from_settings(settings)
    assert isinstance(sink, InfluxTelemetrySink)
    assert (sink.batch_size, sink.flush_interval_s) == (2, 0.02)
    sink.submit([point(1), point(2), point(3)])
    sink.close()
    assert sink.health()["written"] == 3


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValidationError, match="influx_queue_max"):
        CollectorSettings(influx_queue_max=0)
    with pytest.raises(ValueError, match="batch_size"):
        InfluxTelemetrySink(InfluxLineWriter("http://127.0.0.1:1", None, "o", "b"), batch_size=0)


# --- the Grafana dashboard ---

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "anbu-fleet.json"


def dashboard_queries() -> dict[str, list[str]]:
    """Panel title -> its query expressions."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}


def test_the_dashboard_is_valid_json_and_names_only_what_the_sink_writes() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "district"}
    written = {f"heartbeat_{f}" for f in FIELDS}
    exprs = [e for queries in dashboard_queries().values() for e in queries]
    exprs.append(dashboard["templating"]["list"][1]["definition"])
    named = {name for e in exprs for name in re.findall(r"\bheartbeat_[a-z_]+", e)}
    assert named <= written, named - written
    assert {"heartbeat_uptime_s", "heartbeat_outbox_depth", "heartbeat_audio_overruns"} <= named
    labels = {
        label.strip()
        for e in exprs
        for group in re.findall(r"\bby \(([^)]*)\)", e) + re.findall(r"\{([^}]*)\}", e)
        for label in re.findall(r"([a-z_]+)\s*=~?", group) or group.split(",")
    }
    assert labels - {""} <= set(TAGS), labels
    variables = {v for e in exprs for v in re.findall(r"\$\{?(\w+)", e)}
    assert variables <= {"district"}
    titles = " ".join(dashboard_queries()).lower()
    for wanted in ("heartbeats per second", "devices reporting", "outbox", "overruns", "resets"):
        assert wanted in titles


def test_every_dashboard_query_answers_from_points_the_sink_wrote(
    victoria: VictoriaMetrics,
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    points = []
    for k in range(50, -1, -1):  # one heartbeat a minute for 50 minutes
        at = now - dt.timedelta(minutes=k, seconds=1)
        uptime_1 = 60.0 * (50 - k) + 1000 if k > 20 else 60.0 * (20 - k)  # rebooted 20 min ago
        for district, home, uptime, depth, overruns in (
            ("seodaemun", 1, uptime_1, 0, 0),
            ("seodaemun", 2, 5000.0 + 60 * (50 - k), 3 if k == 0 else 0, 0),
            ("jongno", 3, 9000.0 + 60 * (50 - k), 0, (50 - k) // 10),
        ):
            fields = {**point(50 - k).fields, "uptime_s": uptime, "outbox_depth": depth}
            fields["audio_overruns"] = overruns
            points.append(HeartbeatPoint(district, f"h{home:04d}", f"d{home:04d}", at, fields))
        if k >= 30:  # home 4 went silent half an hour ago
            points.append(point(50 - k, home=4, at=at, audio_overruns=0))
    sink = sink_for(victoria.url, batch_size=1000)
    sink.submit(points)
    sink.close()
    assert sink.health()["written"] == len(points)
    victoria.wait_for_samples(len(points), '{__name__="heartbeat_uptime_s"}')

    def answer(expr: str) -> list[dict[str, object]]:
        result: list[dict[str, object]] = victoria.query(
            expr.replace("$district", ".*"), at_s=now.timestamp()
        )["result"]
        return result

    def value(expr: str) -> float:
        (only,) = answer(expr)
        return float(only["value"][1])  # type: ignore[index]

    for title, exprs in dashboard_queries().items():
        for expr in exprs:
            assert answer(expr), f"{title!r}: {expr} returned nothing"
    queries = dashboard_queries()
    assert value(queries["Devices reporting"][0]) == 3
    assert value(queries["Devices silent for 15 min"][0]) == 1
    assert value(queries["Restarts in the last hour"][0]) == 1
    assert 0 < value(queries["Heartbeats per second"][0]) <= 4 / 60 * 1.5
    (deepest,) = answer(queries["Devices with the deepest outbox"][0])
    assert deepest["metric"]["device"] == "d0002"  # type: ignore[index]
    assert float(deepest["value"][1]) == 3  # type: ignore[index]
    (overrun,) = answer(queries["Devices with the most audio overruns"][0])
    assert overrun["metric"]["device"] == "d0003"  # type: ignore[index]
    by_district = {
        r["metric"]["district"]: float(r["value"][1])  # type: ignore[index]
        for r in answer(queries["Devices reporting by district"][0])
    }
    assert by_district == {"seodaemun": 2, "jongno": 1}

"""Heartbeat counters to a time-series database, written behind the ingest's back.

The ingest calls :meth:`TelemetrySink.submit` after its database commit, from its writer thread.
That call only appends to a bounded in-memory queue and returns: it never waits on the network and
never raises. One writer thread takes the queue in batches (``batch_size`` points, or whatever is
there after ``flush_interval_s``) and writes each batch as InfluxDB line protocol through
``influxdb-client``'s synchronous write API, to InfluxDB 2.x or anything that speaks its
``/api/v2/write`` (VictoriaMetrics in the tests).

Rules this module keeps:

* **Drop oldest.** When the queue is full, the oldest queued point makes room for the new one and
  is counted in ``dropped``: after an outage the dashboard shows the fleet's latest state rather
  than the first minutes of the outage. Time series are a view for staff, never the record; the SQL
  store keeps each device's latest state, so nothing an alarm depends on is lost here.
* **Retry with back-off.** A batch that fails to write (connection refused, timeout, 5xx, 429,
  bad token) is retried after a delay doubling from ``retry_min_s`` to ``retry_max_s``, until it is
  written or the sink is closed. Meanwhile the queue keeps filling and, once full, drops oldest.
* **Refused data is not retried.** A 400/413/422 answer means the batch itself is bad; its points
  are counted in ``rejected`` and the writer goes on with the next batch.
* **Bad input loses nothing else.** A field that is not a finite number within int64 (or a bool,
  or unknown), or a point without a timezone, is left out and counted in ``invalid``; the other
  fields and points are written.
* **Structured, throttled logs.** The first failure is logged at once, later ones at most every
  ``log_every_s`` with the number suppressed; recovery is logged once.

Written shape (``heartbeat`` measurement, millisecond precision)::

    heartbeat,device=d0001,district=seodaemun,household=h0001 \\
        motion_count=3i,speech_s=12.5,... 17640...

(one line; broken here for width). VictoriaMetrics stores it as series
``heartbeat_motion_count{district=..,household=..,device=..}``, which
``docs/grafana/anbu-fleet.json`` queries.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collector.settings import CollectorSettings
    from firmware_config.messages import Heartbeat

logger = logging.getLogger(__name__)

MEASUREMENT = "heartbeat"
FIELDS = (
    "motion_count",
    "speech_s",
    "wake_word_count",
    "interactions",
    "button_presses",
    "uptime_s",
    "audio_overruns",
    "outbox_depth",
    "coalesced",
)
"""The heartbeat counters written; VictoriaMetrics names them ``heartbeat_<field>``."""
TAGS = ("district", "household", "device")
"""Tag (label) names of every point."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)
_TAG_ESCAPE = re.compile(r"([,= \\])")
_SAFE_TAG = re.compile(r"[^,= \\\r\n]+").fullmatch
_ESCAPED = r"\\\1"  # a backslash before the matched character
_FIELD_SET = frozenset(FIELDS)
_PERMANENT_STATUS = frozenset({400, 413, 422})


@dataclass(frozen=True, slots=True)
class HeartbeatPoint:
    """One heartbeat's counters, as the ingest stored them."""

    district: str
    household_id: str
    device_id: str
    at: dt.datetime
    """The corrected device time (UTC, timezone-aware)."""
    fields: Mapping[str, float | int]
    """Any of :data:`FIELDS`; others are left out and counted as invalid."""

    @classmethod
    def from_heartbeat(
        cls, district: str, household_id: str, device_id: str, at: dt.datetime, hb: Heartbeat
    ) -> HeartbeatPoint:
        """The point for a decoded :class:`~firmware_config.messages.Heartbeat`."""
        return cls(district, household_id, device_id, at, {f: getattr(hb, f) for f in FIELDS})


class TelemetrySink(Protocol):
    """Where the ingest sends heartbeat counters; every method returns promptly and never raises."""

    def submit(self, points: Sequence[HeartbeatPoint]) -> None:
        """Queue ``points``; when the queue is full the oldest are dropped and counted."""

    def health(self) -> dict[str, object]:
        """Counters: ``enabled``, ``queued``, ``written``, ``dropped``, ``failed_writes``...

        and ``last_error``."""

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (for at most ``timeout_s``), then stop."""


class NullTelemetrySink:
    """The sink when ``influx_url`` is unset: accepts everything, writes nothing."""

    def submit(self, points: Sequence[HeartbeatPoint]) -> None:
        return None

    def health(self) -> dict[str, object]:
        return {
            "enabled": False,
            "queued": 0,
            "written": 0,
            "dropped": 0,
            "failed_writes": 0,
            "last_error": None,
        }

    def close(self, timeout_s: float = 5.0) -> None:
        return None


class WriteRefused(Exception):
    """The server refused the data itself (HTTP 400/413/422): retrying would not help."""


class LineWriter(Protocol):
    """Sends one batch of line-protocol lines (millisecond timestamps); raises on failure."""

    def write(self, lines: bytes) -> None: ...

    def close(self) -> None: ...


class InfluxLineWriter:
    """:class:`LineWriter` over ``influxdb-client``'s synchronous write API (one POST per batch).

    The client's own urllib3 retries are off: :class:`InfluxTelemetrySink` decides when to retry.
    """

    def __init__(
        self, url: str, token: str | None, org: str, bucket: str, *, timeout_ms: int = 5000
    ) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(
            url=url, token=token or "", org=org, timeout=timeout_ms, retries=False
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: bytes) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(
                bucket=self.bucket,
                org=self.org,
                record=lines,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            if exc.status in _PERMANENT_STATUS:
                raise WriteRefused(f"HTTP {exc.status}: {str(exc.body)[:200]}") from exc
            raise

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


def _tag(name: str, value: object) -> str | None:
    """``name=value`` escaped for line protocol, or None when ``value`` cannot be a tag."""
    if type(value) is str and _SAFE_TAG(value):
        return f"{name}={value}"  # the usual case: an identifier, nothing to escape
    if not isinstance(value, str) or not value or "\n" in value or "\r" in value:
        return None
    return name + "=" + _TAG_ESCAPE.sub(_ESCAPED, value)


def _field(key: str, value: object) -> tuple[str | None, str | None]:
    """``(key=value in line protocol, None)`` or ``(None, why it is left out)``."""
    kind = type(value)
    if kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
            return f"{key}={value}i", None
        return None, f"{key}={value} is outside int64"
    if kind is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            return f"{key}={value!r}", None
        return None, f"{key}={value!r} is not finite"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{key}={value!r} is not a number"
    return _field(key, int(value) if isinstance(value, int) else float(value))  # subclasses


def encode_point(point: HeartbeatPoint) -> tuple[str | None, list[str]]:
    """One line of line protocol for ``point`` (or None) and the reasons anything was left out."""
    tags = []
    for name, tag_value in (  # sorted by key, as InfluxDB prefers
        ("device", point.device_id),
        ("district", point.district),
        ("household", point.household_id),
    ):
        tag = _tag(name, tag_value)
        if tag is None:
            return None, [f"tag {name}={tag_value!r} must be a non-empty single-line string"]
        tags.append(tag)
    at = point.at
    if not isinstance(at, dt.datetime) or at.tzinfo is None or at.utcoffset() is None:
        return None, [f"at={at!r} must be a timezone-aware datetime"]
    try:
        fields = point.fields.items()
    except AttributeError:
        return None, [f"fields={point.fields!r} must be a mapping"]
    parts: list[str] = []
    problems: list[str] = []
    for key, value in fields:
        if key not in _FIELD_SET:
            problems.append(f"unknown field {key!r}")
            continue
        kind = type(value)  # fast paths for plain int and float; _field handles the rest
        if kind is int and _INT64_MIN <= value <= _INT64_MAX:
            parts.append(f"{key}={value}i")
            continue
        if kind is float and value - value == 0:  # finite: inf - inf and nan - nan are nan
            parts.append(f"{key}={value!r}")
            continue
        part, problem = _field(key, value)
        if part is not None:
            parts.append(part)
        else:
            problems.append(str(problem))
    if not parts:
        return None, [*problems, "no valid field left"]
    ms = (at - _EPOCH) // _MS
    return f"{MEASUREMENT},{','.join(tags)} {','.join(parts)} {ms}", problems


class _Throttle:
    """Lets a log line through at most every ``every_s``; counts what it held back."""

    def __init__(self, every_s: float, clock: Callable[[], float]) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self.suppressed = 0

    def allow(self) -> int | None:
        """None to stay quiet; else the number suppressed since the last line (then reset)."""
        now = self._clock()
        if self._last is not None and now - self._last < self.every_s:
            self.suppressed += 1
            return None
        self._last = now
        held, self.suppressed = self.suppressed, 0
        return held


class InfluxTelemetrySink:
    """:class:`TelemetrySink` with a bounded queue in front of one writer thread.

    Example::

        sink = InfluxTelemetrySink(InfluxLineWriter(url, token, "anbu", "anbu"))
        sink.submit([HeartbeatPoint("seodaemun", "h0001", "d0001", at, {"motion_count": 3})])
        sink.health()   # {"enabled": True, "queued": 1, "written": 0, ...}
        sink.close()    # writes what is queued, then stops
    """

    def __init__(
        self,
        writer: LineWriter,
        *,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        queue_max: int = 100_000,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        log_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1 or queue_max < 1 or flush_interval_s <= 0:
            raise ValueError(
                f"batch_size={batch_size}, queue_max={queue_max} must be >= 1 and "
                f"flush_interval_s={flush_interval_s} > 0"
            )
        if not 0 < retry_min_s <= retry_max_s:
            raise ValueError(f"need 0 < retry_min_s={retry_min_s} <= retry_max_s={retry_max_s}")
        self._writer = writer
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.queue_max = queue_max
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        self._cond = threading.Condition()
        self._stopped = threading.Event()  # set by close(): no more waiting for a full batch
        self._give_up_at: float | None = None  # close()'s deadline for the writer
        # Guarded by self._cond:
        self._queue: collections.deque[HeartbeatPoint] = collections.deque()
        self._in_flight = 0
        self._written = 0
        self._dropped = 0
        self._invalid = 0
        self._rejected = 0
        self._failed_writes = 0
        self._last_error: str | None = None
        self._last_write_at: dt.datetime | None = None
        self._failing = False
        self._fail_log = _Throttle(log_every_s, clock)
        self._drop_log = _Throttle(log_every_s, clock)
        self._invalid_log = _Throttle(log_every_s, clock)
        self._thread = threading.Thread(target=self._run, name="anbu-telemetry", daemon=True)
        self._thread.start()

    # --- caller side (the ingest's writer thread) ---
    def submit(self, points: Sequence[HeartbeatPoint]) -> None:
        try:
            with self._cond:
                if self._stopped.is_set():
                    self._dropped += len(points)
                    return
                overflow = len(self._queue) + len(points) - self.queue_max
                if overflow > 0:
                    for _ in range(min(overflow, len(self._queue))):
                        self._queue.popleft()
                    self._dropped += overflow
                    points = points[-self.queue_max :]
                    held = self._drop_log.allow()
                else:
                    held = None
                before = len(self._queue)
                self._queue.extend(points)
                if before < self.batch_size <= len(self._queue):
                    self._cond.notify()
                dropped = self._dropped
            if held is not None:
                logger.warning(
                    "telemetry queue full: dropping the oldest points",
                    extra={
                        "event": "telemetry_dropped",
                        "dropped_total": dropped,
                        "queue_max": self.queue_max,
                        "suppressed": held,
                    },
                )
        except Exception:  # the promise is "never raises": an alarm path calls this
            logger.exception("telemetry submit failed", extra={"event": "telemetry_submit_failed"})

    def health(self) -> dict[str, object]:
        with self._cond:
            return {
                "enabled": True,
                "queued": len(self._queue),
                "in_flight": self._in_flight,
                "written": self._written,
                "dropped": self._dropped,
                "invalid": self._invalid,
                "rejected": self._rejected,
                "failed_writes": self._failed_writes,
                "last_error": self._last_error,
                "last_write_at": None
                if self._last_write_at is None
                else self._last_write_at.isoformat(timespec="milliseconds"),
                "writing": self._thread.is_alive(),
                "queue_max": self.queue_max,
            }

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued for at most ``timeout_s``; points still left then are dropped."""
        with self._cond:
            if self._give_up_at is not None:
                return  # closed already
            self._give_up_at = self._clock() + max(0.0, timeout_s)
            self._stopped.set()
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout_s) + 1.0)
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
            self._dropped += left
        try:
            self._writer.close()
        except Exception as exc:
            logger.warning(
                "telemetry writer did not close cleanly",
                extra={"event": "telemetry_close_failed", "error": str(exc)},
            )
        logger.info(
            "telemetry sink closed",
            extra={"event": "telemetry_closed", **self.health(), "dropped_at_close": left},
        )

    # --- writer thread ---
    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._write(batch)
            except Exception:  # a bug here must not end the thread silently
                logger.exception("telemetry writer failed", extra={"event": "telemetry_bug"})
                with self._cond:
                    self._dropped += len(batch)
                    self._in_flight = 0

    def _next_batch(self) -> list[HeartbeatPoint] | None:
        with self._cond:
            deadline = self._clock() + self.flush_interval_s
            while len(self._queue) < self.batch_size and not self._stopped.is_set():
                left = deadline - self._clock()
                if left <= 0:
                    break
                self._cond.wait(left)
            if not self._queue:
                return None if self._stopped.is_set() else []
            if self._stopped.is_set() and self._past_deadline():
                return None
            count = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            self._in_flight = count
            return batch

    def _past_deadline(self) -> bool:
        return self._give_up_at is not None and self._clock() >= self._give_up_at

    def _write(self, batch: list[HeartbeatPoint]) -> None:
        if not batch:
            return
        body = self._encode(batch)
        if body is None:
            with self._cond:
                self._in_flight = 0
            return
        lines, count = body
        delay_s = self.retry_min_s
        while True:
            try:
                self._writer.write(lines)
            except WriteRefused as exc:
                self._refused(count, exc)
                return
            except Exception as exc:
                if not self._failed(exc, count, delay_s):
                    return
                if self._stopped.is_set():
                    self._sleep_capped(delay_s)
                else:
                    self._stopped.wait(delay_s)  # close() cuts the wait short: one more try
                delay_s = min(self.retry_max_s, delay_s * 2)
                continue
            self._succeeded(count)
            return

    def _sleep_capped(self, delay_s: float) -> None:
        """While closing, wait for the retry but never past close()'s deadline."""
        if self._give_up_at is not None:
            delay_s = min(delay_s, max(0.0, self._give_up_at - self._clock()))
        time.sleep(delay_s)

    def _encode(self, batch: Iterable[HeartbeatPoint]) -> tuple[bytes, int] | None:
        lines: list[str] = []
        invalid = 0
        first_problem: str | None = None
        for point in batch:
            try:
                line, problems = encode_point(point)
            except Exception as exc:  # a point so odd that encoding itself fails
                line, problems = None, [f"cannot encode: {exc!r}"]
            if problems:
                invalid += 1
                first_problem = first_problem or f"{getattr(point, 'device_id', '?')}: {problems}"
            if line is not None:
                lines.append(line)
        if invalid:
            with self._cond:
                self._invalid += invalid
                held = self._invalid_log.allow()
            if held is not None:
                logger.warning(
                    "telemetry points with invalid values: those values are left out",
                    extra={
                        "event": "telemetry_invalid",
                        "points": invalid,
                        "example": first_problem,
                        "suppressed": held,
                    },
                )
        if not lines:
            return None
        return ("\n".join(lines)).encode("utf-8"), len(lines)

    def _failed(self, exc: Exception, count: int, delay_s: float) -> bool:
        """Record a failed attempt; False when the sink is closing and its deadline has passed."""
        error = f"{type(exc).__name__}: {exc}"[:300]
        with self._cond:
            self._failed_writes += 1
            self._last_error = error
            self._failing = True
            give_up = self._stopped.is_set() and self._past_deadline()
            if give_up:
                self._dropped += count
                self._in_flight = 0
            held = self._fail_log.allow()
            failed = self._failed_writes
        if held is not None:
            logger.warning(
                "telemetry write failed; retrying with back-off",
                extra={
                    "event": "telemetry_write_failed",
                    "error": error,
                    "points": count,
                    "retry_in_s": None if give_up else delay_s,
                    "failed_writes": failed,
                    "suppressed": held,
                },
            )
        return not give_up

    def _refused(self, count: int, exc: WriteRefused) -> None:
        with self._cond:
            self._rejected += count
            self._failed_writes += 1
            self._last_error = f"refused: {exc}"[:300]
            self._in_flight = 0
            held = self._fail_log.allow()
        if held is not None:
            logger.error(
                "telemetry server refused a batch; its points are discarded",
                extra={"event": "telemetry_refused", "error": str(exc), "points": count},
            )

    def _succeeded(self, count: int) -> None:
        with self._cond:
            self._written += count
            self._in_flight = 0
            self._last_write_at = dt.datetime.now(dt.UTC)
            recovered, self._failing = self._failing, False
            written = self._written
        if recovered:
            logger.info(
                "telemetry writes resumed",
                extra={"event": "telemetry_recovered", "written": written},
            )


def telemetry_from_settings(settings: CollectorSettings) -> TelemetrySink:
    """An :class:`InfluxTelemetrySink` if ``influx_url`` is set, else :class:`NullTelemetrySink`."""
    if not settings.influx_url:
        return NullTelemetrySink()
    writer = InfluxLineWriter(
        settings.influx_url,
        settings.influx_token,
        settings.influx_org,
        settings.influx_bucket,
        timeout_ms=settings.influx_timeout_ms,
    )
    return InfluxTelemetrySink(
        writer,
        batch_size=settings.influx_batch_size,
        flush_interval_s=settings.influx_flush_interval_ms / 1000,
        queue_max=settings.influx_queue_max,
        retry_max_s=settings.influx_retry_max_s,
    )

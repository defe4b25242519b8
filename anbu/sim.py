"""``anbu sim``: a fleet of simulated homes on a real broker, for load tests and the demo.

    anbu sim --homes 10000 --broker mqtt://127.0.0.1:1883 --username simulator --password ...

Home ``hNNNN`` has device ``dNNNN`` in ``--district``, the naming of
``collector.store.seed.seed_district``, so a collector seeded with the same district knows every
simulated device. Each device publishes what the real agent publishes, built from
``firmware_config``: a retained ``State`` (online at start, offline at the end), a ``Heartbeat``
every ``--heartbeat-interval-s`` (jittered, with counters following the resident's day, see
:mod:`anbu.activity`) and, at ``--sos-per-home-day``, an ``SosEvent`` that is held and re-sent
every ``--sos-resend-s`` (same message id) until the collector's ``cmd/sos_ack`` arrives.
A ``cmd/checkin`` (a quiet home) is answered as the agent would: with a phrase of the phrase
file's ``checkin`` list if the resident is awake and hears it, else ``answered=false`` when the
listening ends, or ``expired=true`` at once for a request past its ``expires_ts``.

Many homes share one process: ``--connections`` paho MQTT v5 clients (default one per 2,000
homes, at most 8), each with a network thread and one scheduler thread serving its slice of the
homes from a heap of due times. Heartbeats are QoS 1; while a connection is down, or more than
``10 × --max-in-flight`` of its messages await a PUBACK, a home's heartbeats are coalesced as the
real agent does (counters summed, ``coalesced`` counts the merged ones).

Time: ``--rate-multiplier M`` runs the simulated day M times faster (heartbeats, activity and SOS
all scale), starting at ``--start`` (default now). ``device_ts`` stays this machine's wall clock so
the collector sees plausible device times; ``interval_s`` and the counters cover simulated time.

The broker user needs the rules of :func:`firmware_config.acl.simulator_acls` (publish for every
home, read every command); :func:`simulator_acl` prints the ``mosquitto_ctrl`` commands.

Output: structured progress lines (stderr, every ``--progress-s``) and, last, one JSON line on
stdout: heartbeats sent per second, SOS sent/re-sent/acknowledged, ack latency p50/p99 and the
conditions. Importable for benchmarks: ``Simulator(SimSettings(...)).run(seconds)``.

The resident model is :mod:`anbu.activity` (pure); one connection and its scheduler are
:mod:`anbu.sim_connection`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.resources
import json
import logging
import math
import os
import platform
import random
import signal
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from anbu.activity import resident_for
from anbu.sim_connection import Connection, Counters, Home, SimClock, Source
from firmware_config.acl import simulator_acls
from firmware_config.errors import ContractError
from firmware_config.topics import Channel, DeviceAddress, validate_id

log = logging.getLogger("anbu.sim")

HOMES_PER_CONNECTION = 2000
MAX_AUTO_CONNECTIONS = 8


def household_id(number: int) -> str:
    """``h0001`` for 1: the naming of ``collector.store.seed.household_id``."""
    return f"h{number:04d}"


def device_id(number: int) -> str:
    """``d0001`` for 1: ``collector.store.seed.device_id_for(household_id(number))``."""
    return f"d{number:04d}"


def simulator_acl(user: str = "simulator") -> str:
    """``mosquitto_ctrl`` commands giving ``user`` the rules of
    :func:`firmware_config.acl.simulator_acls` on a broker with dynamic security."""
    lines = [
        f"mosquitto_ctrl dynsec createClient {user}",
        f"mosquitto_ctrl dynsec createRole {user}",
        *(
            f"mosquitto_ctrl dynsec addRoleACL {user} {a['acltype']} '{a['topic']}' allow"
            for a in simulator_acls()
        ),
        f"mosquitto_ctrl dynsec addClientRole {user} {user}",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Everything ``anbu sim`` is told; times in seconds unless the name says otherwise."""

    homes: int
    broker_url: str
    """``mqtt://host:1883`` or ``mqtts://host:8883``."""
    district: str = "seodaemun"
    first_home: int = 1
    """Number of the first home (``h0001``): several simulators can split one district."""
    connections: int = 0
    """MQTT connections; 0 picks one per 2,000 homes, at most 8."""
    heartbeat_interval_s: float = 60.0
    """Simulated seconds between a home's heartbeats."""
    jitter: float = 0.1
    """Each interval varies by up to this fraction, so homes do not beat in step."""
    rate_multiplier: float = 1.0
    """Simulated seconds per real second."""
    sos_per_home_day: float = 0.0
    """Mean SOS per home per simulated day (0: only :meth:`Simulator.press_sos`)."""
    sos_resend_s: float = 15.0
    """Real seconds between re-sends of an SOS not yet acknowledged (the agent's default)."""
    start_at: dt.datetime | None = None
    """Simulated time at the start (aware); None: now."""
    seed: int = 7
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 60
    max_in_flight: int = 200
    """QoS 1 messages each connection may have awaiting PUBACK."""
    publish_state: bool = True
    """Retained online state per home at start, offline at the end."""
    progress_s: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.broker_url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(
                f"broker_url={self.broker_url!r} must look like mqtt://host:1883 or mqtts://host"
            )
        checks = (
            ("homes", self.homes >= 1),
            ("first_home", self.first_home >= 1),
            ("connections", self.connections >= 0),
            ("heartbeat_interval_s", self.heartbeat_interval_s >= 1),
            ("jitter", 0 <= self.jitter < 1),
            ("rate_multiplier", 0 < self.rate_multiplier <= 100_000),
            ("sos_per_home_day", self.sos_per_home_day >= 0),
            ("sos_resend_s", self.sos_resend_s > 0),
            ("keepalive_s", self.keepalive_s >= 5),
            ("max_in_flight", self.max_in_flight >= 1),
            ("progress_s", self.progress_s > 0),
        )
        for name, ok in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range")
        validate_id("district", self.district)
        if self.start_at is not None and self.start_at.tzinfo is None:
            raise ValueError(f"start_at={self.start_at!r} needs a timezone")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}={str(path)!r} is not a file")

    @property
    def host(self) -> str:
        return urlsplit(self.broker_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.broker_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.broker_url).scheme == "mqtts"

    @property
    def connection_count(self) -> int:
        if self.connections:
            return min(self.connections, self.homes)
        return max(1, min(MAX_AUTO_CONNECTIONS, math.ceil(self.homes / HOMES_PER_CONNECTION)))


@dataclass(frozen=True, slots=True)
class SimSummary:
    """The run's figures and conditions; :meth:`to_json` is the final output line."""

    homes: int
    connections: int
    seconds: float
    simulated_s: float
    rate_multiplier: float
    heartbeats_sent: int
    heartbeats_per_s: float
    heartbeats_coalesced: int
    states_sent: int
    puback: int
    publish_refused: int
    sos_sent: int
    sos_resent: int
    sos_acked: int
    sos_pending: int
    ack_latency_p50_ms: float | None
    ack_latency_p99_ms: float | None
    ack_latency_max_ms: float | None
    connects: int
    disconnects: int
    bad_commands: int
    checkins_received: int
    checkins_answered: int
    checkins_unanswered: int
    checkins_expired: int
    district: str
    first_home: int
    heartbeat_interval_s: float
    sos_per_home_day: float
    seed: int
    broker: str
    machine: str
    cpus: int | None
    python: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` 0.5 for the median); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _load_phrases() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(SOS phrases, check-in answers) of the Korean phrase file."""
    text = importlib.resources.files("firmware_config").joinpath("phrases/ko.toml").read_text()
    table = tomllib.loads(text)
    return tuple(table["sos"]) or ("살려 주세요",), tuple(table.get("checkin", ())) or ("네",)


class Simulator:
    """N simulated homes on a few MQTT connections.

    Example (a benchmark's load generator)::

        sim = Simulator(SimSettings(homes=10_000, broker_url=broker.url, username="simulator",
                                    password="...", rate_multiplier=60))
        summary = sim.run(seconds=30)
        summary.heartbeats_per_s

    or ``sim.start()`` … ``sim.press_sos(1)`` … ``sim.stop()`` to drive it from a test.
    """

    def __init__(
        self,
        settings: SimSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self._wall = wall
        start_s = settings.start_at.timestamp() if settings.start_at is not None else wall()
        self.clock = SimClock(start_s, settings.rate_multiplier, monotonic())
        self._started_at: float | None = None
        self._stopped_summary: SimSummary | None = None
        phrases, checkin_phrases = _load_phrases()
        rng = random.Random(f"anbu-sim-boot:{settings.seed}")  # noqa: S311
        seq_base = int(wall())  # a later run's seq numbers follow this one's
        homes = []
        for number in range(settings.first_home, settings.first_home + settings.homes):
            address = DeviceAddress(settings.district, household_id(number), device_id(number))
            homes.append(
                Home(
                    number=number,
                    address=address,
                    resident=resident_for(settings.seed, number),
                    heartbeat_topic=address.topic(Channel.HEARTBEAT),
                    sos_topic=address.topic(Channel.SOS),
                    state_topic=address.topic(Channel.STATE),
                    checkin_answer_topic=address.topic(Channel.CHECKIN_ANSWER),
                    seq=seq_base,
                    boot_at=start_s - rng.uniform(600, 30 * 86400),
                    last_heartbeat_at=start_s,
                )
            )
        self._homes = {h.number: h for h in homes}
        count = settings.connection_count
        size = math.ceil(len(homes) / count)
        self.connections = [
            Connection(
                k,
                homes[k * size : (k + 1) * size],
                settings,
                self.clock,
                phrases,
                checkin_phrases=checkin_phrases,
                monotonic=monotonic,
                wall=wall,
            )
            for k in range(count)
            if homes[k * size : (k + 1) * size]
        ]
        self._owner = {h.number: c for c in self.connections for h in c.homes}

    def start(self) -> None:
        if self._started_at is not None:
            raise RuntimeError("Simulator.start() called twice")
        self._started_at = self._monotonic()
        self.clock.origin = self._started_at
        for connection in self.connections:
            connection.start()
        log.info(
            "simulator started",
            extra={
                "event": "sim_started",
                "homes": self.settings.homes,
                "connections": len(self.connections),
                "broker": self.settings.broker_url,
                "rate_multiplier": self.settings.rate_multiplier,
            },
        )

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        """True once every connection has its CONNACK."""
        deadline = self._monotonic() + timeout_s
        while self._monotonic() < deadline:
            if all(c.is_connected for c in self.connections):
                return True
            time.sleep(0.01)
        return False

    def press_sos(self, home_number: int, source: Source = "button") -> None:
        """Make home ``home_number`` send an SOS now (then held and re-sent until acked)."""
        home = self._homes.get(home_number)
        if home is None:
            raise ValueError(f"home {home_number} is not simulated here")
        self._owner[home_number].press_sos(home, source)

    def pending_sos(self) -> list[str]:
        """Message ids of SOS events not yet acknowledged."""
        return [m for c in self.connections for m in c.pending_ids()]

    def summary(self) -> SimSummary:
        """The figures so far (or, after :meth:`stop`, of the whole run)."""
        if self._stopped_summary is not None:
            return self._stopped_summary
        totals = Counters()
        pending = 0
        for connection in self.connections:
            counters, held = connection.snapshot()
            pending += held
            for name, value in asdict(counters).items():
                if name == "latencies_s":
                    totals.latencies_s.extend(value)
                else:
                    setattr(totals, name, getattr(totals, name) + value)
        elapsed = 0.0 if self._started_at is None else self._monotonic() - self._started_at
        latencies_ms = [s * 1000 for s in totals.latencies_s]

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        settings = self.settings
        return SimSummary(
            homes=settings.homes,
            connections=len(self.connections),
            seconds=round(elapsed, 3),
            simulated_s=round(elapsed * settings.rate_multiplier, 1),
            rate_multiplier=settings.rate_multiplier,
            heartbeats_sent=totals.heartbeats_sent,
            heartbeats_per_s=round(totals.heartbeats_sent / elapsed, 1) if elapsed else 0.0,
            heartbeats_coalesced=totals.heartbeats_coalesced,
            states_sent=totals.states_sent,
            puback=totals.puback,
            publish_refused=totals.publish_refused,
            sos_sent=totals.sos_sent,
            sos_resent=totals.sos_resent,
            sos_acked=totals.sos_acked,
            sos_pending=pending,
            ack_latency_p50_ms=ms(percentile(latencies_ms, 0.5)),
            ack_latency_p99_ms=ms(percentile(latencies_ms, 0.99)),
            ack_latency_max_ms=ms(max(latencies_ms, default=None)),
            connects=totals.connects,
            disconnects=totals.disconnects,
            bad_commands=totals.bad_commands,
            checkins_received=totals.checkins_received,
            checkins_answered=totals.checkins_answered,
            checkins_unanswered=totals.checkins_unanswered,
            checkins_expired=totals.checkins_expired,
            district=settings.district,
            first_home=settings.first_home,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            sos_per_home_day=settings.sos_per_home_day,
            seed=settings.seed,
            broker=settings.broker_url,
            machine=platform.node(),
            cpus=os.cpu_count(),
            python=platform.python_version(),
        )

    def stop(self, timeout_s: float = 5.0) -> SimSummary:
        """Stop publishing, send the offline states, disconnect; return the run's summary."""
        if self._stopped_summary is not None:
            return self._stopped_summary
        deadline = self._monotonic() + timeout_s
        for connection in self.connections:
            connection.halt(deadline)
        summary = self.summary()  # the figures of the run itself, before the offline states
        for connection in self.connections:
            connection.close(deadline)
        self._stopped_summary = summary
        log.info("simulator stopped", extra={"event": "sim_stopped", **asdict(summary)})
        return summary

    def run(self, seconds: float, stop_event: threading.Event | None = None) -> SimSummary:
        """Start, run ``seconds`` (0: until ``stop_event``) with progress lines, stop."""
        stop_event = stop_event or threading.Event()
        self.start()
        began = self._monotonic()
        next_progress = began + self.settings.progress_s
        try:
            while not stop_event.is_set():
                now = self._monotonic()
                if seconds and now - began >= seconds:
                    break
                if now >= next_progress:
                    self._progress()
                    next_progress += self.settings.progress_s
                left = [next_progress - now]
                if seconds:
                    left.append(began + seconds - now)
                stop_event.wait(max(0.0, min(left)))
        finally:
            summary = self.stop()
        return summary

    def _progress(self) -> None:
        s = self.summary()
        log.info(
            "simulator progress",
            extra={
                "event": "sim_progress",
                "seconds": s.seconds,
                "heartbeats_sent": s.heartbeats_sent,
                "heartbeats_per_s": s.heartbeats_per_s,
                "heartbeats_coalesced": s.heartbeats_coalesced,
                "sos_sent": s.sos_sent,
                "sos_acked": s.sos_acked,
                "sos_pending": s.sos_pending,
                "publish_refused": s.publish_refused,
                "connected": sum(c.is_connected for c in self.connections),
            },
        )


# --- command line ---


def parse_args(argv: Sequence[str]) -> tuple[SimSettings, float, str]:
    """``(settings, seconds to run, log level)`` from the command line; exits 2 on bad input."""
    p = argparse.ArgumentParser(
        prog="anbu sim",
        description="Simulate a district of homes publishing heartbeats and SOS to a broker.",
    )
    p.add_argument("--homes", type=int, required=True, help="simulated homes (hNNNN/dNNNN)")
    p.add_argument("--broker", required=True, help="mqtt://host:1883 or mqtts://host:8883")
    p.add_argument("--district", default="seodaemun", help="district id (default seodaemun)")
    p.add_argument("--first-home", type=int, default=1, help="number of the first home (1)")
    p.add_argument("--connections", type=int, default=0, help="MQTT connections (0: auto)")
    p.add_argument("--heartbeat-interval-s", type=float, default=60.0, help="simulated s (60)")
    p.add_argument("--jitter", type=float, default=0.1, help="interval jitter fraction (0.1)")
    p.add_argument(
        "--rate-multiplier", type=float, default=1.0, help="simulated seconds per real second (1)"
    )
    p.add_argument("--sos-per-home-day", type=float, default=0.0, help="mean SOS rate (0)")
    p.add_argument("--sos-resend-s", type=float, default=15.0, help="re-send unacked SOS (15)")
    p.add_argument("--start", help="simulated start time, ISO 8601 with offset (default now)")
    p.add_argument("--seconds", type=float, default=0.0, help="run this long (0: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--username", help="broker user (see the ACL in docs/simulator.md)")
    p.add_argument("--password", help="or set ANBU_SIM_PASSWORD")
    p.add_argument("--ca-file", type=Path, help="CA for mqtts://")
    p.add_argument("--cert-file", type=Path, help="client certificate for mqtts://")
    p.add_argument("--key-file", type=Path, help="client key for mqtts://")
    p.add_argument("--max-in-flight", type=int, default=200, help="per connection (200)")
    p.add_argument("--no-state", action="store_true", help="publish no online/offline states")
    p.add_argument("--progress-s", type=float, default=10.0, help="progress line interval (10)")
    p.add_argument("--log-level", default="INFO", help="structured log level (INFO)")
    args = p.parse_args(argv)
    if args.seconds < 0:
        p.error("--seconds must be 0 (until Ctrl-C) or more")
    start_at = None
    if args.start:
        try:
            start_at = dt.datetime.fromisoformat(args.start)
        except ValueError:
            p.error(f"--start {args.start!r} is not an ISO 8601 time")
        if start_at.tzinfo is None:
            p.error(f"--start {args.start!r} needs an offset, e.g. 2026-12-01T08:00+09:00")
    try:
        settings = SimSettings(
            homes=args.homes,
            broker_url=args.broker,
            district=args.district,
            first_home=args.first_home,
            connections=args.connections,
            heartbeat_interval_s=args.heartbeat_interval_s,
            jitter=args.jitter,
            rate_multiplier=args.rate_multiplier,
            sos_per_home_day=args.sos_per_home_day,
            sos_resend_s=args.sos_resend_s,
            start_at=start_at,
            seed=args.seed,
            username=args.username,
            password=args.password or os.environ.get("ANBU_SIM_PASSWORD"),
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            max_in_flight=args.max_in_flight,
            publish_state=not args.no_state,
            progress_s=args.progress_s,
        )
    except (ValueError, ContractError) as exc:
        flag = str(exc).split("=", 1)[0].replace("_", "-")
        p.error(f"--{flag}: {exc}")
    return settings, args.seconds, args.log_level


def main(argv: Sequence[str] | None = None) -> int:
    settings, seconds, level = parse_args(list(sys.argv[1:] if argv is None else argv))
    from anbu import logs

    logs.setup(level.upper())
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    summary = Simulator(settings).run(seconds, stop)
    print(summary.to_json(), flush=True)
    if summary.connects == 0:
        log.error(
            "never connected to the broker: check --broker, the credentials and TLS options",
            extra={"event": "sim_never_connected", "broker": settings.broker_url},
        )
        return 1
    return 0

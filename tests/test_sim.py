"""The fleet simulator: its resident model (pure) and runs against a real Mosquitto.

The broker's other side is ``tests.support.mqtt_client.TestClient`` acting as the collector: it
decodes what the simulator sends with the contract and sends ``cmd/sos_ack`` like the collector.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from anbu.activity import (
    checkin_reply,
    counts_between,
    is_awake,
    local_hour,
    poisson,
    rates_at,
    resident_for,
)
from anbu.sim import SimSettings, SimSummary, Simulator, device_id, household_id
from collector.store.db import Database
from collector.store.models import DeadLetter, Device, Dispatch
from collector.store.seed import device_id_for, seed_district
from collector.store.seed import household_id as seed_household_id
from firmware_config.acl import simulator_acls
from firmware_config.checkin import (
    CheckinAnswer,
    CheckinRequest,
    checkin_command_topic,
    decode_checkin_answer,
    parse_checkin_topic,
)
from firmware_config.messages import (
    Heartbeat,
    SosAck,
    SosEvent,
    State,
    decode_device_message,
    new_message_id,
)
from firmware_config.topics import Channel, Command, DeviceAddress, parse
from tests.e2e.processes import collector_env, free_port, start_collector
from tests.support.certs import make_cert_bundle
from tests.support.fixtures import sms_gateway, smtp_server  # noqa: F401
from tests.support.mosquitto import COLLECTOR_USER, Broker, anbu_acl, anbu_users, start_broker
from tests.support.mqtt_client import TestClient
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

SIM_USER, SIM_PASSWORD = "simulator", "simulator-secret"
KST = dt.timezone(dt.timedelta(hours=9))
MORNING = dt.datetime(2026, 12, 1, 8, 0, tzinfo=KST)


@pytest.fixture
def sim_broker(tmp_path: Path) -> Iterator[Broker]:
    """The Anbu rules plus the simulator user's (:func:`firmware_config.acl.simulator_acls`)."""
    instance = start_broker(
        tmp_path / "broker",
        users={**anbu_users(), SIM_USER: SIM_PASSWORD},
        acl=anbu_acl(COLLECTOR_USER, extra={SIM_USER: simulator_acls()}),
    )
    try:
        yield instance
    finally:
        instance.kill()


def settings(broker: Broker, **overrides: object) -> SimSettings:
    values: dict[str, object] = {
        "homes": 10,
        "broker_url": broker.url,
        "username": SIM_USER,
        "password": SIM_PASSWORD,
        "start_at": MORNING,
        "progress_s": 0.5,
    }
    values.update(overrides)
    return SimSettings(**values)  # type: ignore[arg-type]


def run_in_thread(sim: Simulator, seconds: float) -> tuple[threading.Thread, list[SimSummary]]:
    out: list[SimSummary] = []
    thread = threading.Thread(target=lambda: out.append(sim.run(seconds)), daemon=True)
    thread.start()
    return thread, out


# --- naming and the resident model (pure) ---


@pytest.mark.parametrize("number", [1, 42, 9999, 10_000, 123_456])
def test_homes_are_named_like_the_seeded_district(number: int) -> None:
    assert household_id(number) == seed_household_id(number)
    assert device_id(number) == device_id_for(seed_household_id(number))


def test_residents_are_the_same_for_the_same_seed_and_differ_between_homes() -> None:
    assert resident_for(7, 12) == resident_for(7, 12)
    assert resident_for(7, 12) != resident_for(8, 12)
    residents = [resident_for(7, n) for n in range(1, 201)]
    assert len(set(residents)) == 200
    assert all(5 <= r.wake_h <= 7.5 and 20.5 <= r.bed_h <= 23 for r in residents)


def test_asleep_at_night_active_in_the_morning() -> None:
    rng = random.Random(1)
    day = dt.datetime(2026, 12, 1, tzinfo=KST)

    def mean_minute(hour: float, field: str) -> float:
        totals = []
        for n in range(1, 301):
            resident = resident_for(7, n)
            at = (
                day + dt.timedelta(hours=resident.wake_h + hour if hour < 12 else hour)
            ).timestamp()
            counts = counts_between(rng, resident, at, at + 60)
            totals.append(float(getattr(counts, field)))
        return statistics.fmean(totals)

    night_motion = mean_minute(15 + 12, "motion_count")  # 03:00
    morning_motion = mean_minute(1, "motion_count")  # an hour after waking
    nap_motion = mean_minute(14, "motion_count")
    assert morning_motion > 10 * night_motion
    assert morning_motion > 2 * nap_motion > 0
    assert mean_minute(15 + 12, "speech_s") == 0  # nobody talks in their sleep here
    assert mean_minute(1, "speech_s") > 1
    assert 0.15 < morning_motion < 0.4  # about 14 episodes an hour


def test_a_long_interval_follows_the_shape_of_the_day() -> None:
    resident = resident_for(7, 3)
    day = dt.datetime(2026, 12, 1, tzinfo=KST).timestamp()
    rng = random.Random(2)
    night = [counts_between(rng, resident, day, day + 4 * 3600) for _ in range(200)]
    awake_start = day + (resident.wake_h + 0.5) * 3600
    morning = [
        counts_between(rng, resident, awake_start, awake_start + 4 * 3600) for _ in range(200)
    ]
    night_motion = statistics.fmean(c.motion_count for c in night)
    assert night_motion == pytest.approx(0.3 * resident.activity * 4, rel=0.25)  # night toilet
    assert statistics.fmean(c.motion_count for c in morning) > 10 * night_motion
    assert all(c.speech_s <= 4 * 3600 for c in morning)
    assert rates_at(resident, local_hour(day + 3 * 3600)) == (0.3 * resident.activity, 0.0)


def test_poisson_draws_have_the_asked_mean() -> None:
    rng = random.Random(3)
    for mean in (0.2, 3.0, 80.0):
        draws = [poisson(rng, mean) for _ in range(20_000)]
        assert abs(statistics.fmean(draws) - mean) < 0.05 * mean + 0.02
    assert poisson(rng, 0) == 0


def test_a_check_in_is_answered_only_by_an_awake_resident() -> None:
    rng = random.Random(3)
    night = (dt.datetime(2026, 12, 1, 3, 0, tzinfo=KST)).timestamp()
    residents = [resident_for(7, n) for n in range(1, 201)]
    assert all(checkin_reply(rng, r, night, 60) is None for r in residents)
    replies = [checkin_reply(rng, r, MORNING.timestamp() + 3600, 60) for r in residents * 5]
    heard = [s for s in replies if s is not None]
    assert 0.8 < len(heard) / len(replies) < 0.97  # awake, but one in ten missed it
    assert all(2 <= s <= 15 for s in heard)
    # Listening shorter than anyone takes to answer: nobody is heard.
    assert all(checkin_reply(rng, r, MORNING.timestamp(), 1.5) is None for r in residents)


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="homes"):
        SimSettings(homes=0, broker_url="mqtt://127.0.0.1:1883")
    with pytest.raises(ValueError, match="broker_url"):
        SimSettings(homes=1, broker_url="http://127.0.0.1")
    with pytest.raises(ValueError, match="rate_multiplier"):
        SimSettings(homes=1, broker_url="mqtt://h", rate_multiplier=0)
    with pytest.raises(ValueError, match="district"):
        SimSettings(homes=1, broker_url="mqtt://h", district="Seo Daemun")
    with pytest.raises(ValueError, match="ca_file"):
        SimSettings(homes=1, broker_url="mqtts://h", ca_file=Path("/nonexistent/ca.pem"))
    auto = SimSettings(homes=10_001, broker_url="mqtt://h")
    assert auto.connection_count == 6
    assert SimSettings(homes=3, broker_url="mqtt://h", connections=8).connection_count == 3


def test_the_command_line_refuses_bad_arguments_with_the_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anbu", "sim", "--homes", "0", "--broker", "mqtt://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--homes" in result.stderr


def test_the_command_line_fails_when_it_never_reaches_the_broker(sim_broker: Broker) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "anbu", "sim", "--homes", "2", "--broker", sim_broker.url,
            "--username", SIM_USER, "--password", "wrong", "--seconds", "1.5",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["connects"] == 0
    assert "never connected" in result.stderr and "connect_refused" in result.stderr


# --- against a real broker ---


def test_a_short_run_delivers_heartbeats_that_validate_against_the_contract(
    sim_broker: Broker,
) -> None:
    with TestClient(sim_broker, COLLECTOR_USER) as collector:
        collector.subscribe("anbu/v1/+/+/+/heartbeat")
        collector.subscribe("anbu/v1/+/+/+/state")
        sim = Simulator(settings(sim_broker, homes=30, connections=3, rate_multiplier=60))
        summary = sim.run(3.0)
        received = collector.messages_within(1.0)

    heartbeats: dict[DeviceAddress, list[Heartbeat]] = defaultdict(list)
    states: dict[DeviceAddress, list[str]] = defaultdict(list)
    for message in received:
        topic = parse(message.topic)
        decoded = decode_device_message(topic.channel or Channel.STATE, message.payload)
        if isinstance(decoded, Heartbeat):
            heartbeats[topic.address].append(decoded)
        else:
            assert isinstance(decoded, State)
            states[topic.address].append(decoded.state)

    homes = {DeviceAddress("seodaemun", household_id(n), device_id(n)) for n in range(1, 31)}
    assert set(heartbeats) == homes
    assert set(states) == homes
    assert all(s == ["online", "offline"] for s in states.values())
    total = sum(len(v) for v in heartbeats.values())
    assert total == summary.heartbeats_sent
    assert len({b.message_id for v in heartbeats.values() for b in v}) == total
    # 30 homes x 3 s x 60 (one heartbeat per simulated minute) = about 90
    assert 60 <= total <= 130
    assert summary.publish_refused == 0 and summary.heartbeats_coalesced == 0
    assert summary.connections == 3
    now = time.time()
    for beats in heartbeats.values():
        seqs = [b.seq for b in beats]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for b in beats:
            assert abs(b.device_ts - now) < 30  # the wall clock, not the simulated one
            assert 54 <= b.interval_s <= 66  # a simulated minute, jittered 10 %
            assert b.agent_version.startswith("sim-")
            assert b.outbox_depth == 0 and b.coalesced == 0
        uptimes = [b.uptime_s for b in beats]
        assert uptimes == sorted(uptimes)
    # 08:00 in Seoul: residents are up and about
    motion = [b.motion_count for beats in heartbeats.values() for b in beats]
    assert statistics.fmean(motion) > 0.05


def test_an_sos_is_re_sent_until_acked_and_stops_after_the_ack(sim_broker: Broker) -> None:
    with TestClient(sim_broker, COLLECTOR_USER) as collector:
        collector.subscribe("anbu/v1/+/+/+/event/sos")
        sim = Simulator(settings(sim_broker, homes=3, sos_resend_s=0.3, publish_state=False))
        thread, out = run_in_thread(sim, 8.0)
        assert sim.wait_connected(5)
        sim.press_sos(2)

        copies = [collector.next_message(3) for _ in range(3)]  # the first and two re-sends
        assert {m.payload for m in copies} == {copies[0].payload}  # the same message every time
        address = parse(copies[0].topic).address
        assert address == DeviceAddress("seodaemun", "h0002", "d0002")
        sos = decode_device_message(Channel.SOS, copies[0].payload)
        assert isinstance(sos, SosEvent) and sos.source == "button"
        assert sim.pending_sos() == [sos.message_id]

        # An ack for some other SOS does not stop it.
        other = SosAck(sos_id="f" * 32, dispatch_id=9, device_ts=time.time(), seq=1)
        collector.publish(address.command_topic(Command.SOS_ACK), other.to_payload())
        assert collector.next_message(3).payload == copies[0].payload
        # Nor does the right ack on another home's topic (a real device would never see it).
        misplaced = SosAck(sos_id=sos.message_id, dispatch_id=1, device_ts=time.time(), seq=1)
        elsewhere = DeviceAddress("seodaemun", "h0001", "d0001").command_topic(Command.SOS_ACK)
        collector.publish(elsewhere, misplaced.to_payload())
        assert collector.next_message(3).payload == copies[0].payload
        assert sim.pending_sos() == [sos.message_id]

        ack = SosAck(sos_id=sos.message_id, dispatch_id=1, device_ts=time.time(), seq=2)
        collector.publish(address.command_topic(Command.SOS_ACK), ack.to_payload())
        deadline = time.monotonic() + 3
        while sim.pending_sos() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.pending_sos() == []
        collector.messages_within(0.1)  # a copy already on its way when the ack arrived
        assert collector.messages_within(1.2) == []  # four re-send periods: nothing more
        sim_summary = sim.summary()
        assert sim_summary.sos_sent == 1 and sim_summary.sos_acked == 1
        assert sim_summary.sos_resent >= 3
        assert sim_summary.bad_commands == 1  # the misplaced one
        assert sim_summary.ack_latency_p50_ms is not None
        assert sim_summary.ack_latency_p50_ms >= 900  # we held the ack for 3+ re-sends
        sim.stop()
    thread.join(10)
    assert out and out[0].sos_pending == 0


def test_sos_at_the_configured_rate_are_acked_by_a_collector(sim_broker: Broker) -> None:
    acked: queue.Queue[str] = queue.Queue()
    with TestClient(sim_broker, COLLECTOR_USER) as collector:
        collector.subscribe("anbu/v1/+/+/+/event/sos")

        def acknowledge() -> None:
            while True:
                try:
                    message = collector.next_message(0.2)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                sos = decode_device_message(Channel.SOS, message.payload)
                address = parse(message.topic).address
                ack = SosAck(sos_id=sos.message_id, dispatch_id=1, device_ts=time.time(), seq=1)
                collector.client.publish(
                    address.command_topic(Command.SOS_ACK), ack.to_payload(), qos=1
                )
                acked.put(sos.message_id)

        stop = threading.Event()
        worker = threading.Thread(target=acknowledge, daemon=True)
        worker.start()
        # 20 homes, 1 SOS per home per simulated day, a day every 10 s: about 6 SOS in 3 s
        sim = Simulator(
            settings(sim_broker, homes=20, rate_multiplier=8640, sos_per_home_day=1.0,
                     heartbeat_interval_s=3600, publish_state=False)
        )  # fmt: skip
        summary = sim.run(3.0)
        stop.set()
        worker.join(5)
    assert summary.sos_sent >= 1
    assert summary.sos_acked + summary.sos_pending == summary.sos_sent
    assert summary.sos_acked >= summary.sos_sent - 1  # one may be in flight at the end
    assert summary.ack_latency_p99_ms is not None  # a function test: bench/ measures latency
    assert summary.ack_latency_p99_ms < 3000


def test_a_user_without_rights_sees_its_publishes_refused(tmp_path: Path) -> None:
    broker = start_broker(
        tmp_path / "broker",
        users={**anbu_users(), SIM_USER: SIM_PASSWORD},
        acl=anbu_acl(COLLECTOR_USER),  # no simulator lines
    )
    try:
        summary = Simulator(settings(broker, homes=5, rate_multiplier=60)).run(1.5)
    finally:
        broker.kill()
    assert summary.heartbeats_sent > 0
    assert summary.publish_refused >= summary.heartbeats_sent  # and the states with them


def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    certs = make_cert_bundle(tmp_path / "certs", (COLLECTOR_USER, SIM_USER))
    broker = start_broker(
        tmp_path / "broker",
        users={**anbu_users(), SIM_USER: SIM_PASSWORD},
        acl=anbu_acl(COLLECTOR_USER, extra={SIM_USER: simulator_acls()}),
        tls=certs,
    )
    try:
        with TestClient(broker, COLLECTOR_USER) as collector:
            collector.subscribe("anbu/v1/+/+/+/heartbeat")
            cert = certs.client(SIM_USER)
            sim = Simulator(
                settings(
                    broker, homes=4, rate_multiplier=120, broker_url=broker.tls_url,
                    username=None, password=None, ca_file=certs.ca_file,
                    cert_file=cert.cert_file, key_file=cert.key_file,
                )
            )  # fmt: skip
            summary = sim.run(1.5)
            received = collector.messages_within(0.5)
    finally:
        broker.kill()
    assert summary.publish_refused == 0
    assert len(received) == summary.heartbeats_sent >= 4


def test_anbu_sim_prints_a_json_summary_last(sim_broker: Broker) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "anbu", "sim", "--homes", "12", "--broker", sim_broker.url,
            "--username", SIM_USER, "--password", SIM_PASSWORD, "--seconds", "2",
            "--rate-multiplier", "60", "--progress-s", "0.5", "--start", MORNING.isoformat(),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["homes"] == 12
    assert summary["heartbeats_sent"] > 0 and summary["heartbeats_per_s"] > 0
    assert {"sos_sent", "sos_acked", "ack_latency_p50_ms", "ack_latency_p99_ms"} <= summary.keys()
    progress = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and '"sim_progress"' in line
    ]
    assert progress and progress[-1]["heartbeats_sent"] > 0


def test_a_broker_outage_coalesces_heartbeats_and_the_held_sos_is_re_sent_after_it(
    sim_broker: Broker,
) -> None:
    sim = Simulator(
        settings(sim_broker, homes=4, rate_multiplier=60, sos_resend_s=0.3, publish_state=False)
    )
    thread, out = run_in_thread(sim, 9.0)
    assert sim.wait_connected(5)
    time.sleep(0.5)
    sim_broker.kill()
    sim.press_sos(3)  # while the broker is down: held
    time.sleep(2.0)  # two simulated minutes: every home coalesces a heartbeat or two
    assert sim.summary().heartbeats_coalesced >= 4
    (held,) = sim.pending_sos()
    sim_broker.start()
    with TestClient(sim_broker, COLLECTOR_USER) as collector:
        collector.subscribe("anbu/v1/+/+/+/event/sos")
        collector.subscribe("anbu/v1/+/+/+/heartbeat")
        sos_seen = None
        coalesced: dict[str, Heartbeat] = {}
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and (sos_seen is None or len(coalesced) < 4):
            try:
                message = collector.next_message(0.5)
            except queue.Empty:
                continue
            topic = parse(message.topic)
            decoded = decode_device_message(topic.channel or Channel.STATE, message.payload)
            if isinstance(decoded, SosEvent):
                sos_seen = decoded
                ack = SosAck(sos_id=decoded.message_id, dispatch_id=1, device_ts=time.time(), seq=1)
                collector.publish(topic.address.command_topic(Command.SOS_ACK), ack.to_payload())
            elif isinstance(decoded, Heartbeat) and decoded.coalesced > 0:
                coalesced.setdefault(topic.address.household, decoded)
        garbage = DeviceAddress("seodaemun", "h0001", "d0001").command_topic(Command.SOS_ACK)
        collector.publish(garbage, b"[[[[not an ack")
        time.sleep(0.3)
    assert sos_seen is not None and sos_seen.message_id == held
    assert set(coalesced) == {"h0001", "h0002", "h0003", "h0004"}
    for beat in coalesced.values():  # one heartbeat covering the merged intervals
        assert beat.interval_s >= 60 * (beat.coalesced + 1) * 0.85
    # The button SOS pressed during the outage is counted in h0003's first heartbeat after it.
    assert coalesced["h0003"].button_presses == 1
    assert coalesced["h0001"].button_presses == 0
    thread.join(15)
    (summary,) = out
    assert summary.connects >= 2 and summary.disconnects >= 1
    assert summary.sos_acked == 1 and summary.sos_pending == 0
    assert summary.bad_commands == 1


@pytest.mark.slow
def test_a_seeded_collector_knows_every_simulated_home_and_acks_its_sos(
    tmp_path: Path,
    sim_broker: Broker,
    smtp_server: SmtpServer,  # noqa: F811
    sms_gateway: SmsGateway,  # noqa: F811
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    db.create_schema()
    seed_district(db, "seodaemun", homes=8, caregivers=1)
    env = collector_env(db.url, sim_broker, smtp_server, sms_gateway, free_port())
    collector = start_collector(env, tmp_path / "collector.log")
    try:
        sim = Simulator(settings(sim_broker, homes=8, rate_multiplier=60, sos_resend_s=5))
        thread, out = run_in_thread(sim, 5.0)
        assert sim.wait_connected(5)
        sim.press_sos(5)
        thread.join(20)
        smtp_server.wait_for(1)  # the caregiver was told
    finally:
        collector.stop()
    (summary,) = out
    assert summary.sos_acked == 1, collector.text()[-3000:]
    assert summary.sos_resent == 0  # acked within the first re-send period
    with db.session() as s:
        devices = s.scalars(select(Device).order_by(Device.id)).all()
        assert [d.id for d in devices] == [device_id(n) for n in range(1, 9)]
        assert all(d.last_heartbeat_at is not None for d in devices)
        assert all(d.agent_version.startswith("sim-") for d in devices)
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
        (dispatch,) = s.scalars(select(Dispatch)).all()
        assert dispatch.household_id == "h0005"
    db.dispose()


def test_a_pressed_sos_goes_out_while_the_simulator_runs_flat_out(sim_broker: Broker) -> None:
    with TestClient(sim_broker, COLLECTOR_USER) as collector:
        collector.subscribe("anbu/v1/+/+/+/event/sos")
        # far more heartbeats due than one process can send: its scheduler never catches up
        sim = Simulator(
            settings(sim_broker, homes=2000, connections=1, rate_multiplier=100_000,
                     publish_state=False, max_in_flight=20)
        )  # fmt: skip
        thread, out = run_in_thread(sim, 7.0)
        assert sim.wait_connected(5)
        time.sleep(1.0)
        pressed = time.monotonic()
        sim.press_sos(1234)
        message = collector.next_message(5)  # the run lasts 6 s more
        delay_s = time.monotonic() - pressed
        assert parse(message.topic).address.household == "h1234"
        thread.join(15)
    (summary,) = out
    assert summary.heartbeats_coalesced > 0  # it really was behind
    assert delay_s < 5  # behind at most 10 x 20 heartbeats on its connection


def test_ctrl_c_stops_the_run_and_still_prints_the_summary(sim_broker: Broker) -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "anbu", "sim", "--homes", "3", "--broker", sim_broker.url,
            "--username", SIM_USER, "--password", SIM_PASSWORD, "--rate-multiplier", "60",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # interrupt a run that has started (its handler is set), not an interpreter still
    # importing: under load that can take longer than any fixed sleep
    lines: list[str] = []
    started = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "sim_started" in line:
                started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert started.wait(30), "".join(lines)
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        assert proc.stdout is not None
        stdout = proc.stdout.read()  # the summary only: the logs go to stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(5)
    stderr = "".join(lines)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["heartbeats_sent"] > 0 and 1.5 < summary["seconds"] < 10


def test_first_home_lets_two_simulators_split_a_district(sim_broker: Broker) -> None:
    with TestClient(sim_broker, COLLECTOR_USER) as collector:
        collector.subscribe("anbu/v1/+/+/+/heartbeat")
        runs = [
            run_in_thread(Simulator(settings(sim_broker, homes=3, first_home=first,
                                             rate_multiplier=120, publish_state=False)), 1.5)
            for first in (1, 4)
        ]  # fmt: skip
        for thread, _out in runs:
            thread.join(10)
        received = collector.messages_within(0.5)
    homes = {parse(m.topic).address.household for m in received}
    assert homes == {household_id(n) for n in range(1, 7)}
    assert sum(out[0].heartbeats_sent for _t, out in runs) == len(received)


def _checkin(*, listen_s: float = 30, expires_in_s: float = 600) -> CheckinRequest:
    now = time.time()
    return CheckinRequest(
        device_ts=now + min(0.0, expires_in_s) - 1,  # a late one was sent before it expired
        seq=1,
        checkin_id=new_message_id(),
        listen_s=listen_s,
        repeats=1,
        expires_ts=max(0.0, now + expires_in_s),
    )


def _answers(collector: TestClient, count: int) -> dict[str, tuple[str, CheckinAnswer, float]]:
    """``count`` check-in answers by checkin_id: (household, answer, monotonic arrival)."""
    got: dict[str, tuple[str, CheckinAnswer, float]] = {}
    deadline = time.monotonic() + 8
    while len(got) < count and time.monotonic() < deadline:
        try:
            message = collector.next_message(0.5)
        except queue.Empty:
            continue
        address, _ = parse_checkin_topic(message.topic)
        answer = decode_checkin_answer(bytes(message.payload))
        got[answer.checkin_id] = (address.household, answer, time.monotonic())
    return got


def test_check_ins_are_answered_while_the_resident_is_awake(sim_broker: Broker) -> None:
    """Morning: awake residents answer with a phrase of the phrase file, a few seconds in."""
    assert all(is_awake(resident_for(7, n), local_hour(MORNING.timestamp())) for n in (1, 2))
    sim = Simulator(settings(sim_broker, homes=2, rate_multiplier=10, publish_state=False))
    with TestClient(sim_broker, COLLECTOR_USER) as collector:
        collector.subscribe("anbu/v1/+/+/+/event/checkin_answer")
        thread, out = run_in_thread(sim, 6.0)
        assert sim.wait_connected(5)
        address = DeviceAddress("seodaemun", "h0001", "d0001")
        requests = [_checkin() for _ in range(10)]
        for request in requests:
            collector.publish(checkin_command_topic(address), request.to_payload())
        got = _answers(collector, len(requests))
        sim.stop()
    thread.join(10)
    assert set(got) == {r.checkin_id for r in requests}  # one answer per request
    assert {household for household, _, _ in got.values()} == {"h0001"}
    heard = [a for _, a, _ in got.values() if a.answered]
    assert len(heard) >= 5  # nine in ten on average
    assert all(a.phrase in ("네", "응", "좋아") and a.language == "ko" for a in heard)
    assert all(a.heard_after_s is not None and 2 <= a.heard_after_s <= 15 for a in heard)
    (summary,) = out
    assert summary.checkins_received == 10 and summary.bad_commands == 0
    assert summary.checkins_answered == len(heard)
    assert summary.checkins_unanswered == 10 - len(heard)


def test_at_night_nobody_answers_and_a_late_request_is_never_played(sim_broker: Broker) -> None:
    night = dt.datetime(2026, 12, 1, 3, 0, tzinfo=KST)
    sim = Simulator(settings(sim_broker, homes=2, start_at=night, publish_state=False))
    with TestClient(sim_broker, COLLECTOR_USER) as collector:
        collector.subscribe("anbu/v1/+/+/+/event/checkin_answer")
        thread, out = run_in_thread(sim, 12.0)
        assert sim.wait_connected(5)
        address = DeviceAddress("seodaemun", "h0002", "d0002")
        asleep, late = _checkin(listen_s=5), _checkin(expires_in_s=-5)
        sent_at = time.monotonic()
        collector.publish(checkin_command_topic(address), asleep.to_payload())
        collector.publish(checkin_command_topic(address), late.to_payload())
        got = _answers(collector, 2)
        sim.stop()
    thread.join(10)
    _, unanswered, unanswered_at = got[asleep.checkin_id]
    assert not unanswered.answered and not unanswered.expired and unanswered.phrase is None
    assert unanswered_at - sent_at >= 4.5  # sent when the listening ends, as the agent does
    _, expired, expired_at = got[late.checkin_id]
    assert not expired.answered and expired.expired
    assert expired_at < unanswered_at
    (summary,) = out
    assert summary.checkins_received == 2 and summary.bad_commands == 0
    assert summary.checkins_unanswered == 1 and summary.checkins_expired == 1

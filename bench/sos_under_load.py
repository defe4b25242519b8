"""SOS publish → e-mail accepted, while heartbeats flood the collector beyond what it can store.

Real parts: a private Mosquitto (field rules plus a load user), an ``anbu collector serve``
process on SQLite with ``--homes`` seeded homes, an aiosmtpd server and the HTTP SMS gateway in
this process, and publisher processes sending QoS 1 heartbeats at full speed. During the flood,
``--sos`` SOS are published (one home each, ``--interval-s`` apart) and each is timed from its
PUBLISH to the SMTP server accepting the caregiver's e-mail (same machine, CLOCK_MONOTONIC).

The same SOS are first timed with no flood (the reference), so the ratio says what the flood
costs an SOS.

    python bench/sos_under_load.py [--homes 10000] [--sos 50] [--seconds 30] [--reps 3]
                                   [--bulk-lane process|thread|both]

Each repetition starts everything afresh, once with the bulk lane in its own process (the
production shape, ``ANBU_INGEST_BULK_PROCESS``) and once with it in a thread beside the SOS lane,
so the two are measured under the same load. The SOS are also timed to the collector's
``cmd/sos_ack`` (the commit is behind it).

Prints progress, then one JSON line: p50_ms, p99_ms (medians over the repetitions, for the
process lane), p99_ms_worst_rep, sos_sent, sos_dropped (no e-mail within 30 s), by_lane with
min/median/max, the no-flood reference, and the heartbeats the collector stored meanwhile.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench._load import (
    LOAD_USER,
    WATCH_USER,
    address,
    machine,
    run_publishers,
    seed,
    start_bench_broker,
)
from collector.store.db import Database
from firmware_config.messages import SosEvent
from firmware_config.topics import PREFIX, Channel
from tests.e2e.processes import collector_env, free_port, start_collector
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class AckWatch:
    """When a topic's first message reached each household's entry: with ``cmd/sos_ack`` the
    collector's acknowledgement (its commit is behind it); with ``event/sos`` the moment the
    broker passed the SOS on (the broker's part of the delay)."""

    def __init__(self, topic_filter: str) -> None:
        self.topic_filter = topic_filter
        self.at: dict[str, float] = {}

    def attach(self, client: mqtt.Client) -> None:
        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            household = msg.topic.split("/")[3]
            self.at.setdefault(household, time.monotonic())

        def on_connect(c: mqtt.Client, *_args: object) -> None:
            c.subscribe(self.topic_filter, qos=0)

        client.on_message = on_message
        client.on_connect = on_connect


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc``), 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def run_sos(
    client: mqtt.Client,
    smtp: SmtpServer,
    homes: list[int],
    interval_s: float,
    acks: AckWatch,
    relayed: AckWatch,
) -> tuple[list[float], list[float], list[float], int]:
    """One SOS per home: latencies (ms) to the broker passing it on, to the collector's
    acknowledgement and to the caregiver's e-mail, and how many e-mails never came."""
    sent: dict[str, float] = {}
    for n in homes:
        addr = address(n)
        sos = SosEvent(device_ts=time.time(), seq=1, source="button")
        sent[addr.household] = time.monotonic()
        client.publish(addr.topic(Channel.SOS), sos.to_payload(), qos=1)
        time.sleep(interval_s)
    deadline = time.monotonic() + 30
    arrived: dict[str, float] = {}
    while time.monotonic() < deadline and len(arrived) < len(sent):
        for mail in list(smtp.received):
            subject = str(mail.message["Subject"] or "")
            for household in sent:
                if household in subject and "SOS" in subject and household not in arrived:
                    arrived[household] = mail.accepted_monotonic
        time.sleep(0.05)
    latencies = [1000 * (arrived[h] - sent[h]) for h in arrived]
    acked = [1000 * (acks.at[h] - sent[h]) for h in sent if h in acks.at]
    passed_on = [1000 * (relayed.at[h] - sent[h]) for h in sent if h in relayed.at]
    return latencies, passed_on, acked, len(sent) - len(arrived)


def one_run(opts: argparse.Namespace, lane: str, pg: Any, rep: int) -> dict[str, Any]:
    """A fresh broker, database and collector; SOS without, then with, a heartbeat flood."""
    work = Path(tempfile.mkdtemp(prefix="anbu-bench-sosload-"))
    broker = start_bench_broker(work / "broker")
    if pg is not None:
        db = Database(pg.create_database(f"sosload_{lane}_{rep}"))
    else:
        db = Database(f"sqlite:///{work / 'collector.sqlite3'}")
    seed(db, opts.homes)
    db.dispose()
    smtp = SmtpServer().start()
    sms = SmsGateway().start()
    port = free_port()
    env = collector_env(db.url, broker, smtp, sms, port)
    env["ANBU_SOS_ACK_TIMEOUT_S"] = "3600"  # no escalation e-mails during the run
    env["ANBU_LOG_LEVEL"] = "WARNING"
    env["ANBU_INGEST_BULK_PROCESS"] = "false" if lane == "thread" else "true"
    collector = start_collector(env, work / "collector.log", timeout_s=60)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sos-bench", protocol=mqtt.MQTTv5)
    client.username_pw_set(LOAD_USER, "loadgen-secret")
    client.connect("127.0.0.1", int(broker.url.rsplit(":", 1)[1]))
    acks = AckWatch(f"{PREFIX}/+/+/+/cmd/sos_ack")
    acks.attach(client)
    client.loop_start()
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sos-watch", protocol=mqtt.MQTTv5)
    watcher.username_pw_set(WATCH_USER, "watch-secret")
    relayed = AckWatch(f"{PREFIX}/+/+/+/event/sos")
    relayed.attach(watcher)
    watcher.connect("127.0.0.1", int(broker.url.rsplit(":", 1)[1]))
    watcher.loop_start()
    try:
        time.sleep(1.0)
        n = opts.sos
        quiet, _quiet_relayed, quiet_acked, quiet_dropped = run_sos(
            client, smtp, list(range(0, n)), opts.interval_s, acks, relayed
        )
        before = httpx.get(f"http://127.0.0.1:{port}/health").json()["ingest"]
        main_pid = collector.popen.pid
        kids = children_of(main_pid)
        cpu0 = (cpu_seconds(main_pid), sum(cpu_seconds(k) for k in kids))
        sent, pubs, start_at = run_publishers(
            broker, opts.homes, opts.publishers, opts.seconds, seq_base=0, rate_per_s=opts.rate
        )
        time.sleep(max(0.0, start_at - time.time()) + min(5.0, opts.seconds / 3))
        loaded, passed_on, acked, dropped = run_sos(
            client, smtp, list(range(n, 2 * n)), opts.interval_s, acks, relayed
        )
        after = httpx.get(f"http://127.0.0.1:{port}/health").json()["ingest"]
        cpu1 = (cpu_seconds(main_pid), sum(cpu_seconds(k) for k in kids))
        for p in pubs:
            p.join(timeout=opts.seconds + 60)
        return {
            "lane": lane,
            "p50_ms": round(percentile(loaded, 0.5), 1) if loaded else None,
            "p99_ms": round(percentile(loaded, 0.99), 1) if loaded else None,
            "max_ms": round(max(loaded), 1) if loaded else None,
            "ack_p50_ms": round(percentile(acked, 0.5), 1) if acked else None,
            "ack_p99_ms": round(percentile(acked, 0.99), 1) if acked else None,
            "broker_p50_ms": round(percentile(passed_on, 0.5), 1) if passed_on else None,
            "broker_p99_ms": round(percentile(passed_on, 0.99), 1) if passed_on else None,
            "sos_sent": n,
            "sos_dropped": dropped,
            "no_flood": {
                "p50_ms": round(percentile(quiet, 0.5), 1) if quiet else None,
                "p99_ms": round(percentile(quiet, 0.99), 1) if quiet else None,
                "ack_p99_ms": round(percentile(quiet_acked, 0.99), 1) if quiet_acked else None,
                "sos_dropped": quiet_dropped,
            },
            "heartbeats_published": sent(),
            "heartbeats_stored_during_run": after["bulk"].get("applied", 0)
            - before["bulk"].get("applied", 0),
            # CPU the collector's main process (SOS lane, API, silence and supervision fed by
            # the child) and its children (the bulk process) spent from flood start to the end
            # of the SOS: where the SOS's competition for the main process's GIL comes from.
            "main_process_cpu_s": round(cpu1[0] - cpu0[0], 2),
            "child_processes_cpu_s": round(cpu1[1] - cpu0[1], 2),
            "load_avg_1m": machine()["load_avg_1m"],
        }
    finally:
        client.loop_stop()
        watcher.loop_stop()
        collector.stop()
        smtp.stop()
        sms.stop()
        broker.kill()


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--sos", type=int, default=50)
    parser.add_argument("--interval-s", type=float, default=0.2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="heartbeats/s offered by all publishers together (0: as fast as they can)",
    )
    parser.add_argument(
        "--bulk-lane",
        choices=("process", "thread", "both"),
        default="both",
        help="the bulk lane in a child process (ANBU_INGEST_BULK_PROCESS), in a thread beside "
        "the SOS lane, or both in turn (the thread is then the reference)",
    )
    opts = parser.parse_args()
    mp.set_start_method("spawn")
    lanes = ["process", "thread"] if opts.bulk_lane == "both" else [opts.bulk_lane]
    runs: list[dict[str, Any]] = []
    pg = None
    if opts.database == "postgresql":
        from tests.support.postgres import start_postgres

        pg = start_postgres()
    try:
        for rep in range(opts.reps):
            for lane in lanes:
                run = one_run(opts, lane, pg, rep)
                runs.append(run)
                progress = {"progress": f"rep {rep + 1}/{opts.reps}", **run}
                print(json.dumps(progress), file=sys.stderr)
    finally:
        if pg is not None:
            pg.stop()
    by_lane: dict[str, Any] = {}
    for lane in lanes:
        mine = [r for r in runs if r["lane"] == lane]
        by_lane[lane] = {
            "p50_ms": spread([r["p50_ms"] for r in mine if r["p50_ms"] is not None]),
            "p99_ms": spread([r["p99_ms"] for r in mine if r["p99_ms"] is not None]),
            "ack_p99_ms": spread([r["ack_p99_ms"] for r in mine if r["ack_p99_ms"] is not None]),
            "broker_p99_ms": spread(
                [r["broker_p99_ms"] for r in mine if r["broker_p99_ms"] is not None]
            ),
            "no_flood_p99_ms": spread(
                [r["no_flood"]["p99_ms"] for r in mine if r["no_flood"]["p99_ms"] is not None]
            ),
            "sos_sent": sum(r["sos_sent"] for r in mine),
            "sos_dropped": sum(r["sos_dropped"] + r["no_flood"]["sos_dropped"] for r in mine),
            "heartbeats_stored_during_run": spread(
                [float(r["heartbeats_stored_during_run"]) for r in mine]
            ),
        }
    main_lane = by_lane[lanes[0]]
    result: dict[str, Any] = {
        "figure": "SOS publish -> caregiver e-mail accepted, heartbeats flooding",
        "p50_ms": main_lane["p50_ms"]["median"] if main_lane["p50_ms"] else None,
        "p99_ms": main_lane["p99_ms"]["median"] if main_lane["p99_ms"] else None,
        "p99_ms_worst_rep": main_lane["p99_ms"]["max"] if main_lane["p99_ms"] else None,
        "sos_sent": main_lane["sos_sent"],
        "sos_dropped": main_lane["sos_dropped"],
        "by_lane": by_lane,
        "goal_p99_ms": 1000,
        "runs": runs,
        "conditions": {
            "homes": opts.homes,
            "flood_seconds": opts.seconds,
            "publishers": opts.publishers,
            "offered_rate_per_s": opts.rate or "as fast as the publishers can",
            "sos_per_run": opts.sos,
            "sos_interval_s": opts.interval_s,
            "reps": opts.reps,
            "database": opts.database,
            "collector": "anbu collector serve",
            **machine(),
        },
    }
    if len(lanes) == 2 and by_lane[lanes[1]]["p99_ms"] and by_lane["process"]["p99_ms"]:
        result[f"p99_ratio_process_to_{lanes[1].replace('-', '_')}"] = round(
            by_lane["process"]["p99_ms"]["median"] / by_lane[lanes[1]]["p99_ms"]["median"], 2
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Heartbeats durably ingested per second by one collector process, beside a bare subscriber.

Real parts: a private Mosquitto (the field ACL, plus a load user), publisher processes sending
contract-valid QoS 1 heartbeats for ``--homes`` seeded homes at full speed, and either

* the **reference**: a bare paho subscriber (MQTT v5, manual acks) that parses each message as
  JSON and acknowledges it, nothing else; or
* the **collector**: the real ingest (``collector.ingest.Ingest`` over ``collector.service``) on
  SQLite or PostgreSQL, counting heartbeats whose transaction committed;
* with ``--c-reference``, also Mosquitto's own C client (``mosquitto_sub``, QoS 1, printing one
  byte per message): what this rig (broker + publishers on the same cores) delivers to a
  subscriber that costs next to nothing, the ceiling any Python subscriber here is under.

``published_per_s`` is what the publishers sent over each whole run (all of them together).

Both run in their own process under the same load, one after the other, ``--reps`` times; the
figure is measured over the window after a one-second warm-up. CPU is each process's own CPU time
in the window divided by the messages it handled.

    python bench/ingest.py --homes 10000 --seconds 10 --database sqlite|postgresql [--reps 3]

Prints progress, then one JSON line: heartbeats_per_s, bare_subscriber_per_s, ratio, cpu_ratio
(min/median/max over the repetitions) and the conditions.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench._load import machine, run_publishers, seed, start_bench_broker
from collector.store.db import Database
from tests.support.mosquitto import COLLECTOR_USER, anbu_users


def _window(start_at: float, seconds: float) -> tuple[float, float]:
    return start_at + 1.0, start_at + seconds


def _when_started(ready: Any, start: Any) -> float:
    """Say this process is ready, then wait for the run's start time (set once all are ready)."""
    ready.set()
    while start.value == 0.0:
        time.sleep(0.01)
    return float(start.value)


def bare_subscriber(port: int, ready: Any, start: Any, seconds: float, out: Any) -> None:
    received = 0
    lock = threading.Lock()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare", protocol=mqtt.MQTTv5)
    client.username_pw_set("bare", "bare-secret")
    client.manual_ack_set(True)

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal received
        json.loads(msg.payload)
        c.ack(msg.mid, msg.qos)
        with lock:
            received += 1

    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe("$share/bare/anbu/v1/+/+/+/heartbeat", 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    w0, w1 = _window(_when_started(ready, start), seconds)
    time.sleep(max(0.0, w0 - time.time()))
    n0, c0 = received, time.process_time()
    time.sleep(max(0.0, w1 - time.time()))
    n1, c1 = received, time.process_time()
    client.disconnect()
    client.loop_stop()
    out.put({"handled": n1 - n0, "cpu_s": c1 - c0, "window_s": w1 - w0})


def c_subscriber(port: int, ready: Any, start: Any, seconds: float, out: Any) -> None:
    """``mosquitto_sub`` on the same shared subscription; messages counted from its output."""
    import subprocess

    received = 0
    lock = threading.Lock()
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            *("-h", "127.0.0.1", "-p", str(port), "-u", "bare", "-P", "bare-secret"),
            *("-V", "mqttv5", "-q", "1", "-i", "bare-c", "-F", "x"),
            *("-t", "$share/bare/anbu/v1/+/+/+/heartbeat"),
        ],
        stdout=subprocess.PIPE,
    )
    assert sub.stdout is not None

    def count() -> None:
        nonlocal received
        stdout = sub.stdout
        assert stdout is not None
        while chunk := stdout.read1(65536):  # type: ignore[attr-defined]
            with lock:
                received += chunk.count(b"\n")

    reader = threading.Thread(target=count, daemon=True)
    reader.start()
    time.sleep(1.0)  # connected and subscribed (it prints nothing until a message comes)
    w0, w1 = _window(_when_started(ready, start), seconds)
    time.sleep(max(0.0, w0 - time.time()))
    n0, c0 = received, _cpu_s(sub.pid)
    time.sleep(max(0.0, w1 - time.time()))
    n1, c1 = received, _cpu_s(sub.pid)
    sub.terminate()
    sub.wait(timeout=10)
    out.put({"handled": n1 - n0, "cpu_s": c1 - c0, "window_s": w1 - w0})


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from ``/proc``."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def collector_process(
    port: int, database_url: str, ready: Any, start: Any, seconds: float, out: Any
) -> None:
    from collector.ingest import Ingest
    from collector.registry import DeviceRegistry, load_all, store_lookup
    from collector.service import Service
    from collector.settings import CollectorSettings

    settings = CollectorSettings(
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        mqtt_username=COLLECTOR_USER,
        mqtt_password=anbu_users()[COLLECTOR_USER],
        database_url=database_url,
        mqtt_client_id=f"bench-{time.time_ns()}",
        ingest_bulk_process=False,  # the bulk lane in this process, where its CPU is measured
    )
    db = Database(database_url)
    registry = DeviceRegistry(store_lookup(db.sessions))
    with db.sessions() as session:
        registry.replace_all(load_all(session))
    ingest = Ingest(settings, Service(db, registry=registry))
    bulk = ingest.bulk
    assert bulk is not None  # these settings keep the bulk lane in this process
    ingest.start()
    ingest.wait_connected(60)
    w0, w1 = _window(_when_started(ready, start), seconds)
    time.sleep(max(0.0, w0 - time.time()))
    n0, c0 = bulk.applied, time.process_time()
    time.sleep(max(0.0, w1 - time.time()))
    n1, c1 = bulk.applied, time.process_time()
    ingest.stop()
    db.dispose()
    out.put(
        {
            "handled": n1 - n0,
            "cpu_s": c1 - c0,
            "window_s": w1 - w0,
            "dead_lettered": bulk.dead_lettered,
            "batches": bulk.batches,
        }
    )


def measure(
    target: Any, args: tuple[Any, ...], broker: Any, opts: argparse.Namespace, seq_base: int
) -> dict[str, Any]:
    out: Any = mp.Queue()
    ready, start = mp.Event(), mp.Value("d", 0.0)
    proc = mp.Process(target=target, args=(*args, ready, start, opts.seconds, out))
    proc.start()
    # The window opens once the subscriber is ready (a million homes take a while to load into
    # the registry), with room for the publishers to make their topics first.
    if not ready.wait(timeout=600):
        raise RuntimeError("the subscriber process did not get ready within 600 s")
    start_at = time.time() + 3.0 + opts.homes / 100_000
    start.value = start_at
    sent, pubs, _ = run_publishers(
        broker,
        opts.homes,
        opts.publishers,
        opts.seconds,
        seq_base,
        rate_per_s=opts.rate,
        start_at=start_at,
    )
    result: dict[str, Any] = out.get(timeout=opts.seconds + 60)
    for p in pubs:
        p.join(timeout=30)
    proc.join(timeout=30)
    result["sent"] = sent()
    result["published_per_s"] = result["sent"] / opts.seconds
    result["per_s"] = result["handled"] / result["window_s"]
    result["cpu_per_msg_us"] = 1e6 * result["cpu_s"] / max(1, result["handled"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="heartbeats/s all publishers send (0: full speed)"
    )
    parser.add_argument(
        "--c-reference", action="store_true", help="also measure mosquitto_sub (the rig's ceiling)"
    )
    opts = parser.parse_args()
    mp.set_start_method("spawn")

    workdir = Path(tempfile.mkdtemp(prefix="anbu-bench-ingest-"))
    broker = start_bench_broker(workdir / "broker")
    pg = None
    if opts.database == "postgresql":
        from tests.support.postgres import start_postgres

        pg = start_postgres()
        url = pg.create_database("bench")
    else:
        url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    try:
        db = Database(url)
        t0 = time.monotonic()
        seed(db, opts.homes)
        db.dispose()
        print(f"seeded {opts.homes} homes in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        port = int(broker.url.rsplit(":", 1)[1])
        reps: list[dict[str, Any]] = []
        for rep in range(opts.reps):
            bare = measure(bare_subscriber, (port,), broker, opts, seq_base=rep * 2_000_000)
            coll = measure(
                collector_process, (port, url), broker, opts, seq_base=rep * 2_000_000 + 1_000_000
            )
            rep_result = {"bare": bare, "collector": coll}
            if opts.c_reference:
                rep_result["c"] = measure(
                    c_subscriber, (port,), broker, opts, seq_base=rep * 2_000_000 + 1_500_000
                )
            reps.append(rep_result)
            print(
                json.dumps(
                    {
                        "progress": f"rep {rep + 1}/{opts.reps}",
                        "collector_per_s": round(coll["per_s"]),
                        "bare_per_s": round(bare["per_s"]),
                        "collector_cpu_us": round(coll["cpu_per_msg_us"], 1),
                        "bare_cpu_us": round(bare["cpu_per_msg_us"], 1),
                        **(
                            {"c_per_s": round(rep_result["c"]["per_s"])} if opts.c_reference else {}
                        ),
                    }
                ),
                file=sys.stderr,
            )
    finally:
        broker.kill()
        if pg is not None:
            pg.stop()

    def stats(values: list[float], digits: int = 0) -> dict[str, float]:
        return {
            "min": round(min(values), digits),
            "median": round(statistics.median(values), digits),
            "max": round(max(values), digits),
        }

    rates = [r["collector"]["per_s"] for r in reps]
    bares = [r["bare"]["per_s"] for r in reps]
    ratios = [r["collector"]["per_s"] / r["bare"]["per_s"] for r in reps]
    cpu_ratios = [r["collector"]["cpu_per_msg_us"] / r["bare"]["cpu_per_msg_us"] for r in reps]
    print(
        json.dumps(
            {
                "figure": "heartbeats durably ingested per second, one collector process",
                "heartbeats_per_s": statistics.median(rates),
                "bare_subscriber_per_s": statistics.median(bares),
                "ratio": round(statistics.median(ratios), 3),
                "cpu_ratio": round(statistics.median(cpu_ratios), 2),
                "heartbeats_per_s_stats": stats(rates),
                "bare_subscriber_per_s_stats": stats(bares),
                "ratio_stats": stats(ratios, 3),
                "cpu_ratio_stats": stats(cpu_ratios, 2),
                "collector_cpu_per_heartbeat_us": round(
                    statistics.median(r["collector"]["cpu_per_msg_us"] for r in reps), 1
                ),
                "bare_cpu_per_message_us": round(
                    statistics.median(r["bare"]["cpu_per_msg_us"] for r in reps), 1
                ),
                "published_per_s_stats": stats([r[k]["published_per_s"] for r in reps for k in r]),
                **(
                    {
                        "c_subscriber_per_s_stats": stats([r["c"]["per_s"] for r in reps]),
                        "c_subscriber_cpu_per_message_us": round(
                            statistics.median(r["c"]["cpu_per_msg_us"] for r in reps), 1
                        ),
                    }
                    if opts.c_reference
                    else {}
                ),
                "conditions": {
                    "homes": opts.homes,
                    "seconds": opts.seconds,
                    "database": opts.database,
                    "reps": opts.reps,
                    "publishers": opts.publishers,
                    "rate_per_s": opts.rate or "full speed",
                    "qos": 1,
                    "broker": "mosquitto (private, ACL, passwords)",
                    **machine(),
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

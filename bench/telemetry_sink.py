"""Telemetry sink: points written per second to a real VictoriaMetrics, and what submit() costs.

Each repetition, against one private ``victoria-metrics`` on a loopback port:

* reference: the same points, already encoded as line protocol, written batch by batch with
  ``InfluxLineWriter.write`` straight from this thread (no queue, no thread, no encoding): the
  ceiling of the write path;
* sink: ``InfluxTelemetrySink.submit`` in chunks of ``--chunk`` points (as the ingest would after
  each batch commit), timed until ``health()["written"]`` counts them all;
* submit cost: one-point ``submit`` calls, timed one by one, while the writer is writing, and again
  with the server stopped (the queue full and dropping).

    python bench/telemetry_sink.py [--points 50000 --repeat 3 --batch-size 5000]

Prints one JSON line last: min/median/max of each figure over the repetitions, the ratio
sink / reference, and the conditions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.telemetry import (
    HeartbeatPoint,
    InfluxLineWriter,
    InfluxTelemetrySink,
    encode_point,
)
from tests.support.victoria import start_victoria


def fields(i: int) -> dict[str, float | int]:
    return {
        "motion_count": i % 7, "speech_s": (i % 50) * 0.5, "wake_word_count": i % 2,
        "interactions": i % 3, "button_presses": 0, "uptime_s": 3600.0 + i,
        "audio_overruns": i % 4, "outbox_depth": 0, "coalesced": 0,
    }  # fmt: skip


def make_points(count: int, homes: int, offset_ms: int) -> list[HeartbeatPoint]:
    base = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    return [
        HeartbeatPoint(
            "seodaemun",
            f"h{i % homes + 1:04d}",
            f"d{i % homes + 1:04d}",
            base + dt.timedelta(milliseconds=offset_ms + i),
            fields(i),
        )
        for i in range(count)
    ]


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=500, help="points per submit() call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=120, help="bound on each phase")
    args = parser.parse_args()

    reference, sink_rates, submit_p99, submit_down_p99, submit_max = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="anbu-bench-vm-") as tmp:
        server = start_victoria(Path(tmp) / "vm")
        try:
            # Registering new series is VictoriaMetrics' slow path: pay it before measuring.
            warm = InfluxLineWriter(server.url, None, "anbu", "anbu")
            lines = [encode_point(p)[0] or "" for p in make_points(args.homes, args.homes, -1000)]
            for i in range(0, len(lines), args.batch_size):
                warm.write("\n".join(lines[i : i + args.batch_size]).encode())
            warm.close()
            for rep in range(args.repeat):
                offset = rep * 3 * args.points
                # reference: pre-encoded lines, written from this thread
                points = make_points(args.points, args.homes, offset)
                lines = [encode_point(p)[0] or "" for p in points]
                writer = InfluxLineWriter(server.url, None, "anbu", "anbu")
                started = time.perf_counter()
                for i in range(0, len(lines), args.batch_size):
                    writer.write("\n".join(lines[i : i + args.batch_size]).encode())
                reference.append(args.points / (time.perf_counter() - started))
                writer.close()

                # the sink, fed in chunks
                points = make_points(args.points, args.homes, offset + args.points)
                sink = InfluxTelemetrySink(
                    InfluxLineWriter(server.url, None, "anbu", "anbu"),
                    batch_size=args.batch_size,
                    flush_interval_s=0.2,
                    queue_max=max(100_000, args.points),
                )
                started = time.perf_counter()
                for i in range(0, len(points), args.chunk):
                    sink.submit(points[i : i + args.chunk])
                deadline = time.monotonic() + args.timeout_s
                while sink.health()["written"] != args.points and time.monotonic() < deadline:
                    time.sleep(0.005)
                if sink.health()["written"] != args.points:
                    raise SystemExit(f"sink wrote {sink.health()} within {args.timeout_s} s")
                sink_rates.append(args.points / (time.perf_counter() - started))

                # one-point submits while the writer writes, then with the server gone
                single = make_points(20_000, args.homes, offset + 2 * args.points)
                costs = []
                for p in single[:10_000]:
                    t0 = time.perf_counter()
                    sink.submit([p])
                    costs.append((time.perf_counter() - t0) * 1e6)
                submit_p99.append(quantile(costs, 0.99))
                submit_max.append(max(costs))
                server.stop()
                down = []
                for p in single[10_000:]:
                    t0 = time.perf_counter()
                    sink.submit([p])
                    down.append((time.perf_counter() - t0) * 1e6)
                submit_down_p99.append(quantile(down, 0.99))
                submit_max.append(max(down))
                sink.close(timeout_s=0.5)
                server.start()
                print(
                    f"rep {rep + 1}: reference {reference[-1]:.0f}/s, sink {sink_rates[-1]:.0f}/s",
                    file=sys.stderr,
                )
        finally:
            server.stop()

    ratios = [s / r for s, r in zip(sink_rates, reference, strict=True)]
    result = {
        "bench": "telemetry_sink",
        "points_per_s": spread(sink_rates),
        "reference_points_per_s": spread(reference),
        "ratio": spread(ratios),
        "submit_p99_us": spread(submit_p99),
        "submit_p99_us_server_down": spread(submit_down_p99),
        "submit_max_us": round(max(submit_max), 1),
        "conditions": {
            "points": args.points,
            "homes": args.homes,
            "batch_size": args.batch_size,
            "chunk": args.chunk,
            "repeat": args.repeat,
            "server": "victoria-metrics (Debian), loopback",
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

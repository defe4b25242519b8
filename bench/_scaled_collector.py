"""``anbu collector serve`` on an accelerated clock, for bench/soak.py only.

    ANBU_SOAK_START_S=<epoch> ANBU_SOAK_WALL0_S=<epoch> ANBU_SOAK_RATE=200 \\
        python bench/_scaled_collector.py

The collector's clock reads ``START + (time.time() - WALL0) * RATE``: every process that uses
the same three numbers (the simulator in bench/soak.py does) agrees on the simulated time.
What the clock drives is whatever the collector takes as ``clock`` (collector/runtime.py): the
receive time of each message, in the main process and in the bulk child (and so the device-clock
check and supervision's "heartbeats stopped"), dispatch and escalation deadlines,
notification retry times, the silence schedule, retention ages; and the API's ``now``.
What it cannot speed up: the real-time periods of the loops (scheduler, notification poll,
retention interval — set them in real seconds), the broker's keepalives and session expiry,
HTTP and database timeouts. Not a production setting, deliberately: nothing in ``collector/``
knows about it.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class ScaledClock:
    """``START + (time.time() - WALL0) * RATE`` as a datetime. An object, not a closure, so it
    pickles: the bulk child (collector/bulk_process.py, spawned) stamps its heartbeats with it
    too; on the wall clock it received them at real time, hours behind everything else."""

    def __init__(self, start_s: float, wall0_s: float, rate: float) -> None:
        self.start_s, self.wall0_s, self.rate = start_s, wall0_s, rate

    def __call__(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(
            self.start_s + (time.time() - self.wall0_s) * self.rate, dt.UTC
        )


def scaled_clock(start_s: float, wall0_s: float, rate: float) -> Callable[[], dt.datetime]:
    return ScaledClock(start_s, wall0_s, rate)


def trace_memory(directory: Path, every_s: float) -> None:
    """Snapshots of the main process's allocations every ``every_s`` real seconds (tracemalloc;
    slows the collector down: for finding what grows, not for the figures)."""
    import collections
    import gc
    import json
    import threading
    import tracemalloc

    tracemalloc.start(8)
    directory.mkdir(parents=True, exist_ok=True)

    def dump() -> None:
        n = 0
        while True:
            time.sleep(every_s)
            n += 1
            tracemalloc.take_snapshot().dump(str(directory / f"snapshot-{n:03d}.pickle"))
            counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
            types = json.dumps(dict(counts.most_common(300)))
            (directory / f"types-{n:03d}.json").write_text(types)

    threading.Thread(target=dump, name="soak-tracemalloc", daemon=True).start()


def main() -> int:
    import uvicorn

    if os.environ.get("ANBU_SOAK_TRACEMALLOC_DIR"):
        trace_memory(
            Path(os.environ["ANBU_SOAK_TRACEMALLOC_DIR"]),
            float(os.environ.get("ANBU_SOAK_TRACEMALLOC_EVERY_S", "120")),
        )

    from anbu import logs
    from collector.api.deps import utc_now
    from collector.main import create_app
    from collector.runtime import Collector
    from collector.settings import CollectorSettings

    clock = scaled_clock(
        float(os.environ["ANBU_SOAK_START_S"]),
        float(os.environ["ANBU_SOAK_WALL0_S"]),
        float(os.environ["ANBU_SOAK_RATE"]),
    )
    settings = CollectorSettings()
    logs.setup(settings.log_level)
    runtime = Collector(settings, clock=clock)
    app = create_app(runtime, settings=settings)

    async def scaled_now() -> dt.datetime:
        return clock()

    app.dependency_overrides[utc_now] = scaled_now
    uvicorn.run(
        app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

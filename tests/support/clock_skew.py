"""Run an ``anbu`` command whose wall clock is off by the seconds written in a file.

    python tests/support/clock_skew.py OFFSET_FILE agent run --config ...

The file holds one number (seconds, may be negative); it is re-read at most every 0.2 s, so a
writer can make the clock jump while the agent runs, the way an NTP step or a dead RTC battery
does on a Raspberry Pi. Only ``time.time`` and ``time.time_ns`` are shifted (CLOCK_REALTIME as
Python sees it); ``time.monotonic`` is not, just as a real clock step leaves CLOCK_MONOTONIC
alone. The agent's message timestamps come from ``time.time`` (edge_agent.agent.Clocks.wall),
its timers and paho's keepalives from the monotonic clock. Log records keep the true time (as a
log collector's stamp would), so an observer can time what the agent did.

Why not libfaketime (Debian's ``faketime`` 0.9.10): under it Python 3.11's ``time.sleep`` fails
with EINVAL when the monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC=1) and hangs
when it is faked too, so an agent cannot run under it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_REREAD_S = 0.2


def command(offset_file: Path) -> list[str]:
    """The command prefix that runs ``anbu`` with its wall clock off by ``offset_file``'s value
    (in place of ``python -m anbu``)."""
    return [sys.executable, str(Path(__file__).resolve()), str(offset_file)]


def set_offset(offset_file: Path, seconds: float) -> None:
    """Make the clock jump: the running process picks the new offset up within 0.2 s."""
    tmp = offset_file.with_name(offset_file.name + ".tmp")
    tmp.write_text(f"{seconds}\n", encoding="utf-8")
    tmp.replace(offset_file)  # atomic: the reader never sees a half-written number


class _Offset:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds = 0.0
        self._read_at = -_REREAD_S

    def __call__(self) -> float:
        now = time.monotonic()
        if now - self._read_at >= _REREAD_S:
            self._read_at = now
            # keep the last offset when the file is unreadable: it must not move the clock
            with contextlib.suppress(OSError, ValueError):
                self.seconds = float(self.path.read_text(encoding="utf-8").strip() or 0)
        return self.seconds


class _TrueTime:
    """The ``time`` module as ``logging`` sees it: everything real, the wall clock unshifted."""

    def __init__(self, wall: Callable[[], float], wall_ns: Callable[[], int]) -> None:
        self.time = wall
        self.time_ns = wall_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    offset = _Offset(Path(sys.argv[1]))
    real_time, real_time_ns = time.time, time.time_ns
    # Before anything of anbu is imported, so that defaults such as Clocks.wall bind to these.
    time.time = lambda: real_time() + offset()
    time.time_ns = lambda: real_time_ns() + int(offset() * 1e9)
    logging.time = _TrueTime(real_time, real_time_ns)  # type: ignore[attr-defined]
    sys.argv = ["anbu", *sys.argv[2:]]
    from anbu.cli import main as anbu_main

    return int(anbu_main() or 0)


if __name__ == "__main__":
    sys.exit(main())

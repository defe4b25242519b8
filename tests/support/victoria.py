"""A private VictoriaMetrics per test: a real server speaking the InfluxDB v2 write protocol.

    server = start_victoria(tmp_path / "vm")
    server.url                        # http://127.0.0.1:PORT, for influxdb-client
    server.export('{__name__=~"heartbeat_.*"}')   # every stored sample, after a force flush
    server.query("count(heartbeat_uptime_s)")    # an instant MetricsQL query
    server.stop(); server.start()     # same port, same data directory (kill() = crash)

Debian's ``victoria-metrics`` accepts ``influxdb-client`` writes on ``/api/v2/write`` (it answers no
Flux, so points are read back through ``/internal/force_flush`` + ``/api/v1/export``). Metric names
become ``<measurement>_<field>`` and tags become labels. ``-search.latencyOffset=0s`` makes fresh
samples visible to queries at once instead of after the default 30 s.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VICTORIA = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
HOST = "127.0.0.1"
_READY_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Series:
    """One exported series: its labels (``__name__`` included) and its samples."""

    labels: dict[str, str]
    values: tuple[float, ...]
    timestamps_ms: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.labels["__name__"]


@dataclass
class VictoriaMetrics:
    """A running (or stopped) victoria-metrics process on a loopback port."""

    workdir: Path
    port: int
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.is_running:
            return
        log = (self.workdir / "victoria.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [
                    VICTORIA,
                    f"-httpListenAddr={HOST}:{self.port}",
                    f"-storageDataPath={self.workdir / 'data'}",
                    "-retentionPeriod=1d",
                    "-search.latencyOffset=0s",
                    "-loggerLevel=WARN",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited:\n{self.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as reply:  # noqa: S310
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"victoria-metrics not ready:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGINT: VictoriaMetrics writes its in-memory buffers to disk, then exits."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL: like a crash; samples of the last second or so, not yet flushed, are lost."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process = None

    def log_text(self) -> str:
        path = self.workdir / "victoria.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as reply:  # noqa: S310
            body: bytes = reply.read()
            return body

    def flush(self) -> None:
        """Make everything ingested so far visible to searches."""
        self._get("/internal/force_flush")

    def export(self, match: str = '{__name__=~".+"}') -> list[Series]:
        """Every sample of the series matching ``match``, after a flush."""
        self.flush()
        body = self._get("/api/v1/export", {"match[]": match})
        found = []
        for line in body.decode().splitlines():
            if line.strip():
                item = json.loads(line)
                found.append(
                    Series(
                        labels=item["metric"],
                        values=tuple(float(v) for v in item["values"]),
                        timestamps_ms=tuple(int(t) for t in item["timestamps"]),
                    )
                )
        return found

    def wait_for_samples(
        self, count: int, match: str = '{__name__=~".+"}', timeout_s: float = 10.0
    ) -> list[Series]:
        """Poll :meth:`export` until at least ``count`` samples match (new series take a moment)."""
        deadline = time.monotonic() + timeout_s
        while True:
            series = self.export(match)
            if sum(len(s.values) for s in series) >= count or time.monotonic() > deadline:
                return series
            time.sleep(0.1)

    def query(self, expr: str, at_s: float | None = None) -> dict[str, Any]:
        """An instant query (``/api/v1/query``); the decoded ``data`` object."""
        params = {"query": expr}
        if at_s is not None:
            params["time"] = f"{at_s:.3f}"
        reply = json.loads(self._get("/api/v1/query", params))
        if reply.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {reply}")
        data: dict[str, Any] = reply["data"]
        return data


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_victoria(workdir: Path) -> VictoriaMetrics:
    """Start victoria-metrics on a free loopback port with its data under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    last_error: RuntimeError | None = None
    for _attempt in range(3):  # the probed port can be taken before the server binds it
        server = VictoriaMetrics(workdir, _free_port())
        try:
            server.start()
        except RuntimeError as exc:
            last_error = exc
            continue
        return server
    assert last_error is not None
    raise last_error

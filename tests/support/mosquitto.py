"""A private Mosquitto broker per test: its own config, ports, password file, ACL and persistence.

    broker = start_broker(tmp_path, users={"collector": "pw", "dev-1": "pw1"},
                          acl=anbu_acl("collector"), tls=make_cert_bundle(tmp_path / "certs"))
    broker.url        # mqtt://127.0.0.1:PORT   (password listener)
    broker.tls_url    # mqtts://127.0.0.1:PORT  (client certificate required, CN = username)
    broker.kill(); broker.restart()   # same ports, same persistence directory

Started as root, mosquitto would drop to the ``mosquitto`` user and could not write persistence in a
root-owned temp dir, hence the ``user root`` line. ``max_queued_messages`` is raised because the
default (1000) silently drops QoS 1 bursts to a slow subscriber.

The access rules are the contract's (:mod:`firmware_config.acl`): a dynamic-security document
that refuses a forbidden subscription in SUBACK and binds each device's client id to its id. The
fixture brokers let ``DEVICE_IDS`` sit in any household, because tests move one id between homes;
pass ``acl=anbu_acl(COLLECTOR_USER, [DeviceGrant(...)])`` for a broker that pins each device.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_config.acl import (
    DeviceGrant,
    add_client,
    dynsec_config,
    find_dynsec_plugin,
    security_config_lines,
)
from tests.support.certs import CertBundle

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HOST = "127.0.0.1"
_READY_TIMEOUT_S = 5.0

COLLECTOR_USER = "collector"
"""Username (and client-certificate CN) of the collector in the fixture brokers."""
DEVICE_IDS = ("dev-1", "dev-2", "dev-3")
"""Device ids (= usernames and certificate CNs) known to the fixture brokers."""


def anbu_users() -> dict[str, str]:
    """Usernames and passwords of the fixture brokers: the collector and ``DEVICE_IDS``."""
    return {name: f"{name}-secret" for name in (COLLECTOR_USER, *DEVICE_IDS)}


def anbu_acl(
    collector_user: str,
    devices: Iterable[DeviceGrant | str] = DEVICE_IDS,
    *,
    extra: Mapping[str, list[dict[str, Any]]] | None = None,
) -> str:
    """Anbu's access rules (:func:`firmware_config.acl.dynsec_json`), the ones field brokers use.

    A plain device id stands for a device allowed in any district and household. ``extra`` adds
    clients with rules of their own (e.g. ``{"simulator": simulator_acls()}``), for tests only.
    """
    grants = [d if isinstance(d, DeviceGrant) else DeviceGrant(d) for d in devices]
    config = dynsec_config(collector_user, grants)
    for username, acls in (extra or {}).items():
        add_client(config, username, acls)
    return json.dumps(config, indent=2) + "\n"


def password_line(username: str, password: str) -> str:
    """A ``mosquitto_passwd`` compatible line (``$7$``: PBKDF2-SHA512, 101 iterations)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return (
        f"{username}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Broker:
    """A running (or stopped) mosquitto process and everything needed to reach it."""

    workdir: Path
    config_file: Path
    log_file: Path
    port: int
    tls_port: int | None
    users: dict[str, str]
    certs: CertBundle | None
    host: str = HOST
    devices: frozenset[str] = frozenset()
    """Device usernames the access rules know: their client id must equal the username."""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``mqtt://`` URL of the password listener."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        """``mqtts://`` URL of the client-certificate listener."""
        if self.tls_port is None:
            raise RuntimeError("this broker has no TLS listener")
        return f"mqtts://{self.host}:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """CA that signed the broker's (and the clients') certificates."""
        if self.certs is None:
            raise RuntimeError("this broker has no TLS listener")
        return self.certs.ca_file

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def password(self, username: str) -> str:
        return self.users[username]

    def log_text(self) -> str:
        """Everything the broker logged so far (across restarts)."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        """Start the process (if it is not running) and wait until every listener accepts."""
        if self.is_running:
            return
        stderr = (self.workdir / "mosquitto.stderr").open("ab")
        try:
            self._process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                cwd=self.workdir,
            )
        finally:
            stderr.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        ports = [p for p in (self.port, self.tls_port) if p is not None]
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while ports:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self._process.returncode}:\n{self._diagnostics()}"
                )
            try:
                with socket.create_connection((self.host, ports[0]), timeout=0.2):
                    ports.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not listen on {ports}:\n{self._diagnostics()}")
            time.sleep(0.01)

    def _diagnostics(self) -> str:
        stderr = self.workdir / "mosquitto.stderr"
        extra = stderr.read_text(errors="replace") if stderr.exists() else ""
        return self.log_text()[-4000:] + extra[-2000:]

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM: mosquitto saves persistence and sends no last wills... then wait for it."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL: like a power cut; only what was autosaved (every second) survives."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop (if running) and start again on the same ports with the same persistence."""
        self.stop()
        self.start()


def _config_text(
    workdir: Path,
    *,
    port: int,
    tls_port: int | None,
    tls: CertBundle | None,
    password_file: Path | None,
    acl_file: Path | None,
    persistence: bool,
    max_queued_messages: int,
    log_file: Path,
) -> str:
    lines = [
        "# generated by tests/support/mosquitto.py",
        "user root",
        "per_listener_settings false",
        f"allow_anonymous {'false' if password_file is not None else 'true'}",
        f"max_queued_messages {max_queued_messages}",
        "max_inflight_messages 100",
        f"log_dest file {log_file}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "log_type subscribe",
        "connection_messages true",
        "log_timestamp_format %H:%M:%S",
    ]
    if password_file is not None:
        lines.append(f"password_file {password_file}")
    if acl_file is not None and acl_file.suffix == ".json":
        lines += security_config_lines(find_dynsec_plugin(), str(acl_file))
    elif acl_file is not None:  # a hand-written acl_file (grants every subscription in SUBACK)
        lines.append(f"acl_file {acl_file}")
    if persistence:
        lines += [
            "persistence true",
            f"persistence_location {workdir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
        ]
    else:
        lines.append("persistence false")
    lines.append(f"listener {port} {HOST}")
    if tls is not None and tls_port is not None:
        lines += [
            f"listener {tls_port} {HOST}",
            f"cafile {tls.ca_file}",
            f"certfile {tls.server_cert_file}",
            f"keyfile {tls.server_key_file}",
            "require_certificate true",
            "use_identity_as_username true",
            # the certificate's CN becomes the client id too: no device can take another's session
            "use_username_as_clientid true",
        ]
    return "\n".join(lines) + "\n"


def start_broker(
    workdir: Path,
    *,
    users: Mapping[str, str] | None = None,
    acl: str | None = None,
    tls: CertBundle | None = None,
    persistence: bool = True,
    max_queued_messages: int = 100_000,
) -> Broker:
    """Write a config under ``workdir`` and start mosquitto on free ports; return when it listens.

    ``users`` (username -> password) turns anonymous access off; ``acl`` is the dynamic-security
    document (see :func:`anbu_acl`), or the text of a plain ``acl_file``; ``tls`` adds a listener
    that requires a client certificate signed by the bundle's CA and takes the certificate's CN as
    the username and client id.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    password_file = None
    if users is not None:
        password_file = workdir / "passwords"
        password_file.write_text("".join(password_line(u, p) + "\n" for u, p in users.items()))
        os.chmod(password_file, 0o600)
    acl_file = None
    devices: frozenset[str] = frozenset()
    if acl is not None and acl.lstrip().startswith("{"):
        acl_file = workdir / "dynsec.json"
        acl_file.write_text(acl)
        devices = frozenset(
            c["username"] for c in json.loads(acl)["clients"] if c.get("clientid") == c["username"]
        )
    elif acl is not None:
        acl_file = workdir / "acl"
        acl_file.write_text(acl)
    log_file = workdir / "mosquitto.log"
    config_file = workdir / "mosquitto.conf"
    last_error: RuntimeError | None = None
    for _attempt in range(3):  # a free port can be taken between probing and binding
        ports = _free_ports(2 if tls is not None else 1)
        tls_port = ports[1] if tls is not None else None
        config_file.write_text(
            _config_text(
                workdir,
                port=ports[0],
                tls_port=tls_port,
                tls=tls,
                password_file=password_file,
                acl_file=acl_file,
                persistence=persistence,
                max_queued_messages=max_queued_messages,
                log_file=log_file,
            )
        )
        broker = Broker(
            workdir=workdir,
            config_file=config_file,
            log_file=log_file,
            port=ports[0],
            tls_port=tls_port,
            users=dict(users or {}),
            certs=tls,
            devices=devices,
        )
        try:
            broker.start()
        except RuntimeError as exc:
            last_error = exc
            continue
        return broker
    assert last_error is not None
    raise last_error

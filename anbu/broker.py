"""A private Mosquitto for the demo: found (or installed) and configured with Anbu's ACL.

The access rules are the contract's (:mod:`firmware_config.acl`, enforced by Mosquitto's
dynamic-security plugin): each device may use only its own topics and its own client id.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from firmware_config.acl import (
    DeviceGrant,
    PluginNotFound,
    dynsec_json,
    find_dynsec_plugin,
    security_config_lines,
)


class BrokerUnavailable(RuntimeError):
    """Mosquitto is not installed and could not be installed here."""


def find_mosquitto(install: bool = True) -> str:
    """The mosquitto binary; installs the Debian package when missing and allowed (root + apt)."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None
    )
    if found:
        return found
    apt = shutil.which("apt-get")
    if install and apt and os.geteuid() == 0:
        print("mosquitto not found: installing the Debian package (apt-get install mosquitto)...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "update", "-qq"], check=False, env=env)  # noqa: S603
        subprocess.run(  # noqa: S603
            [apt, "install", "-y", "-qq", "mosquitto"], check=False, env=env
        )
        if os.path.exists("/usr/sbin/mosquitto"):
            return "/usr/sbin/mosquitto"
    raise BrokerUnavailable(
        "Mosquitto (an MQTT broker) is needed and was not found. Install it with "
        "'sudo apt-get install mosquitto' (Debian/Ubuntu/Raspberry Pi OS) or 'brew install "
        "mosquitto' (macOS), then run the demo again."
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class DemoBroker:
    """Mosquitto with passwords and the Anbu ACL on 127.0.0.1, in its own directory."""

    def __init__(self, workdir: Path, users: dict[str, str], collector_user: str) -> None:
        self.workdir = workdir
        self.users = users
        self.collector_user = collector_user
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, binary: str, devices: Iterable[DeviceGrant] | None = None) -> None:
        """Write the files and start mosquitto.

        ``devices`` pins each device to its home; by default every user but the collector is a
        device allowed in any household of the demo.
        """
        try:
            plugin = find_dynsec_plugin()
        except PluginNotFound as exc:
            raise BrokerUnavailable(str(exc)) from exc
        if devices is None:
            devices = [DeviceGrant(u) for u in self.users if u != self.collector_user]
        self.workdir.mkdir(parents=True, exist_ok=True)
        passwd = self.workdir / "passwd"
        passwd.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()), encoding="utf-8")
        passwd.chmod(0o600)
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        subprocess.run([tool, "-U", str(passwd)], check=True)  # noqa: S603 - hash in place
        rules = self.workdir / "dynsec.json"
        rules.write_text(dynsec_json(self.collector_user, devices), encoding="utf-8")
        config = self.workdir / "mosquitto.conf"
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            *security_config_lines(plugin, str(rules)),
            "persistence false",
            "max_queued_messages 100000",
            f"log_dest file {self.workdir / 'mosquitto.log'}",
            f"listener {self.port} 127.0.0.1",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process = subprocess.Popen([binary, "-c", str(config)])  # noqa: S603
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerUnavailable(f"mosquitto exited; see {self.workdir / 'mosquitto.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise BrokerUnavailable("mosquitto did not start listening within 5 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()

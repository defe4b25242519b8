"""The rolling update's health gate (roles/edge_agent/tasks/health.yml) against a running
collector and a running agent: it passes when the collector sees the device online, on the
expected version, with a fresh heartbeat, and fails the host when the version is not the one
rolled out. This container has no systemd, so the unit check is given ``echo active`` in place
of ``systemctl is-active`` (the only stand-in here)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from anbu import __version__
from collector.store.db import Database
from tests.ansible.test_templates import ANSIBLE_DIR, ANSIBLE_PLAYBOOK, _ansible_env
from tests.collector.helpers import register_homes
from tests.e2e.processes import (
    Proc,
    agent_config,
    collector_env,
    free_port,
    start_agent,
    start_collector,
)
from tests.support.fixtures import sms_gateway, smtp_server  # noqa: F401 - fixtures
from tests.support.mosquitto import Broker
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow
TOKEN = "changethis"


@pytest.fixture
def running_home(
    tmp_path: Path,
    broker: Broker,
    smtp_server: SmtpServer,  # noqa: F811
    sms_gateway: SmsGateway,  # noqa: F811
) -> Iterator[str]:
    """A collector with household h-1 / device dev-1 registered, and that device's agent running."""
    db = Database(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    register_homes(db)
    db.dispose()
    port = free_port()
    collector: Proc = start_collector(
        collector_env(db.url, broker, smtp_server, sms_gateway, port), tmp_path / "collector.log"
    )
    config = agent_config(tmp_path / "agent.toml", broker, "dev-1", "h-1", heartbeat_s=1)
    agent = start_agent(config, tmp_path / "gpio.sock", tmp_path / "agent.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        agent.stop()
        collector.stop()


def gate(tmp_path: Path, url: str, wheel: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "inventory.yml"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "edge_agent_district": "seodaemun",
        "edge_agent_household_id": "h-1",
        "edge_agent_device_id": "dev-1",
        "edge_agent_package_src": f"/dist/{wheel}",
        "edge_agent_health_collector_url": url,
        "edge_agent_health_api_token": TOKEN,
        "edge_agent_health_timeout_s": 10,
    }
    inventory.write_text(yaml.safe_dump({"edge_agents": {"hosts": {"pi": host}}}))
    playbook = tmp_path / "gate.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Health gate",
                    "hosts": "edge_agents",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Gate",
                            "ansible.builtin.include_role": {
                                "name": "edge_agent",
                                "tasks_from": "health",
                            },
                        }
                    ],
                }
            ]
        )
    )
    assert ANSIBLE_PLAYBOOK is not None
    env = {**_ansible_env(), "ANSIBLE_ROLES_PATH": str(ANSIBLE_DIR / "roles")}
    extra = json.dumps({"__edge_agent_is_active_argv": ["echo", "active"]})
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook), "-e", extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_gate_passes_a_healthy_device_and_fails_the_wrong_version(
    tmp_path: Path, running_home: str
) -> None:
    time.sleep(1)
    healthy = gate(tmp_path, running_home, f"anbu-{__version__}-py3-none-any.whl")
    assert healthy.returncode == 0, healthy.stdout[-4000:]
    assert "Wait for the collector to see the device online" in healthy.stdout

    started = time.monotonic()
    stale = gate(tmp_path, running_home, "anbu-9.9.9-py3-none-any.whl")
    assert stale.returncode != 0
    assert "FAILED" in stale.stdout and "agent_version" in stale.stdout
    assert time.monotonic() - started < 60  # bounded by edge_agent_health_timeout_s


def test_the_gate_needs_the_collector_url(tmp_path: Path) -> None:
    result = gate(tmp_path, "", "anbu-0.1.0-py3-none-any.whl")
    assert result.returncode != 0 and "set anbu_collector_url" in result.stdout

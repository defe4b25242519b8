"""ansible/register.yml (role anbu_register) against a running collector process: the inventory
that provisions the Pis registers their households and devices; a second run changes nothing;
a device the collector has in another household stops the play."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from collector.store.db import Database
from tests.ansible.test_templates import ANSIBLE_DIR, ANSIBLE_PLAYBOOK, _ansible_env, _recap
from tests.e2e.processes import Proc, collector_env, free_port, start_collector
from tests.support.fixtures import sms_gateway, smtp_server  # noqa: F401 - fixtures
from tests.support.mosquitto import Broker
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow
TOKEN = "changethis"  # the collector's development default
HOMES = {
    "pi-dongjak-0001": ("hh-0001", {"resident_name": "김순자", "guardian_phone": "010-0000-0001"}),
    "pi-dongjak-0002": ("hh-0002", {"resident_name": "Jane Park", "address": "2 Sangdo-ro"}),
}


@pytest.fixture
def collector_url(
    tmp_path: Path,
    broker: Broker,
    smtp_server: SmtpServer,  # noqa: F811
    sms_gateway: SmsGateway,  # noqa: F811
) -> Iterator[str]:
    db = Database(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    db.create_schema()
    db.dispose()
    port = free_port()
    proc: Proc = start_collector(
        collector_env(db.url, broker, smtp_server, sms_gateway, port), tmp_path / "collector.log"
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def play(tmp_path: Path, url: str, homes: dict[str, tuple[str, dict[str, Any]]]) -> Any:
    hosts = {
        host: {
            "ansible_connection": "local",
            "edge_agent_district": "dongjak",
            "edge_agent_household_id": household,
            "edge_agent_device_id": host,
            "edge_agent_household": details,
        }
        for host, (household, details) in homes.items()
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {
                        "anbu_collector_url": url,
                        "vault_anbu_collector_api_token": TOKEN,
                        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    },
                    "children": {"edge_agents": {"hosts": hosts}},
                }
            },
            allow_unicode=True,
        )
    )
    assert ANSIBLE_PLAYBOOK is not None
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), "register.yml"],
        cwd=ANSIBLE_DIR,
        env=_ansible_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_inventory_registers_households_and_devices(tmp_path: Path, collector_url: str) -> None:
    api = httpx.Client(base_url=collector_url, headers={"Authorization": f"Bearer {TOKEN}"})
    caregiver = {"name": "김미영", "phone": "010-1234-5678", "email": "my@example.org"}
    assert api.post("/api/v1/caregivers", json={**caregiver, "district": "dongjak"}).is_success
    first = play(tmp_path, collector_url, HOMES)
    assert first.returncode == 0, first.stdout[-4000:]
    for host, (household, details) in HOMES.items():
        assert _recap(first.stdout, host)["changed"] == 2  # household + device
        device = api.get(f"/api/v1/devices/{host}").json()
        assert device["household_id"] == household
        stored = api.get(f"/api/v1/households/{household}").json()
        assert stored["district"] == "dongjak"
        assert stored["resident_name"] == details["resident_name"]

    second = play(tmp_path, collector_url, HOMES)
    assert second.returncode == 0, second.stdout[-4000:]
    for host in HOMES:
        assert _recap(second.stdout, host)["changed"] == 0

    # The same device now claimed by another household: refused, nothing moved.
    moved = {"pi-dongjak-0001": ("hh-0002", HOMES["pi-dongjak-0002"][1])}
    refused = play(tmp_path, collector_url, moved)
    assert refused.returncode != 0
    assert "The collector has device pi-dongjak-0001 in household hh-0001" in refused.stdout
    assert api.get("/api/v1/devices/pi-dongjak-0001").json()["household_id"] == "hh-0001"

    # A household without its resident's name is refused before any call.
    nameless = play(tmp_path, collector_url, {"pi-dongjak-0003": ("hh-0003", {})})
    assert nameless.returncode != 0 and "edge_agent_household.resident_name" in nameless.stdout
    assert api.get("/api/v1/devices/pi-dongjak-0003").status_code == 404

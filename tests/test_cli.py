"""The ``anbu`` program: every subcommand has --help; bad configuration stops start-up clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ANBU = [sys.executable, "-m", "anbu"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ANBU, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("agent", "--help"),
        ("agent", "run", "--help"),
        ("agent", "check-model", "--help"),
        ("agent", "write-manifest", "--help"),
        ("agent", "verify", "--help"),
        ("agent", "example-config", "--help"),
        ("collector", "--help"),
        ("collector", "serve", "--help"),
        ("demo", "--help"),
    ],
)
def test_every_command_has_help(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert "usage: anbu" in result.stdout


def test_unknown_command_is_refused() -> None:
    result = run("fly")
    assert result.returncode == 2 and "unknown command 'fly'" in result.stderr


def test_agent_refuses_a_bad_config_naming_field_value_and_file(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        'district = "d"\nhousehold_id = "h"\ndevice_id = "x"\nheartbeat_interval_s = -5\n'
        '[broker]\nurl = "mqtt://127.0.0.1:1"\n',
        encoding="utf-8",
    )
    result = run("agent", "run", "--config", str(config), "--no-audio", "--no-gpio")
    assert result.returncode == 2
    assert "heartbeat_interval_s=-5" in result.stderr and str(config) in result.stderr


def test_agent_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        'district = "d"\nhousehold_id = "h"\ndevice_id = "x"\n'
        f'outbox_path = "{tmp_path / "o.sqlite3"}"\n[broker]\nurl = "mqtt://127.0.0.1:1"\n',
        encoding="utf-8",
    )
    result = run("agent", "run", "--config", str(config), "--no-gpio")
    assert result.returncode == 2
    assert "voice.model_path is not set" in result.stderr


def test_collector_refuses_placeholder_secrets_in_production() -> None:
    import os

    env = {**os.environ, "ANBU_ENVIRONMENT": "production"}
    result = run("collector", "serve", env=env)
    assert result.returncode == 2
    assert "changethis" in result.stderr


# --- what a new user tripped over: one clear line and an exit code each ------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without ANBU_* settings (they would change what is tested)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANBU_", "GPIOZERO_"))}
    env.update(extra)
    return env


def only_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def json_line(stderr: str) -> dict[str, object]:
    import json

    entry: dict[str, object] = json.loads(only_line(stderr))
    assert "exc" not in entry, entry
    return entry


def test_collector_reports_every_placeholder_secret_in_production() -> None:
    result = run("collector", "init-db", env=clean_env(ANBU_ENVIRONMENT="production"))
    assert result.returncode == 2
    assert "api_token = 'changethis'" in result.stderr
    assert "mqtt_password = 'changethis'" in result.stderr
    assert "set ANBU_MQTT_PASSWORD in production" in result.stderr


def test_collector_refuses_a_sqlite_folder_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    url = f"sqlite:///{missing}/anbu.sqlite3"
    result = run("collector", "init-db", env=clean_env(ANBU_DATABASE_URL=url))
    assert result.returncode == 2
    line = only_line(result.stderr)
    assert f"directory {missing} does not exist" in line
    assert not missing.parent.exists()


def test_collector_refuses_a_relative_sqlite_path(tmp_path: Path) -> None:
    env = clean_env(ANBU_DATABASE_URL="sqlite:///var/anbu.sqlite3")
    result = subprocess.run(
        [*ANBU, "collector", "init-db"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "relative path 'var/anbu.sqlite3'" in only_line(result.stderr)
    assert not (tmp_path / "var").exists()


def test_collector_default_database_is_absolute() -> None:
    from collector.settings import CollectorSettings

    url = CollectorSettings.model_fields["database_url"].default
    assert url.startswith("sqlite:////")


def test_collector_serve_with_unreachable_postgres_logs_one_line() -> None:
    from anbu.broker import free_port

    url = f"postgresql+psycopg://anbu@127.0.0.1:{free_port()}/anbu"
    result = run("collector", "serve", env=clean_env(ANBU_DATABASE_URL=url))
    assert result.returncode == 1
    entry = json_line(result.stderr)
    assert entry["msg"] == "cannot start"
    assert "is not usable" in str(entry["error"]) and "127.0.0.1" in str(entry["error"])


@pytest.mark.postgres
def test_collector_with_a_wrong_postgres_role_says_so_in_one_line() -> None:
    from tests.support.postgres import PostgresUnavailable, start_postgres

    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"bootstrap installs PostgreSQL: {exc}")
    try:
        url = server.url_for("postgres").replace("postgres@", "no_such_role@", 1)
        result = run("collector", "init-db", env=clean_env(ANBU_DATABASE_URL=url))
        served = run("collector", "serve", env=clean_env(ANBU_DATABASE_URL=url))
    finally:
        server.stop()
    assert result.returncode == 1
    assert 'role "no_such_role" does not exist' in only_line(result.stderr)
    assert served.returncode == 1
    assert 'role "no_such_role" does not exist' in str(json_line(served.stderr)["error"])


def test_agent_without_a_gpio_driver_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        'district = "d"\nhousehold_id = "h"\ndevice_id = "x"\n'
        f'outbox_path = "{tmp_path / "o.sqlite3"}"\n[broker]\nurl = "mqtt://127.0.0.1:1"\n',
        encoding="utf-8",
    )
    # This machine is no Pi and has no pin library: gpiozero finds no pin factory.
    result = run("agent", "run", "--config", str(config), "--no-audio", env=clean_env())
    assert result.returncode == 2
    entry = json_line(result.stderr)
    assert str(entry["error"]).startswith("no GPIO driver")
    assert "--no-gpio" in str(entry["error"])


def test_agent_missing_config_suggests_config_and_the_example(tmp_path: Path) -> None:
    result = run("agent", "run", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    line = only_line(result.stderr)
    assert "does not exist" in line and "--config PATH" in line and "example-config" in line


def test_example_config_is_a_valid_device_config(tmp_path: Path) -> None:
    result = run("agent", "example-config")
    assert result.returncode == 0
    (tmp_path / "agent.toml").write_text(result.stdout, encoding="utf-8")
    checked = run("agent", "check-config", "--config", str(tmp_path / "agent.toml"))
    assert checked.returncode == 0, checked.stderr
    assert '"device_id": "pi-dongjak-0001"' in checked.stdout


# --- anbu demo -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--http-port", "99999"), "--http-port 99999 is not a port"),
        (("--sos-interval-s", "0"), "--sos-interval-s must be more than 0"),
        (("--duration", "-1"), "--duration must be 0"),
        (("--log-level", "loud"), "--log-level must be"),
    ],
)
def test_demo_refuses_bad_arguments_before_starting_anything(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "demo"
    result = run("demo", "--workdir", str(workdir), *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not workdir.exists()  # no broker was started: it would live there


def test_demo_names_http_port_when_the_port_is_busy(tmp_path: Path) -> None:
    import socket
    import time

    workdir = tmp_path / "demo"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = run("demo", "--workdir", str(workdir), "--http-port", str(port))
        took = time.monotonic() - started
    assert result.returncode == 2
    line = only_line(result.stderr)
    assert f"127.0.0.1:{port}" in line and "--http-port" in line
    assert took < 10
    assert not workdir.exists()


def test_demo_without_aiosmtpd_says_which_extra_to_install() -> None:
    # A meta-path finder that hides aiosmtpd, as in an install of 'anbu[collector]' only.
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'aiosmtpd':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from anbu.cli import main\n"
        "sys.exit(main(['demo', '--homes', '1']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "'aiosmtpd' is not installed: pip install 'anbu[demo]'" in only_line(result.stderr)


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", ["SIGINT", "SIGTERM"])
def test_demo_stopped_by_a_signal_prints_and_writes_the_summary_and_cleans_up(
    stop_signal: str, tmp_path: Path
) -> None:
    import json
    import os
    import signal
    import time

    import httpx

    from anbu.broker import free_port

    temp = tmp_path / "tmp"
    temp.mkdir()
    summary = tmp_path / "summary.json"
    http_port = free_port()
    process = subprocess.Popen(
        [
            *ANBU,
            "demo",
            "--homes",
            "3",
            "--http-port",
            str(http_port),
            "--heartbeat-interval-s",
            "1",
            "--summary-json",
            str(summary),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            if "Ctrl-C stops." in line:
                break
            assert time.monotonic() < deadline
        assert list(temp.glob("anbu-demo-*")), "the demo works in a temp folder"

        def stored() -> int:
            try:
                health = httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=2).json()
            except httpx.HTTPError:
                return 0
            return int(health.get("ingest", {}).get("bulk", {}).get("applied", 0))

        # On a loaded machine the bulk process may still be starting when the demo says it is up:
        # stop it once a heartbeat was stored, not after a fixed sleep.
        deadline = time.monotonic() + 60
        while stored() < 1:
            assert time.monotonic() < deadline, "no heartbeat stored within 60 s"
            time.sleep(0.5)
        process.send_signal(getattr(signal, stop_signal))
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["homes"] == 3 and printed["heartbeats_ingested"] >= 1
    assert json.loads(summary.read_text()) == printed
    assert not list(temp.glob("anbu-demo-*")), "the temp folder is removed"


@pytest.mark.slow
def test_collector_logs_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    import json
    import time

    from anbu.broker import free_port

    env = clean_env(
        ANBU_DATABASE_URL=f"sqlite:///{tmp_path / 'anbu.sqlite3'}",
        ANBU_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",  # nothing listens there
        ANBU_HTTP_PORT=str(free_port()),
    )
    log = (tmp_path / "stderr").open("w+")
    process = subprocess.Popen([*ANBU, "collector", "serve"], stderr=log, env=env)
    try:
        deadline = time.monotonic() + 30
        entries: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            log.seek(0)
            entries = [json.loads(line) for line in log.read().splitlines() if line.strip()]
            if any(e["msg"] == "mqtt broker unreachable, retrying" for e in entries):
                break
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    unreachable = [e for e in entries if e["msg"] == "mqtt broker unreachable, retrying"]
    assert unreachable, entries
    assert "exc" not in unreachable[0] and unreachable[0]["host"] == "127.0.0.1"

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

"""tests/support/tools.py: tools are found in the venv, and CI turns tool skips into failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.tools import bootstrap_apt_packages, bootstrap_installs, find_tool

REPO = Path(__file__).resolve().parents[1]


def test_tools_beside_the_interpreter_are_found_without_path(monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("PATH", "/nonexistent")
    found = find_tool("ansible-playbook")
    assert found == str(Path(sys.executable).parent / "ansible-playbook")
    assert find_tool("no-such-tool-anywhere") is None


def test_skip_reasons_are_matched_to_what_bootstrap_installs() -> None:
    assert "mosquitto" in bootstrap_apt_packages()
    assert bootstrap_installs("ansible is not installed") == "ansible"
    assert bootstrap_installs("ansible-lint is not installed") == "ansible-lint"
    assert bootstrap_installs("needs onnxruntime and openwakeword") == "openwakeword"
    assert bootstrap_installs("espeak-ng is not installed (apt-get install espeak-ng)")
    assert bootstrap_installs("PortAudio (libportaudio2) is not installed") == "libportaudio2"
    assert bootstrap_installs("minutes and network: ANBU_ANSIBLE_CHROOT=1") is None
    assert bootstrap_installs("systemd-analyze is not installed") is None
    assert bootstrap_installs("no Vosk model: set ANBU_VOSK_MODEL_DIR") is None


def _run_inner(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    """pytest on a file whose test skips for a missing 'mosquitto' (a tool bootstrap installs)."""
    inner = tmp_path / "inner" / "test_inner.py"
    inner.parent.mkdir(exist_ok=True)
    inner.write_text(
        "import pytest\n\n"
        "def test_needs_broker():\n"
        "    pytest.skip('mosquitto is not installed')\n\n"
        "def test_opt_in():\n"
        "    pytest.skip('minutes and network: ANBU_ANSIBLE_CHROOT=1')\n"
    )
    (inner.parent / "conftest.py").write_text("from tests.conftest import *  # noqa\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "1"
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", str(inner)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


def test_under_ci_a_skip_for_a_bootstrap_tool_fails(tmp_path: Path) -> None:
    local = _run_inner(tmp_path, ci=False)
    assert local.returncode == 0 and "2 skipped" in local.stdout, local.stdout
    ci = _run_inner(tmp_path, ci=True)
    assert ci.returncode == 1, ci.stdout
    assert "1 failed, 1 skipped" in ci.stdout
    assert "which scripts/bootstrap.sh installs" in ci.stdout

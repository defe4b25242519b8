"""pyproject.toml's package data names files that exist, and the wheel carries them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _package_data() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    data: dict[str, list[str]] = project["tool"]["setuptools"]["package-data"]
    return data


def test_every_package_data_pattern_matches_a_file() -> None:
    for package, patterns in _package_data().items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"{package}/{pattern} matches nothing"


def test_the_example_agent_config_ships_with_the_contract() -> None:
    from importlib.resources import files

    example = files("firmware_config") / "templates" / "agent.example.toml"
    assert "device_id" in example.read_text("utf-8")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_carries_every_data_file(tmp_path: Path) -> None:
    """What the roles install is the wheel: the collector's pages need their static files."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=280,
    )
    (wheel,) = tmp_path.glob("anbu-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        str(path.relative_to(REPO))
        for package, patterns in _package_data().items()
        for pattern in patterns
        for path in (REPO / package).glob(pattern)
        if path.is_file()
    }
    assert {"collector/web/static/anbu.css", "collector/web/templates/base.html"} <= wanted
    assert wanted - names == set()

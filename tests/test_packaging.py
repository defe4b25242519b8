"""pyproject.toml's package data names files that exist, and the wheel carries them."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_data_pattern_matches_a_file() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = project["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"{package}/{pattern} matches nothing"


def test_the_example_agent_config_ships_with_the_contract() -> None:
    from importlib.resources import files

    example = files("firmware_config") / "templates" / "agent.example.toml"
    assert "device_id" in example.read_text("utf-8")

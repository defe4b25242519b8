"""Finding the command-line tools tests run, and refusing to skip in CI for one bootstrap installs.

``scripts/bootstrap.sh`` puts Python tools (ansible-playbook, ansible-lint, ...) into ``.venv/bin``,
which is not on ``PATH`` when tests run as ``.venv/bin/python -m pytest``: so a tool is looked
for beside the running interpreter first, then on ``PATH``.

Under CI (``CI`` set) a test that would skip because such a tool is missing fails instead: a skip
that cannot happen on a bootstrapped machine only hides a broken bootstrap.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Python tools that bootstrap installs with the dev extra (pyproject.toml).
PIP_TOOLS = (
    "ansible",
    "ansible-playbook",
    "ansible-lint",
    "mosquitto_passwd",
    "onnxruntime",
    "openwakeword",
)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def find_tool(name: str) -> str | None:
    """``name`` beside ``sys.executable`` (the venv's bin), else on ``PATH``, else None."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def bootstrap_apt_packages() -> tuple[str, ...]:
    """The Debian packages ``scripts/bootstrap.sh`` installs (its ``APT_PACKAGES`` line)."""
    text = (REPO / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    match = re.search(r"^APT_PACKAGES=\(([^)]*)\)", text, re.MULTILINE)
    return tuple(match.group(1).split()) if match else ()


def bootstrap_installs(reason: str) -> str | None:
    """The bootstrap-installed tool a skip ``reason`` blames, or None.

    Matches whole words of package and binary names (``mosquitto``, ``espeak-ng``, ``initdb``,
    ``libportaudio2``, ``ansible-lint`` ...).
    """
    names = {*bootstrap_apt_packages(), *PIP_TOOLS, "initdb", "pg_ctl", "PostgreSQL", "libasound2"}
    for name in sorted(names, key=len, reverse=True):
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", reason, re.IGNORECASE):
            return name
    return None

"""Fixtures every test directory may use: a private Mosquitto broker per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.certs import make_cert_bundle
from tests.support.mosquitto import (
    COLLECTOR_USER,
    DEVICE_IDS,
    Broker,
    anbu_acl,
    anbu_users,
    start_broker,
)
from tests.support.tools import bootstrap_installs, in_ci


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker with the Anbu ACL and a password listener (``broker.url``).

    Users: ``collector`` and ``dev-1``..``dev-3``; passwords in ``broker.users``.
    """
    instance = start_broker(tmp_path / "broker", users=anbu_users(), acl=anbu_acl(COLLECTOR_USER))
    try:
        yield instance
    finally:
        instance.kill()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    """Like ``broker`` plus a client-certificate listener (``broker.tls_url``).

    ``broker.certs.client(name)`` is the certificate of ``collector`` or a device id (CN = user).
    """
    certs = make_cert_bundle(tmp_path / "certs", (COLLECTOR_USER, *DEVICE_IDS))
    instance = start_broker(
        tmp_path / "broker", users=anbu_users(), acl=anbu_acl(COLLECTOR_USER), tls=certs
    )
    try:
        yield instance
    finally:
        instance.kill()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """In CI, a skip blamed on a tool that scripts/bootstrap.sh installs is a failure."""
    outcome = yield
    report = outcome.get_result()
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    tool = bootstrap_installs(str(reason))
    if tool is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped for {tool!r}, which scripts/bootstrap.sh installs ({reason}): "
            "a skip that cannot happen on a bootstrapped machine fails under CI"
        )

"""Pytest fixtures for the notification servers; a conftest (or test module) imports them::

from tests.support.fixtures import sms_gateway, smtp_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, keeping what it accepts."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def sms_gateway() -> Iterator[SmsGateway]:
    """A real HTTP SMS gateway on 127.0.0.1 that accepts everything unless told otherwise."""
    with SmsGateway() as gateway:
        yield gateway

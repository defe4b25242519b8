"""Does a connection leave the host, and is it protected? Pure: URLs in, problems out.

Production refuses any connection to another host that would travel in clear text: the broker
(``mqtt://``; use ``mqtts://``), PostgreSQL without ``sslmode=require``/``verify-ca``/
``verify-full``, SMTP without STARTTLS, and an SMS gateway over ``http://``. Loopback (and a
PostgreSQL Unix socket) is exempt: nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, urlsplit

SAFE_SSLMODES = ("require", "verify-ca", "verify-full")


def is_loopback(host: str | None) -> bool:
    """``localhost``, 127.0.0.0/8, ``::1``; an empty host or a socket path counts as local."""
    if not host or host.startswith("/"):
        return True
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mqtt_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme == "mqtt" and not is_loopback(parts.hostname):
        return f"mqtt_url={url!r} goes to another host in clear text: use mqtts://"
    return None


def postgres_problem(url: str) -> str | None:
    if not url.startswith("postgresql"):
        return None
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or [""])[0]
    if is_loopback(host):
        return None
    sslmode = (query.get("sslmode") or [""])[0]
    if sslmode not in SAFE_SSLMODES:
        return (
            f"database_url goes to {host} without TLS (sslmode={sslmode or 'unset'}): "
            "add ?sslmode=verify-full (or require)"
        )
    return None


def smtp_problem(host: str | None, starttls: bool) -> str | None:
    if host and not starttls and not is_loopback(host):
        return f"smtp_starttls is off for {host}: e-mail would leave the host in clear text"
    return None


def sms_problem(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" and not is_loopback(parts.hostname):
        return f"sms_gateway_url={url!r} goes to another host in clear text: use https://"
    return None

"""Prometheus text for notification delivery, built from the runtime's health report.

    anbu_notifications{status="pending"} 3
    anbu_notification_channel_failing{channel="email"} 1
    anbu_notification_channel_consecutive_failures{channel="email"} 12
    anbu_notification_oldest_undelivered_age_seconds 184.2
    anbu_health_ok 0

Only counts and ages: no recipient, name or address ever appears here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _line(name: str, value: float, labels: Mapping[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{key}="{val}"' for key, val in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def render_metrics(report: Mapping[str, Any]) -> str:
    """The exposition text for ``report`` (what ``Collector.health()`` returns)."""
    lines = [
        "# HELP anbu_health_ok 1 when /health says ok.",
        "# TYPE anbu_health_ok gauge",
        _line("anbu_health_ok", 1 if report.get("status") == "ok" else 0),
        "# HELP anbu_notifications Notifications in the store by status.",
        "# TYPE anbu_notifications gauge",
    ]
    for status, count in sorted((report.get("notifications") or {}).items()):
        lines.append(_line("anbu_notifications", float(count), {"status": str(status)}))
    delivery = report.get("notification_delivery") or {}
    channels = delivery.get("channels") or {}
    lines += [
        "# HELP anbu_notification_channel_failing 1 when the channel's last attempt failed.",
        "# TYPE anbu_notification_channel_failing gauge",
    ]
    for channel, state in sorted(channels.items()):
        lines.append(
            _line(
                "anbu_notification_channel_failing",
                1 if state["failing"] else 0,
                {"channel": channel},
            )
        )
    lines += [
        "# HELP anbu_notification_channel_consecutive_failures Failures since the last success.",
        "# TYPE anbu_notification_channel_consecutive_failures gauge",
    ]
    for channel, state in sorted(channels.items()):
        lines.append(
            _line(
                "anbu_notification_channel_consecutive_failures",
                float(state["consecutive_failures"]),
                {"channel": channel},
            )
        )
    age = delivery.get("oldest_undelivered_age_s")
    lines += [
        "# HELP anbu_notification_oldest_undelivered_age_seconds Oldest pending one (0: none).",
        "# TYPE anbu_notification_oldest_undelivered_age_seconds gauge",
        _line("anbu_notification_oldest_undelivered_age_seconds", float(age or 0.0)),
    ]
    return "\n".join(lines) + "\n"

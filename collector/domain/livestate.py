"""What a household's marker on the supervisor's map says right now: SOS, silent, offline or ok.

Rules, first match wins (an SOS matters more than a flat battery):

1. ``sos``: a dispatch opened by an SOS is not resolved yet;
2. ``silent``: a silence dispatch is not resolved, or no sign of life for ``silence_period_h``;
3. ``offline``: the home has no device, or a device's last state was offline;
4. ``ok``: none of the above.

Pure: ``now`` is an argument.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass


class LiveState(enum.StrEnum):
    SOS = "sos"
    SILENT = "silent"
    OFFLINE = "offline"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class HomeSignals:
    """What the store knows about one household, reduced to what the rules above need."""

    open_reasons: frozenset[str]
    """Reasons ("sos", "silence") of the household's dispatches that are not resolved."""
    devices_online: tuple[bool, ...]
    last_life_sign_at: dt.datetime | None
    silence_period_h: float


def live_state(signals: HomeSignals, *, now: dt.datetime) -> LiveState:
    if "sos" in signals.open_reasons:
        return LiveState.SOS
    if "silence" in signals.open_reasons:
        return LiveState.SILENT
    if signals.last_life_sign_at is not None:
        quiet = now - signals.last_life_sign_at
        if quiet >= dt.timedelta(hours=signals.silence_period_h):
            return LiveState.SILENT
    if not signals.devices_online or not all(signals.devices_online):
        return LiveState.OFFLINE
    return LiveState.OK


def changed(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> Iterable[str]:
    """Household ids whose (risk, state) differs between two snapshots, or that appeared."""
    return (hid for hid, value in after.items() if before.get(hid) != value)

"""Pure heartbeat building: cumulative counters in, the interval's heartbeat out."""

from __future__ import annotations

from dataclasses import dataclass, fields

from firmware_config.messages import Heartbeat


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative counts since the agent started (never reset)."""

    motion: int = 0
    speech_s: float = 0.0
    wake_words: int = 0
    interactions: int = 0
    button_presses: int = 0


class HeartbeatBuilder:
    """Turns successive snapshots of :class:`Counters` into per-interval heartbeats."""

    def __init__(self, agent_version: str, started_at: float) -> None:
        self.agent_version = agent_version
        self.started_at = started_at
        self._last = Counters()
        self._last_at = started_at

    def build(
        self,
        counters: Counters,
        *,
        now: float,
        wall_ts: float,
        seq: int,
        audio_overruns: int,
        outbox_depth: int,
        coalesced: int = 0,
    ) -> Heartbeat:
        """The heartbeat covering the time since the previous call (``now`` is monotonic)."""
        d = {
            f.name: getattr(counters, f.name) - getattr(self._last, f.name)
            for f in fields(Counters)
        }
        heartbeat = Heartbeat(
            device_ts=wall_ts,
            seq=seq,
            interval_s=round(max(0.0, now - self._last_at), 3),
            motion_count=max(0, d["motion"]),
            speech_s=round(max(0.0, d["speech_s"]), 3),
            wake_word_count=max(0, d["wake_words"]),
            interactions=max(0, d["interactions"]),
            button_presses=max(0, d["button_presses"]),
            uptime_s=round(max(0.0, now - self.started_at), 3),
            audio_overruns=audio_overruns,
            outbox_depth=outbox_depth,
            agent_version=self.agent_version,
            coalesced=coalesced,
        )
        self._last = counters
        self._last_at = now
        return heartbeat

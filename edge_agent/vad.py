"""Pure voice-activity gate: blocks of audio in, segment decisions out. No I/O, no clock.

The recogniser is the most expensive thing on the device, so it only hears audio while someone may
be speaking. Rules, applied to each block in turn:

1. A block's *level* is its RMS in dB relative to int16 full scale (dBFS).
2. The *noise floor* follows the quiet: it drops at once to a quieter block's level and creeps up by
   ``floor_rise_db_per_s`` otherwise, so a fridge starting up becomes background within seconds.
   It never goes below ``min_floor_db``, so digital silence does not make the gate hair-trigger.
3. A block is *voice* when its level is at least ``threshold_db`` above the floor — or, with a
   trained ``detector`` (:mod:`edge_agent.vad_models`), when the detector's speech probability
   for it reaches ``speech_probability``. While the gate is closed the detector only runs on
   blocks at least ``detector_min_rise_db`` above the floor: a quiet home then costs one RMS per
   block, as with the energy gate (speech at 0 dB SNR still lifts the level ~3 dB).
4. Closed → open on a voice block: ``SegmentStart`` carries the last ``preroll_ms`` of audio before
   that block (so the first syllable, whose onset is quieter, reaches the recogniser), followed by
   ``Audio`` of the block itself.
5. While open every block is passed on as ``Audio``. After ``hangover_ms`` without a voice block,
   or after ``max_segment_s`` in total, a ``SegmentEnd`` closes the segment. A segment closed for
   length lifts the floor to the current level: a sound that never stops is background.
6. ``close()`` at end of stream closes an open segment.

Time is counted in samples, so blocks may be of any length.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_agent.vad_models import VoiceDetector
from firmware_config.device import AudioConfig

_FULL_SCALE = 32768.0
_BYTES_PER_SAMPLE = 2


@dataclass(frozen=True, slots=True)
class SegmentStart:
    """Someone may be speaking; ``preroll`` is the audio just before the triggering block."""

    preroll: bytes


@dataclass(frozen=True, slots=True)
class Audio:
    """One block inside a segment, to be passed to the recogniser."""

    block: bytes


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    """The segment is over; ``duration_s`` counts pre-roll, voice and hangover."""

    duration_s: float
    forced: bool = False
    """True when closed because it reached ``max_segment_s``, not because it went quiet."""


GateEvent = SegmentStart | Audio | SegmentEnd


def level_dbfs(block: bytes) -> float:
    """RMS level of int16 samples in dB below full scale (-inf-safe: floor at -120 dBFS)."""
    samples = np.frombuffer(block, dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return -120.0
    mean_square = float(np.dot(samples, samples)) / samples.size
    return max(-120.0, 10.0 * math.log10(mean_square / _FULL_SCALE**2 + 1e-14))


class VoiceActivityGate:
    """Energy gate with an adaptive noise floor, pre-roll and hangover (rules in the module doc).

    >>> gate = VoiceActivityGate(threshold_db=12, preroll_ms=300, hangover_ms=600)
    >>> gate.process(bytes(3200))  # 100 ms of silence
    []
    """

    def __init__(
        self,
        sample_rate_hz: int = 16000,
        threshold_db: float = 12.0,
        preroll_ms: int = 300,
        hangover_ms: int = 600,
        max_segment_s: float = 15.0,
        floor_rise_db_per_s: float = 3.0,
        min_floor_db: float = -70.0,
        detector: VoiceDetector | None = None,
        speech_probability: float = 0.5,
        detector_min_rise_db: float = 1.5,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.threshold_db = threshold_db
        self.preroll_bytes = sample_rate_hz * preroll_ms // 1000 * _BYTES_PER_SAMPLE
        self.hangover_samples = sample_rate_hz * hangover_ms // 1000
        self.max_segment_samples = int(sample_rate_hz * max_segment_s)
        self.floor_rise_db_per_s = floor_rise_db_per_s
        self.min_floor_db = min_floor_db
        self.detector = detector
        self.speech_probability = speech_probability
        self.detector_min_rise_db = detector_min_rise_db
        self.detector_blocks = 0
        """Blocks the trained detector was run on (the rest cost one RMS)."""
        self._detector_warm = False
        self._last_voice = False
        self.floor_db: float | None = None
        """Current noise-floor estimate in dBFS (None until the first block)."""
        self.speech_s = 0.0
        """Running total of audio judged to be voice (the blocks above the threshold)."""
        self.open_s = 0.0
        """Running total of audio passed on inside segments (what the recogniser had to decode)."""
        self.segments = 0
        self._preroll: deque[bytes] = deque()
        self._preroll_len = 0
        self._open = False
        self._quiet_samples = 0
        self._segment_samples = 0

    @classmethod
    def from_config(
        cls,
        config: AudioConfig,
        sample_rate_hz: int = 16000,
        detector: VoiceDetector | None = None,
        speech_probability: float = 0.5,
    ) -> VoiceActivityGate:
        return cls(
            sample_rate_hz=sample_rate_hz,
            threshold_db=config.vad_threshold_db,
            preroll_ms=config.preroll_ms,
            hangover_ms=config.hangover_ms,
            detector=detector,
            speech_probability=speech_probability,
        )

    def _is_voice(self, block: bytes, level: float, floor_db: float) -> bool:
        if self.detector is None:
            return level >= floor_db + self.threshold_db
        if not self._open and level < floor_db + self.detector_min_rise_db:
            self._last_voice = False
            self._detector_warm = False
            return False
        if not self._detector_warm:  # a recurrent detector needs context: the pre-roll first
            self.detector.reset()
            for earlier in self._preroll:
                self.detector.speech_probability(earlier)
            self._detector_warm = True
        self.detector_blocks += 1
        probability = self.detector.speech_probability(block)
        if probability is not None:  # a block too short for one frame keeps the last decision
            self._last_voice = probability >= self.speech_probability
        return self._last_voice

    @property
    def is_open(self) -> bool:
        return self._open

    def process(self, block: bytes) -> list[GateEvent]:
        """Decide on one block of 16-bit mono audio."""
        n = len(block) // _BYTES_PER_SAMPLE
        if n == 0:
            return []
        duration_s = n / self.sample_rate_hz
        level = level_dbfs(block)
        if self.floor_db is None:  # nothing to compare the first block with: it sets the floor
            self.floor_db = max(level, self.min_floor_db)
            if self.detector is not None:
                self._is_voice(block, level, self.floor_db)  # the detector needs the audio too
            self._remember(block)
            return []
        voice = self._is_voice(block, level, self.floor_db)
        if level < self.floor_db:
            self.floor_db = max(level, self.min_floor_db)
        else:
            self.floor_db += self.floor_rise_db_per_s * duration_s
        if voice:
            self.speech_s += duration_s

        events: list[GateEvent] = []
        if not self._open:
            if not voice:
                self._remember(block)
                return events
            preroll = b"".join(self._preroll)[-self.preroll_bytes :] if self.preroll_bytes else b""
            self._preroll.clear()
            self._preroll_len = 0
            self._open = True
            self.segments += 1
            self._quiet_samples = 0
            self._segment_samples = len(preroll) // _BYTES_PER_SAMPLE
            events.append(SegmentStart(preroll))
        events.append(Audio(block))
        self.open_s += duration_s
        self._segment_samples += n
        self._quiet_samples = 0 if voice else self._quiet_samples + n
        if self._segment_samples >= self.max_segment_samples:
            self.floor_db = max(self.floor_db, level)
            events.append(self._end(forced=True))
        elif self._quiet_samples >= self.hangover_samples and not voice:
            events.append(self._end(forced=False))
        return events

    def close(self) -> list[GateEvent]:
        """End of stream: close an open segment."""
        return [self._end(forced=False)] if self._open else []

    def reset(self) -> None:
        """Forget everything but the settings and the running totals."""
        self.floor_db = None
        self._preroll.clear()
        self._preroll_len = 0
        self._open = False
        self._last_voice = False
        self._detector_warm = False
        if self.detector is not None:
            self.detector.reset()

    def _end(self, forced: bool) -> SegmentEnd:
        self._open = False
        return SegmentEnd(self._segment_samples / self.sample_rate_hz, forced)

    def _remember(self, block: bytes) -> None:
        if not self.preroll_bytes:
            return
        self._preroll.append(block)
        self._preroll_len += len(block)
        while self._preroll and self._preroll_len - len(self._preroll[0]) >= self.preroll_bytes:
            self._preroll_len -= len(self._preroll.popleft())

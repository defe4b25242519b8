"""The trained voice detectors on real audio: espeak-ng speech against silence and noise, fed in
blocks that do not line up with their frames; and the gate driven by one."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.runtime import make_gate
from edge_agent.vad import SegmentEnd, SegmentStart
from edge_agent.vad_models import DETECTORS, make_detector
from firmware_config.device import AudioConfig


def blocks(audio: bytes, size: int = 3200 + 66) -> list[bytes]:
    return [audio[i : i + size] for i in range(0, len(audio), size)]


@pytest.mark.parametrize("name", DETECTORS)
def test_speech_scores_higher_than_silence_and_noise(name: str, sos_speech: bytes) -> None:
    detector = make_detector(name)
    noise = np.random.default_rng(0).normal(0, 300, 16000).astype("<i2").tobytes()
    warm = bytes(16000 * 2)  # pymicro-vad answers only after ~0.8 s
    for b in blocks(warm):
        detector.speech_probability(b)
    quiet = [p for b in blocks(noise) if (p := detector.speech_probability(b)) is not None]
    speech = [p for b in blocks(sos_speech) if (p := detector.speech_probability(b)) is not None]
    assert quiet and speech
    assert max(speech) >= 0.5 > float(np.median(quiet))


def test_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown voice detector 'loud'"):
        make_detector("loud")


def test_the_silero_gate_opens_on_speech_in_loud_noise(sos_speech: bytes) -> None:
    """0 dB SNR: speech as loud as the noise, where the 12 dB energy gate stays shut."""
    rng = np.random.default_rng(3)
    speech = np.frombuffer(sos_speech, "<i2").astype(np.float64)
    noise = rng.normal(0, 1, len(speech) + 3 * 16000)
    noise *= np.sqrt(np.mean(speech[np.abs(speech) > 300] ** 2))
    mixed = noise.copy()
    mixed[16000 : 16000 + len(speech)] += speech
    audio = np.clip(mixed, -32768, 32767).astype("<i2").tobytes()

    def segments(vad: str) -> list[object]:
        gate = make_gate(AudioConfig(vad=vad))  # type: ignore[arg-type]
        events = [e for b in blocks(audio, 3200) for e in gate.process(b)] + gate.close()
        return [e for e in events if isinstance(e, SegmentStart | SegmentEnd)]

    silero = segments("silero")
    assert any(isinstance(e, SegmentStart) for e in silero)
    assert segments("energy") == []  # the trap the issue found


def test_a_quiet_home_does_not_run_the_detector(sos_speech: bytes) -> None:
    """Room noise at a steady level costs one RMS per block; speech wakes the detector up."""
    noise = np.random.default_rng(5).normal(0, 30, 16000 * 5).astype("<i2").tobytes()
    gate = make_gate(AudioConfig(vad="silero"))
    for b in blocks(noise, 3200):
        assert gate.process(b) == []
    assert gate.detector_blocks <= 2  # at most the first block or two, while the floor settles
    events = [e for b in blocks(sos_speech + bytes(16000 * 2), 3200) for e in gate.process(b)]
    assert any(isinstance(e, SegmentStart) for e in events) and gate.detector_blocks > 5

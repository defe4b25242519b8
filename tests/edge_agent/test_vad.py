"""The voice-activity gate, driven with synthetic audio and espeak-ng speech (no I/O, no clock)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.vad import Audio, GateEvent, SegmentEnd, SegmentStart, VoiceActivityGate, level_dbfs
from firmware_config.device import AudioConfig

RATE = 16000
BLOCK = 1600  # samples: 100 ms


def noise(seconds: float, dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 32768 * 10 ** (dbfs / 20), int(RATE * seconds))


def tone(seconds: float, hz: float = 440.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return amplitude * np.sin(2 * np.pi * hz * t)


def pcm(*parts: np.ndarray) -> bytes:
    x = np.concatenate(parts)
    return bytes(np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes())


def run(gate: VoiceActivityGate, audio: bytes, block: int = BLOCK) -> list[GateEvent]:
    events: list[GateEvent] = []
    for i in range(0, len(audio), block * 2):
        events += gate.process(audio[i : i + block * 2])
    return events


def segments(events: list[GateEvent]) -> list[bytes]:
    """Audio of each closed segment as the recogniser would get it: pre-roll, then blocks."""
    out: list[bytes] = []
    current: bytearray | None = None
    for event in events:
        if isinstance(event, SegmentStart):
            assert current is None, "two starts without an end"
            current = bytearray(event.preroll)
        elif isinstance(event, Audio):
            assert current is not None, "audio outside a segment"
            current += event.block
        else:
            assert current is not None, "end without a start"
            out.append(bytes(current))
            current = None
    assert current is None, "segment left open"
    return out


def sample_span(haystack: bytes, needle: bytes) -> tuple[int, int]:
    """Where ``needle`` sits in ``haystack``, in samples (it must be there exactly once)."""
    at = haystack.find(needle)
    assert at >= 0 and at % 2 == 0, "segment audio is not an intact slice of the input"
    assert haystack.find(needle, at + 2) < 0 or len(set(needle)) == 1
    return at // 2, (at + len(needle)) // 2


def test_silence_and_steady_noise_open_nothing() -> None:
    gate = VoiceActivityGate()
    assert run(gate, pcm(np.zeros(RATE * 3), noise(3))) == []
    assert gate.speech_s == 0 and gate.segments == 0


def test_two_utterances_give_exactly_two_segments_with_their_onsets() -> None:
    first_onset = RATE + 700  # deliberately mid-block
    second_onset = first_onset + int(RATE * 0.5) + RATE
    signal = noise(5.0)  # a steady background under everything
    signal[first_onset : first_onset + int(RATE * 0.5)] += tone(0.5)
    signal[second_onset : second_onset + int(RATE * 0.4)] += tone(0.4, hz=300)
    audio = pcm(signal)

    gate = VoiceActivityGate(threshold_db=12, preroll_ms=300, hangover_ms=600)
    events = run(gate, audio)
    found = segments(events)
    assert len(found) == 2
    (s1, e1), (s2, e2) = (sample_span(audio, seg) for seg in found)
    assert s1 <= first_onset < first_onset + int(RATE * 0.5) <= e1
    assert s2 <= second_onset < second_onset + int(RATE * 0.4) <= e2
    assert first_onset - s1 <= RATE * 0.3 + BLOCK  # pre-roll, not the whole past
    assert e1 < second_onset  # the gap (1 s) is longer than the hangover (0.6 s)
    assert isinstance(events[0], SegmentStart) and isinstance(events[-1], SegmentEnd)
    assert gate.speech_s == pytest.approx(0.9, abs=0.21)
    assert gate.segments == 2


def test_preroll_holds_the_quiet_onset_before_the_triggering_block() -> None:
    quiet_start = pcm(np.zeros(RATE), tone(0.2, amplitude=25), tone(0.5))  # -65, then -15 dBFS
    events = run(VoiceActivityGate(preroll_ms=300), quiet_start)
    start = events[0]
    assert isinstance(start, SegmentStart)
    assert len(start.preroll) == RATE * 0.3 * 2
    # the soft 200 ms lead-in (below the threshold) is inside the pre-roll
    lead_in = quiet_start[RATE * 2 : RATE * 2 + int(RATE * 0.2) * 2]
    assert lead_in in start.preroll


def test_a_pause_shorter_than_the_hangover_does_not_split_an_utterance() -> None:
    audio = pcm(np.zeros(RATE), tone(0.4), np.zeros(int(RATE * 0.3)), tone(0.4), np.zeros(RATE))
    events = run(VoiceActivityGate(hangover_ms=600), audio)
    assert len(segments(events)) == 1


def test_a_new_steady_noise_becomes_background() -> None:
    """A fan switched on opens one segment at most, then the floor catches up."""
    gate = VoiceActivityGate(threshold_db=12, floor_rise_db_per_s=3.0)
    audio = pcm(noise(2.0, dbfs=-60), noise(20.0, dbfs=-40, seed=5))
    events = run(gate, audio)
    assert len(segments(events + gate.close())) <= 1
    tail = run(gate, pcm(noise(5.0, dbfs=-40, seed=6)))
    assert tail == [] and not gate.is_open


def test_a_segment_is_cut_at_max_length() -> None:
    gate = VoiceActivityGate(max_segment_s=2.0, floor_rise_db_per_s=0.0)
    events = run(gate, pcm(np.zeros(RATE), tone(5.0)))
    ends = [e for e in events if isinstance(e, SegmentEnd)]
    assert ends and ends[0].forced and ends[0].duration_s == pytest.approx(2.0, abs=0.1)
    assert not gate.is_open  # the endless tone became the new floor


def test_close_ends_an_open_segment_and_nothing_else() -> None:
    gate = VoiceActivityGate()
    assert gate.close() == []
    run(gate, pcm(np.zeros(RATE), tone(0.5)))
    assert gate.is_open
    (end,) = gate.close()
    assert isinstance(end, SegmentEnd) and not end.forced


def test_no_preroll_when_disabled_and_block_size_does_not_matter() -> None:
    audio = pcm(np.zeros(RATE), tone(0.5), np.zeros(RATE))
    a = segments(run(VoiceActivityGate(preroll_ms=0), audio, block=1600))
    b = segments(run(VoiceActivityGate(preroll_ms=0), audio, block=800))
    assert len(a) == len(b) == 1
    assert sample_span(audio, a[0])[0] == RATE == sample_span(audio, b[0])[0]


def test_espeak_speech_in_a_quiet_room_is_one_segment_with_its_onset(sos_speech: bytes) -> None:
    speech = np.frombuffer(sos_speech, dtype="<i2")
    room = noise(1.0, dbfs=-65)
    audio = pcm(room, speech.astype(np.float64), noise(1.5, dbfs=-65, seed=7))
    onset = len(room) + int(np.argmax(np.abs(speech) > 200))
    last = len(room) + len(speech) - int(np.argmax(np.abs(speech[::-1]) > 200))
    gate = VoiceActivityGate.from_config(AudioConfig())
    (segment,) = segments(run(gate, audio))
    start, end = sample_span(audio, segment)
    assert start <= onset and end >= last
    assert gate.speech_s > 0.3


def test_level_is_measured_in_dbfs() -> None:
    assert level_dbfs(bytes(3200)) == -120.0
    assert level_dbfs(pcm(np.full(1600, 32767.0))) == pytest.approx(0.0, abs=0.01)
    assert level_dbfs(pcm(tone(0.1, amplitude=3276.8))) == pytest.approx(-23.0, abs=0.1)
    assert level_dbfs(b"") == -120.0

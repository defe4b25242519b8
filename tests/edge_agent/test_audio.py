"""Audio sources: the resampler, WAV replay, and the REAL sounddevice stream on a virtual ALSA mic.

The sounddevice tests run the capturing side in a subprocess: PortAudio lists devices once, when
it is initialised, and it must start with ``HOME`` pointing at the virtual mic's ``.asoundrc``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.audio import (
    AudioError,
    DropOldestQueue,
    Resampler,
    SoundDeviceSource,
    WavFileSource,
    read_wav_16k,
)
from firmware_config.device import AudioConfig
from tests.support.virtual_mic import VirtualMic, paced_mic, unsupported_reason

REPO = Path(__file__).resolve().parents[2]
needs_alsa = pytest.mark.skipif(unsupported_reason() is not None, reason=str(unsupported_reason()))


def sine(hz: float, seconds: float, rate: int, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


# --- resampler ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [48000, 44100, 32000, 22050])
def test_resampling_in_blocks_equals_resampling_at_once(rate: int) -> None:
    """State is carried across blocks: no clicks, whatever the block sizes."""
    x = sine(1000, 1.0, rate)
    whole = Resampler(rate).process(x)
    r = Resampler(rate)
    cuts = np.cumsum(np.random.default_rng(rate).integers(1, 3000, 100))
    pieces = [r.process(part) for part in np.split(x, cuts[cuts < len(x)])]
    assert np.array_equal(np.concatenate(pieces), whole)
    assert len(whole) == -(-len(x) * 16000 // rate)


@pytest.mark.parametrize("rate", [48000, 44100, 32000])
def test_resampling_keeps_speech_band_tones_and_removes_what_would_alias(rate: int) -> None:
    r = Resampler(rate)
    y = r.process(sine(1000, 1.0, rate))[400:-400]
    assert rms(y) == pytest.approx(10000 / np.sqrt(2), rel=0.01)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert np.argmax(spectrum) * 16000 / len(y) == pytest.approx(1000, abs=5)
    above_nyquist = Resampler(rate).process(sine(min(12000, rate // 2 - 1000), 1.0, rate))
    assert rms(above_nyquist[400:]) < 10000 / np.sqrt(2) / 100  # at least 40 dB down


# --- WAV replay -----------------------------------------------------------------------------------


def test_wav_source_replays_16k_mono_exactly(write_wav: Callable[..., Path]) -> None:
    samples = np.random.default_rng(1).integers(-30000, 30000, 16000, dtype=np.int16).tobytes()
    src = WavFileSource(write_wav(samples), realtime=False, block_ms=100)
    src.start()
    blocks = []
    while (block := src.read(0.1)) is not None:
        blocks.append(block)
    assert b"".join(blocks) == samples
    assert {len(b) for b in blocks} == {3200}
    assert src.finished.is_set() and src.overruns == 0 and src.duration_s == 1.0


def test_wav_source_resamples_and_mixes_down(write_wav: Callable[..., Path]) -> None:
    left = sine(500, 0.5, 44100)
    stereo = np.column_stack((left, left)).reshape(-1).tobytes()
    audio = np.frombuffer(read_wav_16k(write_wav(stereo, rate_hz=44100, channels=2)), "<i2")
    assert len(audio) == pytest.approx(8000, abs=60)
    assert rms(audio[200:-200]) == pytest.approx(rms(left), rel=0.02)


def test_espeak_output_is_read_at_16k(sos_speech: bytes) -> None:
    assert 0.5 < len(sos_speech) / 32000 < 3.0
    assert np.abs(np.frombuffer(sos_speech, "<i2")).max() > 3000


def test_wav_source_errors_are_clear(write_wav: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot read WAV"):
        WavFileSource(tmp_path / "missing.wav")
    eight_bit = tmp_path / "8bit.wav"
    with wave.open(str(eight_bit), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(16000)
        w.writeframes(b"\x80" * 100)
    with pytest.raises(AudioError, match="16-bit"):
        WavFileSource(eight_bit)
    src = WavFileSource(write_wav(bytes(3200)))
    with pytest.raises(AudioError, match="before start"):
        src.read(0.1)


def test_realtime_wav_source_does_not_hand_out_the_future(write_wav: Callable[..., Path]) -> None:
    src = WavFileSource(write_wav(bytes(32000)), realtime=True, block_ms=1000)
    src.start()
    assert src.read(timeout_s=0.0) is None  # the first second has not been "recorded" yet
    src.stop()


# --- the bounded queue --------------------------------------------------------------------------


def test_full_queue_drops_the_oldest_block() -> None:
    q = DropOldestQueue(maxsize=3)
    dropped = sum(q.put(bytes([i])) for i in range(5))
    assert dropped == 2
    assert [q.get(0.01) for _ in range(4)] == [b"\x02", b"\x03", b"\x04", None]


# --- the real sounddevice stream ----------------------------------------------------------------


def test_unknown_device_is_named_with_the_devices_that_exist() -> None:
    with pytest.raises(AudioError, match=r"'no such mic' not found.*input devices"):
        SoundDeviceSource(AudioConfig(device="no such mic"))


CAPTURE = textwrap.dedent(
    """
    import json, sys, time
    from edge_agent.audio import SoundDeviceSource
    from firmware_config.device import AudioConfig

    args = json.loads(sys.argv[1])
    src = SoundDeviceSource(AudioConfig(**args["config"]))
    src.start()
    if args.get("sleep_s"):
        time.sleep(args["sleep_s"])
    got = bytearray()
    deadline = time.monotonic() + 10
    while len(got) < args["want_bytes"] and time.monotonic() < deadline:
        got += src.read(0.5) or b""
    active = src.active
    src.stop()
    print(json.dumps({"overruns": src.overruns, "active": active}), file=sys.stderr)
    sys.stdout.buffer.write(bytes(got))
    """
)


def capture(
    mic: VirtualMic, config: dict[str, object], want_bytes: int, sleep_s: float = 0
) -> tuple[bytes, dict[str, Any]]:
    env = mic.env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    args = {"config": config, "want_bytes": want_bytes, "sleep_s": sleep_s}
    done = subprocess.run(
        [sys.executable, "-c", CAPTURE, json.dumps(args)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout, json.loads(done.stderr.decode().strip().splitlines()[-1])


@needs_alsa
def test_sounddevice_stream_delivers_a_known_file_intact(tmp_path: Path) -> None:
    samples = np.random.default_rng(2).integers(-30000, 30000, 16000 * 2, dtype=np.int16)
    mic = VirtualMic(tmp_path / "mic")
    sent = mic.play(samples.tobytes())
    with mic:
        got, info = capture(mic, {"device": "testmic"}, want_bytes=len(sent) + 3200)
    assert got.startswith(sent)
    assert info["overruns"] == 0 and info["active"]


@needs_alsa
def test_sounddevice_stream_at_48k_is_resampled_to_16k(tmp_path: Path) -> None:
    x = sine(440, 1.0, 48000, amplitude=8000)
    mic = VirtualMic(tmp_path / "mic", rate_hz=48000, block_frames=1920)  # 40 ms blocks
    sent = mic.play(x.tobytes())
    with mic:
        got, _ = capture(
            mic,
            {"device": "testmic", "capture_rate_hz": 48000, "block_ms": 40},
            want_bytes=len(sent) // 3 + 1280,
        )
    expected = Resampler(48000).process(np.frombuffer(sent, "<i2")).tobytes()
    assert got.startswith(expected)


@needs_alsa
def test_a_reader_that_falls_behind_loses_the_oldest_blocks(tmp_path: Path) -> None:
    blocks = b"".join(bytes([i, 0]) * 1600 for i in range(1, 21))  # block i holds sample i
    mic = VirtualMic(tmp_path / "mic")
    mic.play(blocks)
    with mic:
        got, info = capture(
            mic, {"device": "testmic", "queue_blocks": 5}, want_bytes=5 * 3200, sleep_s=1.0
        )
    assert info["overruns"] >= 15
    firsts = [got[i] for i in range(0, len(got), 3200)]
    assert 1 not in firsts  # the oldest went first


@needs_alsa
def test_paced_mic_delivers_in_real_time(tmp_path: Path) -> None:
    """The benchmark's microphone: ~1 s of audio takes ~1 s (loose bounds; not a timing test)."""
    import time

    with paced_mic(tmp_path / "mic") as mic:
        started = time.monotonic()
        got, _ = capture(mic, {"device": "testmic"}, want_bytes=16 * 3200)
        elapsed = time.monotonic() - started
    assert len(got) >= 16 * 3200
    assert elapsed > 1.0  # an unclocked file device would take milliseconds

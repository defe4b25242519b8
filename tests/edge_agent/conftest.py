"""Fixtures for the edge agent's voice path and sensors: test speech, WAV files, mock GPIO pins."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.audio import read_wav_16k

SAMPLE_RATE_HZ = 16000


@pytest.fixture(scope="session")
def espeak_wav(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """Make ``text`` spoken by espeak-ng (22.05 kHz WAV, as espeak writes it); cached per text."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    directory = tmp_path_factory.mktemp("speech")
    made: dict[tuple[str, str], Path] = {}

    def make(text: str, voice: str = "ko") -> Path:
        if (text, voice) not in made:
            path = directory / f"speech-{len(made)}.wav"
            subprocess.run([binary, "-v", voice, "-w", str(path), text], check=True, timeout=30)
            made[(text, voice)] = path
        return made[(text, voice)]

    return make


@pytest.fixture(scope="session")
def sos_speech(espeak_wav: Callable[[str, str], Path]) -> bytes:
    """The SOS phrase 살려주세요 spoken by espeak-ng, as 16 kHz mono int16 bytes."""
    return read_wav_16k(espeak_wav("살려주세요", "ko"))


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    """Write 16-bit mono samples to a WAV file in the test's temp dir."""
    counter = iter(range(1000))

    def write(samples: bytes, rate_hz: int = SAMPLE_RATE_HZ, channels: int = 1) -> Path:
        path = tmp_path / f"audio-{next(counter)}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(rate_hz)
            w.writeframes(samples)
        return path

    return write


@pytest.fixture
def mock_pins() -> Iterator[object]:
    """gpiozero's MockFactory as the default pin factory for one test."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    saved = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = saved

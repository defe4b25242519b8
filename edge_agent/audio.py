"""Microphone input: 16 kHz mono int16 blocks from a sound card or from a WAV file.

Everything downstream (voice-activity gate, recogniser) sees one format: ``bytes`` of signed
16-bit little-endian samples, mono, 16 kHz (what Vosk models are trained on). Devices that only
capture at 32, 44.1 or 48 kHz are resampled here, so nothing else has to care.

The PortAudio callback does as little as possible (copy the block into a bounded queue); when the
reader falls behind, the *oldest* block is dropped and counted in ``overruns``, because for a
resident calling for help the newest audio matters most.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import queue
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from firmware_config.device import AudioConfig

SAMPLE_RATE_HZ = 16000
"""The one rate every block leaving this module has."""

SAMPLE_WIDTH_BYTES = 2


class AudioError(RuntimeError):
    """The microphone cannot be opened or read; the message says which device and what to do."""


class AudioSource(Protocol):
    """Where 16 kHz mono int16 audio comes from. ``read`` is called from one thread only."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read(self, timeout_s: float) -> bytes | None:
        """The next block, or None if none arrived within ``timeout_s`` (or the source ended)."""
        ...

    @property
    def overruns(self) -> int:
        """Blocks lost because the reader fell behind (or the sound card overflowed)."""
        ...


class PushedSource:
    """An ``AudioSource`` that is never read: for callers that push blocks themselves with
    ``VoicePipeline.process`` (the speech bench, tests)."""

    overruns = 0

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read(self, timeout_s: float) -> bytes | None:
        return None


class Resampler:
    """Polyphase FIR resampler (rational ratio) that keeps its state across blocks.

    Feeding a signal in any split gives exactly the output of feeding it in one piece, so block
    edges never click. The low-pass is a Kaiser-windowed sinc at 90 % of the lower Nyquist
    frequency, ``taps_per_phase`` input samples long.

    >>> r = Resampler(48000, 16000)
    >>> len(r.process(np.zeros(4800, dtype=np.int16)))
    1600
    """

    def __init__(
        self, rate_in_hz: int, rate_out_hz: int = SAMPLE_RATE_HZ, taps_per_phase: int = 48
    ) -> None:
        if rate_in_hz <= 0 or rate_out_hz <= 0:
            raise ValueError("sample rates must be positive")
        g = math.gcd(rate_in_hz, rate_out_hz)
        self.up = rate_out_hz // g
        self.down = rate_in_hz // g
        self.taps = taps_per_phase
        n_total = taps_per_phase * self.up
        cutoff = 0.9 * 0.5 / max(self.up, self.down)  # cycles per sample at the upsampled rate
        n = np.arange(n_total) - (n_total - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(n_total, 8.0)
        h *= self.up / h.sum()  # zero-stuffing by `up` loses that much gain
        # phases[p, k] = h[p + k*up], reversed along k so a window of input (oldest first) dots it.
        self._phases: npt.NDArray[np.float64] = h.reshape(taps_per_phase, self.up).T[:, ::-1].copy()
        self._history: npt.NDArray[np.float64] = np.zeros(taps_per_phase - 1)
        self._pos = 0  # upsampled-time index of the next output, relative to the next block start

    def process(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Resample one block; returns however many output samples are complete."""
        x = samples.astype(np.float64)
        buf = np.concatenate((self._history, x))
        m_last = len(x) * self.up  # outputs need their newest input sample inside this block
        m = np.arange(self._pos, m_last, self.down, dtype=np.int64)
        if len(m):
            idx = m // self.up  # newest input sample of each output, as an index into x
            windows = np.lib.stride_tricks.sliding_window_view(buf, self.taps)[idx]
            y = np.einsum("nk,nk->n", windows, self._phases[m % self.up])
            self._pos = int(m[-1]) + self.down - m_last
        else:
            y = np.zeros(0)
            self._pos -= m_last
        self._history = buf[len(buf) - (self.taps - 1) :]
        out: npt.NDArray[np.int16] = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
        return out


class DropOldestQueue:
    """A bounded FIFO of blocks that, when full, makes room by dropping the oldest block.

    ``put`` never blocks (it runs in the PortAudio callback) and returns how many blocks it
    dropped.
    """

    def __init__(self, maxsize: int) -> None:
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=maxsize)

    def put(self, block: bytes) -> int:
        dropped = 0
        while True:
            try:
                self._queue.put_nowait(block)
                return dropped
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
                    dropped += 1

    def get(self, timeout_s: float) -> bytes | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def qsize(self) -> int:
        return self._queue.qsize()


def _import_sounddevice() -> ModuleType:
    try:
        sounddevice = importlib.import_module("sounddevice")
    except OSError as exc:  # the module loads libportaudio at import time
        raise AudioError(
            f"cannot load PortAudio ({exc}); install it with `apt-get install libportaudio2`"
        ) from exc
    return sounddevice


def input_devices(sd: ModuleType | None = None) -> list[tuple[int, str, str]]:
    """``(index, name, host API)`` of every device that can capture."""
    sd = sd or _import_sounddevice()
    apis = sd.query_hostapis()
    return [
        (int(d["index"]), str(d["name"]), str(apis[d["hostapi"]]["name"]))
        for d in sd.query_devices()
        if d["max_input_channels"] > 0
    ]


def _describe(devices: Sequence[tuple[int, str, str]]) -> str:
    if not devices:
        return "no input devices at all (is the microphone plugged in? see `arecord -l`)"
    return "input devices here: " + ", ".join(f"{i}: {name!r} ({api})" for i, name, api in devices)


def find_input_device(name: str | None, sd: ModuleType | None = None) -> int | None:
    """The PortAudio index of the input device called ``name`` (exact, else a unique substring).

    ``None`` means the system default, which must exist.
    """
    sd = sd or _import_sounddevice()
    devices = input_devices(sd)
    if name is None:
        default = sd.default.device[0]
        if default is None or int(default) < 0:
            raise AudioError(f"no default input device; set audio.device. {_describe(devices)}")
        return None
    exact = [i for i, n, _ in devices if n == name]
    if exact:
        return exact[0]
    partial = [i for i, n, _ in devices if name.lower() in n.lower()]
    if len(partial) == 1:
        return partial[0]
    problem = "matches several devices" if partial else "not found"
    raise AudioError(
        f"audio device {name!r} {problem}; set audio.device to one of the names. "
        f"{_describe(devices)}"
    )


class SoundDeviceSource:
    """A microphone through PortAudio (``sounddevice.RawInputStream``).

    >>> mic = SoundDeviceSource(AudioConfig(device="USB PnP Sound Device"))  # doctest: +SKIP
    >>> mic.start(); block = mic.read(timeout_s=1.0); mic.stop()  # doctest: +SKIP
    """

    def __init__(self, config: AudioConfig) -> None:
        self.config = config
        self._sd = _import_sounddevice()
        self._device = find_input_device(config.device, self._sd)
        self.frames_per_block = config.capture_rate_hz * config.block_ms // 1000
        self._queue = DropOldestQueue(config.queue_blocks)
        self._resampler = (
            None if config.capture_rate_hz == SAMPLE_RATE_HZ else Resampler(config.capture_rate_hz)
        )
        self._stream: Any = None
        self.dropped_blocks = 0
        """Blocks thrown away because the queue was full."""
        self.input_overflows = 0
        """Times PortAudio reported that the sound card's own buffer overflowed."""

    @property
    def overruns(self) -> int:
        return self.dropped_blocks + self.input_overflows

    @property
    def active(self) -> bool:
        """True while PortAudio is delivering audio (False after a USB microphone is unplugged)."""
        return self._stream is not None and bool(self._stream.active)

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.input_overflows += 1
        self.dropped_blocks += self._queue.put(bytes(indata))

    def start(self) -> None:
        if self._stream is not None:
            return
        try:
            stream = self._sd.RawInputStream(
                samplerate=self.config.capture_rate_hz,
                blocksize=self.frames_per_block,
                device=self._device,
                channels=1,
                dtype="int16",
                callback=self._callback,
            )
            stream.start()
        except self._sd.PortAudioError as exc:
            raise AudioError(
                f"cannot open audio device {self.config.device or '(default)'} at "
                f"{self.config.capture_rate_hz} Hz mono ({exc}); if the rate is the problem set "
                f"audio.capture_rate_hz to 48000 or 44100. {_describe(input_devices(self._sd))}"
            ) from exc
        self._stream = stream

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()

    def read(self, timeout_s: float) -> bytes | None:
        block = self._queue.get(timeout_s)
        if block is None or self._resampler is None:
            return block
        return self._resampler.process(np.frombuffer(block, dtype="<i2")).tobytes()


def read_wav_16k(path: Path) -> bytes:
    """A WAV file as 16 kHz mono int16 bytes: channels averaged, other rates resampled."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != SAMPLE_WIDTH_BYTES:
                raise AudioError(f"{path}: need 16-bit PCM, got {8 * w.getsampwidth()}-bit")
            channels, rate = w.getnchannels(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise AudioError(f"{path}: cannot read WAV file ({exc})") from exc
    samples = np.frombuffer(frames, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).round().astype(np.int16)
    if rate != SAMPLE_RATE_HZ:
        resampler = Resampler(rate)
        # push the filter's delay line out with trailing zeros so the end is not cut off
        tail = np.zeros(resampler.taps, dtype=np.int16)
        samples = np.concatenate((resampler.process(samples), resampler.process(tail)))
    return samples.astype("<i2").tobytes()


class WavFileSource:
    """Replays a WAV file as if it were the microphone: for tests, demos and the bench.

    With ``realtime=True`` blocks come out at the pace they were recorded; otherwise as fast as
    they are read. After the last block ``read`` returns None and ``finished`` is set.

    >>> src = WavFileSource(Path("help.wav"), realtime=False)  # doctest: +SKIP
    """

    def __init__(self, path: Path, realtime: bool = False, block_ms: int = 100) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self._audio = read_wav_16k(self.path)
        self._block_bytes = SAMPLE_RATE_HZ * block_ms // 1000 * SAMPLE_WIDTH_BYTES
        self._offset = 0
        self._started_at: float | None = None
        self._stopped = threading.Event()
        self.finished = threading.Event()
        """Set once the last block has been handed out."""

    @property
    def overruns(self) -> int:
        return 0

    @property
    def duration_s(self) -> float:
        return len(self._audio) / (SAMPLE_RATE_HZ * SAMPLE_WIDTH_BYTES)

    def start(self) -> None:
        self._stopped.clear()
        if self._started_at is None:
            self._started_at = time.monotonic()

    def stop(self) -> None:
        self._stopped.set()

    def read(self, timeout_s: float) -> bytes | None:
        if self._started_at is None or self._stopped.is_set():
            raise AudioError(f"{self.path}: read() before start() or after stop()")
        if self._offset >= len(self._audio):
            self.finished.set()
            return None
        if self.realtime:  # a block exists only once it has been "recorded"
            end = min(self._offset + self._block_bytes, len(self._audio))
            due = self._started_at + end / (SAMPLE_RATE_HZ * SAMPLE_WIDTH_BYTES)
            wait = due - time.monotonic()
            if wait > timeout_s:
                self._stopped.wait(timeout_s)
                return None
            if wait > 0:
                self._stopped.wait(wait)
        block = self._audio[self._offset : self._offset + self._block_bytes]
        self._offset += len(block)
        if self._offset >= len(self._audio):
            self.finished.set()
        return block

"""Google's speech embedding: 16 kHz audio → one 96-number vector every 80 ms.

The two ONNX models are the ones the ``openwakeword`` wheel (0.5.1) ships in
``openwakeword/resources/models``: ``melspectrogram.onnx`` (a fixed 32-bin mel filterbank,
10 ms hop) and ``embedding_model.onnx`` (Google's ``speech_embedding``, Apache-2.0 per
openWakeWord's README; a stack of convolutions over 76 mel frames, 775 ms). They are read from the
installed package and never copied; the package's own Python (which needs scipy, scikit-learn and
tflite) is not imported. Its wake-word heads are CC BY-NC-SA and are not used.

    emb = SpeechEmbedding.from_openwakeword()
    vectors = emb.embed(pcm16_bytes)          # shape (n, 96), one per 80 ms
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RATE_HZ = 16000
HOP_SAMPLES = 160
"""The mel model's hop: one 32-bin frame per 10 ms."""
WINDOW_FRAMES = 76
"""Mel frames per embedding (775 ms)."""
STEP_FRAMES = 8
"""Mel frames between embeddings (80 ms)."""
EMBEDDING_DIM = 96
_CONTEXT_SAMPLES = 3 * HOP_SAMPLES
"""The mel model returns ``len/160 - 3`` frames: each chunk needs this much audio before it."""

Floats = npt.NDArray[np.float32]

MODEL_SHA256 = {
    "melspectrogram.onnx": "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    "embedding_model.onnx": "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
}
"""The two files as openwakeword 0.5.1 ships them: anything else is refused, not guessed at."""


class EmbeddingModelError(RuntimeError):
    """A speech-embedding model file is missing or is not the one this code was measured with."""


def verified(path: Path) -> Path:
    """``path``, after checking it against :data:`MODEL_SHA256`."""
    expected = MODEL_SHA256.get(path.name)
    if expected is None:
        raise EmbeddingModelError(f"{path.name}: not a speech-embedding model this code knows")
    if not path.is_file():
        raise EmbeddingModelError(f"{path}: missing (pip install openwakeword==0.5.1)")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != expected:
        raise EmbeddingModelError(
            f"{path}: sha256 {got} is not the {expected} of openwakeword 0.5.1's {path.name}"
        )
    return path


def openwakeword_models_dir() -> Path:
    """Where the installed ``openwakeword`` package keeps its models (without importing it)."""
    spec = importlib.util.find_spec("openwakeword")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the openwakeword package is not installed (pip install openwakeword)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "models"


class SpeechEmbedding:
    """The mel + embedding models, on onnxruntime's CPU provider, single-threaded by default."""

    def __init__(self, mel_model: Path, embedding_model: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        cpu = ["CPUExecutionProvider"]
        self._mel: Any = ort.InferenceSession(str(mel_model), options, providers=cpu)
        self._emb: Any = ort.InferenceSession(str(embedding_model), options, providers=cpu)

    @classmethod
    def from_openwakeword(cls, threads: int = 1) -> SpeechEmbedding:
        d = openwakeword_models_dir()
        return cls(
            verified(d / "melspectrogram.onnx"), verified(d / "embedding_model.onnx"), threads
        )

    def mel(self, audio: bytes) -> Floats:
        """``(frames, 32)`` mel frames of int16 audio, ``len/160 - 3`` of them (in 8 s pieces: the
        model's memory grows with its input)."""
        piece = 2 * 8 * RATE_HZ
        if len(audio) <= piece:
            return self._mel_piece(audio)
        ctx = 2 * _CONTEXT_SAMPLES
        parts = [self._mel_piece(audio[:piece])]
        parts += [
            self._mel_piece(audio[i - ctx : i + piece]) for i in range(piece, len(audio), piece)
        ]
        return np.concatenate(parts)

    def _mel_piece(self, audio: bytes) -> Floats:
        x = np.frombuffer(audio, "<i2")[None, :]
        if x.shape[1] < 4 * HOP_SAMPLES:
            return np.zeros((0, 32), np.float32)
        return self.mel_rows(x).reshape(-1, 32)

    def mel_rows(self, samples: npt.NDArray[np.int16]) -> Floats:
        """``(rows, frames, 32)``: the mel frames of rows of int16 samples (clamped at 80 dB
        below the loudest frame of them all)."""
        # fed as raw int16 sample values, as the model was trained
        out = np.asarray(self._mel.run(None, {"input": samples.astype(np.float32)})[0], np.float32)
        # the ONNX export's scale differs from the TensorFlow original by this affine map
        return np.squeeze(out, axis=(1,)) / 10.0 + 2.0

    def embed_mel(self, frames: Floats) -> Floats:
        """``(n, 96)``: one embedding per 8 frames, each of the 76 frames ending there."""
        n = (len(frames) - WINDOW_FRAMES) // STEP_FRAMES + 1
        if n <= 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return self.embed_windows(
            np.stack([frames[i * STEP_FRAMES : i * STEP_FRAMES + WINDOW_FRAMES] for i in range(n)])
        )

    def embed_windows(self, windows: Floats) -> Floats:
        """``(n, 96)`` for ``(n, 76, 32)`` mel windows."""
        x = windows[..., None]
        out = [
            np.asarray(self._emb.run(None, {"input_1": x[i : i + 256]})[0], np.float32)
            for i in range(0, len(x), 256)
        ]
        return np.concatenate(out).reshape(len(x), EMBEDDING_DIM)

    def embed(self, audio: bytes) -> Floats:
        return self.embed_mel(self.mel(audio))


class EmbeddingStream:
    """Embeddings of a live stream, as a device computes them: 8 mel frames per 80 ms of audio,
    one embedding per 80 ms once 76 frames are there (the first ends :data:`FIRST_END_S` into the
    stream, each next one 80 ms later).

    The mel model clamps each input at 80 dB below its loudest frame, so it is always run on
    the same pieces, 80 ms with 30 ms before them: the embeddings do not depend on how the
    stream is cut into blocks (a whole recording embedded with :func:`stream_embed` gives what
    the device gives). :meth:`SpeechEmbedding.embed` runs it on 8 s pieces instead; in digital
    silence and near loud speech the two differ, so a head is trained on these."""

    def __init__(self, embedding: SpeechEmbedding) -> None:
        self._embedding = embedding
        self._pending = b""
        self._frames = np.zeros((0, 32), np.float32)
        self._context = bytes(2 * _CONTEXT_SAMPLES)

    def accept(self, block: bytes) -> Floats:
        """The embeddings that ``block`` completes (``(k, 96)``, k ≥ 0)."""
        self._pending += block
        step = 2 * STEP_FRAMES * HOP_SAMPLES
        out = []
        while len(self._pending) >= step:
            chunk, self._pending = self._pending[:step], self._pending[step:]
            new = self._embedding.mel(self._context + chunk)
            self._context = chunk[-2 * _CONTEXT_SAMPLES :]
            self._frames = np.concatenate([self._frames, new])[-WINDOW_FRAMES:]
            if len(self._frames) >= WINDOW_FRAMES:
                out.append(self._frames)
        if not out:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return self._embedding.embed_windows(np.stack(out))


FIRST_END_S = (WINDOW_FRAMES + STEP_FRAMES - WINDOW_FRAMES % STEP_FRAMES) * HOP_SAMPLES / RATE_HZ
"""Where the stream's first embedding ends (0.8 s: the first whole 80 ms after 76 frames)."""
STEP_S = STEP_FRAMES * HOP_SAMPLES / RATE_HZ
"""Between two embeddings (80 ms)."""


def stream_embed(embedding: SpeechEmbedding, audio: bytes) -> Floats:
    """What :class:`EmbeddingStream` gives for ``audio`` (embedding ``k`` ends at
    ``FIRST_END_S + k * STEP_S``), with the embeddings run in batches."""
    step = 2 * STEP_FRAMES * HOP_SAMPLES
    n = len(audio) // step
    if n * STEP_FRAMES < WINDOW_FRAMES:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    # one mel run per piece: the model's 80 dB clamp is taken over all it is given at once
    ctx = 2 * _CONTEXT_SAMPLES
    padded = bytes(ctx) + audio[: n * step]
    frames = np.concatenate(
        [embedding.mel(padded[i * step : (i + 1) * step + ctx]) for i in range(n)]
    )
    first = -(-WINDOW_FRAMES // STEP_FRAMES)  # steps before the first window is whole
    ends = [k * STEP_FRAMES for k in range(first, n + 1)]
    return embedding.embed_windows(np.stack([frames[e - WINDOW_FRAMES : e] for e in ends]))

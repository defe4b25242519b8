"""A second opinion on a voice SOS: a keyword classifier on the speech embedding.

The recogniser's SOS is only sent if the classifier, listening to the same audio, also scored an
SOS phrase within the last ``window_s`` seconds. The classifier (``KeywordHead``) is a small
numpy head over 16 consecutive embeddings (``edge_agent.speech_embedding``), trained by
``bench/speech_kws.py --save-head FILE`` on synthetic speech; it is off unless
``voice.kws_verifier`` names such a file (see docs/speech.md, *A keyword classifier*).
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.speech_embedding import (
    EMBEDDING_DIM,
    HOP_SAMPLES,
    RATE_HZ,
    STEP_FRAMES,
    EmbeddingStream,
    SpeechEmbedding,
)

Floats = npt.NDArray[np.float32]
CONTEXT = 16
"""Embeddings per classifier input (16 × 80 ms + 775 ms ≈ 2 s of audio)."""


class SosVerifier(Protocol):
    """Hears every block of the microphone; says whether an SOS phrase was heard just now."""

    def hear(self, block: bytes) -> None: ...

    def confirms(self) -> bool: ...


def stack(e: Floats) -> Floats:
    """``(n, CONTEXT*96)``: each embedding with the 15 before it (the first one repeated before
    the start), so that there is one classifier input per embedding."""
    if len(e) == 0:
        return np.zeros((0, CONTEXT * EMBEDDING_DIM), np.float32)
    padded = np.concatenate([np.repeat(e[:1], CONTEXT - 1, axis=0), e])
    idx = np.arange(len(e))[:, None] + np.arange(CONTEXT)[None, :]
    return np.asarray(padded[idx].reshape(len(e), -1), np.float32)


@dataclass
class KeywordHead:
    """Standardised inputs → one hidden ReLU layer (or none: ``w1`` empty) → logistic."""

    mean: Floats
    std: Floats
    w1: Floats
    b1: Floats
    w2: Floats
    b2: float
    threshold: float = 0.5
    """The score at or above which an input is an SOS phrase (chosen on the dev split)."""

    def score(self, x: Floats) -> Floats:
        z = (x - self.mean) / self.std
        h = np.maximum(z @ self.w1 + self.b1, 0) if self.w1.size else z
        logit = np.clip(h @ self.w2 + self.b2, -60, 60)
        return np.asarray(1 / (1 + np.exp(-logit)), np.float32)

    def save(self, path: Path) -> None:
        """Write the head to ``path`` (an ``.npz``) and its sha256 beside it (``path.sha256``),
        which :meth:`load` checks."""
        with path.open("wb") as f:
            np.savez(
                f,
                mean=self.mean,
                std=self.std,
                w1=self.w1,
                b1=self.b1,
                w2=self.w2,
                b2=np.float32(self.b2),
                threshold=np.float32(self.threshold),
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        checksum_path(path).write_text(f"{digest}  {path.name}\n")

    @classmethod
    def load(cls, path: Path) -> KeywordHead:
        """The head at ``path``, once its bytes match the sha256 written beside it."""
        sums = checksum_path(path)
        if not path.is_file():
            raise HeadError(f"{path}: no keyword-classifier head there")
        if not sums.is_file():
            raise HeadError(f"{path}: no checksum beside it ({sums.name}); write heads with save()")
        expected = sums.read_text().split()[0] if sums.read_text().split() else ""
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != expected:
            raise HeadError(f"{path}: its sha256 does not match {sums.name}")
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return cls(
                f["mean"],
                f["std"],
                f["w1"],
                f["b1"],
                f["w2"],
                float(f["b2"]),
                float(f["threshold"]),
            )


class HeadError(RuntimeError):
    """A keyword-classifier head is missing, has no checksum, or does not match it."""


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


class EmbeddingVerifier:
    """``SosVerifier`` on the live stream: embeds each block, scores each new embedding, and
    confirms while the best score of the last ``window_s`` seconds reaches the head's threshold.

    >>> head = KeywordHead.load(Path("sos-head.npz"))  # doctest: +SKIP
    >>> v = EmbeddingVerifier(SpeechEmbedding.from_openwakeword(), head)  # doctest: +SKIP
    """

    def __init__(self, embedding: SpeechEmbedding, head: KeywordHead, window_s: float = 3.0):
        self._stream = EmbeddingStream(embedding)
        self._head = head
        self._recent: deque[Floats] = deque(maxlen=CONTEXT)
        step_s = STEP_FRAMES * HOP_SAMPLES / RATE_HZ
        self._scores: deque[float] = deque(maxlen=max(1, round(window_s / step_s)))

    def hear(self, block: bytes) -> None:
        for e in self._stream.accept(block):
            self._recent.append(e)
            # this embedding and the 15 before it, the first repeated before the start (= stack)
            pad = [self._recent[0]] * (CONTEXT - len(self._recent))
            x = np.concatenate([*pad, *self._recent])[None, :]
            self._scores.append(float(self._head.score(x)[0]))

    def confirms(self) -> bool:
        return max(self._scores, default=0.0) >= self._head.threshold

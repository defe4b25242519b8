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
    """The verifier's threshold: the score at or above which it confirms the recogniser's SOS
    (chosen on the dev split to keep 95 % of the dev SOS)."""
    detect_threshold: float | None = None
    """The detector's threshold: a score at or above it is an SOS on its own (chosen on dev:
    rare among dev sentences and in dev talk, see ``bench/speech_kws.py``; None: ``threshold``)."""
    strong_threshold: float | None = None
    """A detected SOS scoring at or above this is sent at once, below it the agent asks (no dev
    false; None: ``detect_threshold``, i.e. never ask)."""

    @property
    def detect_at(self) -> float:
        return self.threshold if self.detect_threshold is None else self.detect_threshold

    @property
    def strong_at(self) -> float:
        return self.detect_at if self.strong_threshold is None else self.strong_threshold

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
                detect_threshold=np.float32(self.detect_at),
                strong_threshold=np.float32(self.strong_at),
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
            optional = {k: float(f[k]) for k in ("detect_threshold", "strong_threshold") if k in f}
            return cls(
                f["mean"],
                f["std"],
                f["w1"],
                f["b1"],
                f["w2"],
                float(f["b2"]),
                float(f["threshold"]),
                **optional,
            )


def bundled_head(language: str) -> Path:
    """The SOS head this package ships for ``language`` (``firmware_config/kws/<language>-sos.npz``,
    trained by ``bench/speech_kws.py --save-head`` on espeak-ng speech; see docs/speech.md)."""
    path = resolve_head(Path(f"{language}-sos.npz"))
    if not path.is_file():
        raise HeadError(f"no keyword-classifier SOS head ships for language {language!r}")
    return path


def resolve_head(path: Path) -> Path:
    """``path`` as given, or, for a bare file name (``ko-sos.npz``), the head of that name this
    package ships in ``firmware_config/kws/``."""
    if path.is_absolute() or path.parent != Path("."):
        return path
    import firmware_config

    return Path(firmware_config.__file__).parent / "kws" / path.name


class HeadError(RuntimeError):
    """A keyword-classifier head is missing, has no checksum, or does not match it."""


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


class Embeddings(Protocol):
    """Turns each microphone block into the embeddings that end in it (``EmbeddingStream``)."""

    def accept(self, block: bytes) -> Floats: ...


class SharedStream:
    """One :class:`EmbeddingStream` for several heads (the SOS detector and the wake-word
    detector): the first head to hear a block embeds it, the others get the same embeddings.
    The voice path hands every part the same block object, so a block is known by identity
    (this holds the last one, so no other block can take its identity).
    """

    def __init__(self, embedding: SpeechEmbedding) -> None:
        self._stream = EmbeddingStream(embedding)
        self._block: bytes | None = None
        self._out: Floats = np.zeros((0, EMBEDDING_DIM), np.float32)

    def accept(self, block: bytes) -> Floats:
        if block is not self._block:
            self._out = self._stream.accept(block)
            self._block = block
        return self._out


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


class SosDetector(Protocol):
    """Hears every block of the microphone; returns a score when an SOS phrase starts to score."""

    def hear(self, block: bytes) -> float | None: ...

    @property
    def last_score(self) -> float:
        """The highest score among the embeddings of the last block heard (0 without any)."""
        ...

    @property
    def strong_at(self) -> float:
        """A hit whose peak score reaches this is sent without asking."""
        ...


class EmbeddingDetector:
    """``SosDetector`` on the live stream: the same head and inputs as :class:`EmbeddingVerifier`,
    but a score at or above ``head.detect_at`` is an SOS of its own (or, with a wake-word head, a
    wake word). Scores that stay high make one hit: a new one needs more than ``merge_s`` after
    the last (as ``bench/speech_kws.py`` counts events). ``stream`` shares one embedding stream
    between heads (:class:`SharedStream`).

    >>> d = EmbeddingDetector(SpeechEmbedding.from_openwakeword(), head)  # doctest: +SKIP
    >>> score = d.hear(block)  # None, or the score of a new hit  # doctest: +SKIP
    """

    def __init__(
        self,
        embedding: SpeechEmbedding,
        head: KeywordHead,
        merge_s: float = 3.0,
        stream: Embeddings | None = None,
    ):
        self._stream: Embeddings = stream or EmbeddingStream(embedding)
        self._head = head
        self._recent: deque[Floats] = deque(maxlen=CONTEXT)
        self._step_s = STEP_FRAMES * HOP_SAMPLES / RATE_HZ
        self._merge_s = merge_s
        self._t = 0.0
        self._last_hit: float | None = None
        self._last_score = 0.0

    @property
    def last_score(self) -> float:
        return self._last_score

    @property
    def strong_at(self) -> float:
        return self._head.strong_at

    def hear(self, block: bytes) -> float | None:
        hit: float | None = None
        self._last_score = 0.0
        for e in self._stream.accept(block):
            self._recent.append(e)
            self._t += self._step_s
            pad = [self._recent[0]] * (CONTEXT - len(self._recent))
            score = float(self._head.score(np.concatenate([*pad, *self._recent])[None, :])[0])
            self._last_score = max(self._last_score, score)
            fresh = self._last_hit is None or self._t - self._last_hit > self._merge_s
            if score >= self._head.detect_at and fresh:
                self._last_hit = self._t
                hit = score
        return hit


def detector_pair(
    embedding: SpeechEmbedding, sos: KeywordHead | None, wake: KeywordHead | None
) -> tuple[EmbeddingDetector | None, EmbeddingDetector | None]:
    """The SOS and wake-word detectors for the heads given (None: that one is off), on one
    :class:`SharedStream`, so each block is embedded once for both."""
    shared = SharedStream(embedding)
    return (
        None if sos is None else EmbeddingDetector(embedding, sos, stream=shared),
        None if wake is None else EmbeddingDetector(embedding, wake, stream=shared),
    )

"""The keyword classifier as the wake-word detector (``voice.kws_wake``): its hits are the wake
word and arm the spotter, the recogniser's bare wake words are not acted on, and a failing
classifier leaves the recogniser's. FakeSosDetector stands in for the trained head (it says when
it "hears" something, whatever that is), FakeRecognizer for Vosk; where openwakeword and
onnxruntime are installed, two heads share one embedding stream."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from edge_agent.audio import PushedSource
from edge_agent.fakes import FakeRecognizer, FakeSosDetector
from edge_agent.kws import CONTEXT, KeywordHead
from edge_agent.runtime import make_detectors
from edge_agent.spotter import Detection, Kind, Spotter
from edge_agent.vad import VoiceActivityGate
from edge_agent.voice import CLASSIFIER_PHRASE, VoicePipeline
from firmware_config.device import AudioConfig, VoiceConfig
from firmware_config.phrases import load_phrase_set
from tests.edge_agent.test_kws_detector import BLOCK, _tone

KO = load_phrase_set("ko")


class _Run:
    """Audio through the energy gate; FakeRecognizer hears each segment as the next of
    ``heard_as``; the pipeline's clock is audio time."""

    def __init__(
        self,
        heard_as: list[str],
        wake: FakeSosDetector | None,
        sos: FakeSosDetector | None = None,
    ) -> None:
        self.t = 0.0
        self.heard: list[tuple[Detection, float]] = []
        self.spotter = Spotter(KO)
        self.pipeline = VoicePipeline(
            PushedSource(),
            VoiceActivityGate.from_config(AudioConfig(vad="energy")),
            FakeRecognizer(heard_as),
            self.spotter,
            on_detection=lambda d: self.heard.append((d, self.t)),
            clock=lambda: self.t,
            detector=sos,
            wake_detector=wake,
        )

    def feed(self, audio: bytes) -> None:
        for i in range(0, len(audio), BLOCK):
            self.t += len(audio[i : i + BLOCK]) / 32000
            self.pipeline.process(audio[i : i + BLOCK])

    def utterance(self, speech_s: float = 1.0) -> None:
        self.feed(bytes(32000) + _tone(speech_s) + bytes(48000))

    def kinds(self) -> list[Kind]:
        return [d.kind for d, _ in self.heard]


def test_a_classifier_hit_is_a_wake_word_and_counts_as_one() -> None:
    run = _Run(["밥 먹었어요"], FakeSosDetector({15: 0.9}))
    run.utterance()
    [(wake, at)] = run.heard
    assert wake == Detection(Kind.WAKE, CLASSIFIER_PHRASE, 0.9)
    assert at == pytest.approx(1.6)  # at once: nothing waits for the segment to end
    assert run.pipeline.wake_word_count == 1 and run.pipeline.interactions == 1


def test_a_request_after_the_classifiers_wake_word_is_taken() -> None:
    # the recogniser heard only the request ("안부야" lost to it): the classifier's hit armed
    # the spotter, so the request within the wake window is one
    run = _Run(["[unk] 전화 해 주세요"], FakeSosDetector({12: 0.9}))
    run.utterance(2.0)
    assert run.kinds() == [Kind.WAKE, Kind.REQUEST]


def test_without_a_wake_word_a_request_is_not_taken() -> None:
    run = _Run(["[unk] 전화 해 주세요"], FakeSosDetector({}))
    run.utterance(2.0)
    assert run.kinds() == []


def test_the_recognisers_bare_wake_word_is_not_acted_on() -> None:
    run = _Run(["안부 야"], FakeSosDetector({}))
    run.utterance()
    assert run.heard == [] and run.pipeline.wake_ignored == 1
    assert run.pipeline.wake_word_count == 0


def test_the_recognisers_wake_word_stands_when_the_classifier_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "anbu.agent.voice")
    run = _Run(["안부 야"], FakeSosDetector(fails=RuntimeError("onnx gone")))
    run.utterance()
    assert run.kinds() == [Kind.WAKE] and run.heard[0][0].phrase == "안부 야"
    assert run.pipeline.errors == 35  # every block counted ...
    assert sum("wake-word detector failed" in r.getMessage() for r in caplog.records) == 1


def test_an_sos_is_not_kept_from_the_resident_by_the_wake_word_detector() -> None:
    # both classifiers hear the same block: the wake word is passed on at once, the SOS after
    # its hold, and the SOS still stands
    run = _Run(["[unk] 살려 줘"], FakeSosDetector({18: 0.9}), sos=FakeSosDetector({18: 0.99}))
    run.utterance()
    assert run.kinds() == [Kind.WAKE, Kind.SOS]


def test_the_wake_detector_is_off_by_default(tmp_path: Path) -> None:
    from edge_agent.kws import HeadError

    assert VoiceConfig().kws_wake is None
    assert make_detectors(VoiceConfig()) == (None, None)
    with pytest.raises(HeadError, match="no keyword-classifier head"):
        make_detectors(VoiceConfig(kws_wake=tmp_path / "missing.npz"))


_MODELS = importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("openwakeword")


@pytest.mark.skipif(not _MODELS, reason="needs onnxruntime and openwakeword (the speech bench's)")
def test_two_heads_share_one_embedding_stream_and_score_as_if_alone(tmp_path: Path) -> None:
    from edge_agent.kws import EmbeddingDetector, SharedStream
    from edge_agent.speech_embedding import SpeechEmbedding

    emb = SpeechEmbedding.from_openwakeword()
    rng = np.random.default_rng(5)
    d = CONTEXT * 96
    f32 = np.float32

    def head(seed: int) -> KeywordHead:
        w = np.random.default_rng(seed).normal(0, 0.002, d).astype(f32)
        return KeywordHead(np.zeros(d, f32), np.ones(d, f32), np.zeros((d, 0), f32),
                           np.zeros(0, f32), w, 0.0, 0.5)  # fmt: skip

    envelope = np.repeat(rng.uniform(0, 1, 20) ** 3, 16000 // 4)
    audio = (rng.normal(0, 6000, len(envelope)) * envelope).astype("<i2").tobytes()
    blocks = [audio[i : i + BLOCK] for i in range(0, len(audio), BLOCK)]

    alone = [EmbeddingDetector(emb, head(1)), EmbeddingDetector(emb, head(2))]
    shared = SharedStream(emb)
    together = [EmbeddingDetector(emb, head(1), stream=shared),
                EmbeddingDetector(emb, head(2), stream=shared)]  # fmt: skip
    embedded = 0
    inner = shared._stream.accept

    def count_inner(block: bytes) -> np.ndarray:  # type: ignore[type-arg]
        nonlocal embedded
        embedded += 1
        return inner(block)

    shared._stream.accept = count_inner  # type: ignore[method-assign]
    for b in blocks:
        for a, t in zip(alone, together, strict=True):
            a.hear(b)
            t.hear(b)
            assert t.last_score == pytest.approx(a.last_score, abs=1e-6)
    assert embedded == len(blocks)  # each block embedded once for both heads


@pytest.mark.skipif(not _MODELS, reason="needs onnxruntime and openwakeword (the speech bench's)")
def test_the_agent_shares_the_stream_between_its_sos_and_wake_heads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from edge_agent.kws import EmbeddingDetector

    with caplog.at_level(logging.INFO, logger="anbu.agent"):
        sos, wake = make_detectors(
            VoiceConfig(kws_detector=Path("ko-sos.npz"), kws_wake=Path("ko-wake.npz"))
        )
    assert isinstance(sos, EmbeddingDetector) and isinstance(wake, EmbeddingDetector)
    # both heads are announced, as each is alone
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("voice SOS is the keyword classifier's (ko-sos.npz") for m in said)
    assert any(m.startswith("the wake word is the keyword classifier's (ko-wake.npz") for m in said)
    assert sos._stream is wake._stream  # one embedding per block for both
    block = bytes(3200 * 30)
    assert sos.hear(block) is None and wake.hear(block) is None  # silence: no SOS, no wake

"""The keyword classifier as the SOS detector (``voice.kws_detector``): how the voice path holds,
vetoes and passes on its hits (FakeSosDetector stands in for the trained head and the ONNX
models, FakeRecognizer for Vosk), and, where openwakeword and onnxruntime are installed, the live
detector on real audio against the bench's way of counting events."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.audio import PushedSource
from edge_agent.fakes import FakeRecognizer, FakeSosDetector
from edge_agent.kws import CONTEXT, KeywordHead, stack
from edge_agent.runtime import make_detector
from edge_agent.spotter import Detection, Kind, Spotter
from edge_agent.vad import VoiceActivityGate
from edge_agent.voice import CLASSIFIER_PHRASE, VoicePipeline
from edge_agent.voice_sos import Action, VoiceSosDecider
from firmware_config.device import AudioConfig, VoiceConfig
from firmware_config.phrases import load_phrase_set

KO = load_phrase_set("ko")
BLOCK = 3200  # 100 ms


def _tone(seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return (6000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


class _Run:
    """Audio through the energy gate; FakeRecognizer hears each segment as the next of
    ``heard_as``; the pipeline's clock is audio time."""

    def __init__(
        self,
        heard_as: list[str],
        detector: FakeSosDetector,
        answering: bool = False,
        hold_s: float = VoiceConfig().kws_hold_s,
    ) -> None:
        self.t = 0.0
        self.heard: list[tuple[Detection, float]] = []
        self.pipeline = VoicePipeline(
            PushedSource(),
            VoiceActivityGate.from_config(AudioConfig(vad="energy")),
            FakeRecognizer(heard_as),
            Spotter(KO),
            on_detection=lambda d: self.heard.append((d, self.t)),
            clock=lambda: self.t,
            detector=detector,
            detector_hold_s=hold_s,
            answering=lambda: answering,
        )

    def feed(self, audio: bytes) -> None:
        for i in range(0, len(audio), BLOCK):
            self.t += len(audio[i : i + BLOCK]) / 32000
            self.pipeline.process(audio[i : i + BLOCK])

    def kinds(self) -> list[Kind]:
        return [d.kind for d, _ in self.heard]


def _utterance(run: _Run, speech_s: float = 1.0) -> None:
    run.feed(bytes(32000) + _tone(speech_s) + bytes(48000))


def test_a_classifier_hit_is_the_sos_whatever_the_recogniser_heard() -> None:
    # 1 s quiet, 1 s voice (blocks 10-19), 1.5 s quiet; the hit comes as the voice ends
    run = _Run(["밥 먹었어요"], FakeSosDetector({20: 0.97}))
    _utterance(run)
    [(sos, at)] = run.heard
    assert sos == Detection(Kind.SOS, CLASSIFIER_PHRASE, 0.97, sure=True)
    assert 2.0 < at <= 3.0  # after the gate's hangover closed the segment, within the hold


def test_the_recognisers_sos_phrase_is_not_acted_on() -> None:
    run = _Run(["살려 주세요"], FakeSosDetector({}))
    _utterance(run)
    assert run.heard == []
    assert run.pipeline.sos_ignored == 1


def test_a_cancel_heard_in_the_same_utterance_vetoes_the_hit() -> None:
    # a hit just after the voice ends (2.3 s; the classifier's peak comes there) is still held
    # when the segment closes (~2.6 s) and its transcript says 취소: nothing is sent
    run = _Run(["취소 해 줘"], FakeSosDetector({22: 0.99}))
    _utterance(run)
    assert run.kinds() == [Kind.CANCEL]  # the cancel still goes on (it withdraws the last SOS)
    assert run.pipeline.sos_vetoed == 1


def test_a_hit_early_in_an_utterance_goes_before_its_cancel_with_the_default_hold() -> None:
    # the hit at 1.6 s waits 0.5 s (the default), the segment ends at ~2.6 s: the SOS goes
    # first, then the cancel, which marks it cancelled by the resident (the collector keeps the
    # dispatch open); with a 1 s hold it would have been vetoed and nothing sent
    run = _Run(["취소 해 줘"], FakeSosDetector({15: 0.99}))
    _utterance(run)
    assert run.kinds() == [Kind.SOS, Kind.CANCEL]
    assert run.pipeline.sos_vetoed == 0
    [(_, sos_at), (_, cancel_at)] = run.heard
    assert sos_at == pytest.approx(1.6 + 0.5, abs=0.11) and cancel_at > sos_at
    held = _Run(["취소 해 줘"], FakeSosDetector({15: 0.99}), hold_s=1.0)
    _utterance(held)
    assert held.kinds() == [Kind.CANCEL] and held.pipeline.sos_vetoed == 1


def test_a_hit_just_after_a_cancel_is_vetoed_and_a_later_one_is_not() -> None:
    # utterance 1 (cancel) ends with its segment at ~2.7 s; a hit at 3.0 s is within 2 s of it
    run = _Run(["취소 해 줘", "[unk]"], FakeSosDetector({30: 0.99, 80: 0.99}))
    _utterance(run)  # blocks 0-34
    _utterance(run)  # blocks 35-69
    run.feed(bytes(32000 * 2))  # blocks 70-89: quiet, the gate is closed at block 80
    assert run.kinds() == [Kind.CANCEL, Kind.SOS]
    assert run.pipeline.sos_vetoed == 1


def test_a_hit_in_a_segment_that_does_not_end_is_passed_on_after_the_hold() -> None:
    run = _Run(["[unk]"], FakeSosDetector({12: 0.97}))
    run.feed(bytes(32000) + _tone(5.0))  # the gate stays open
    [(sos, at)] = run.heard
    assert sos.kind is Kind.SOS
    assert at == pytest.approx(1.3 + 0.5, abs=0.11)  # block 12 ends at 1.3 s; hold 0.5 s


def test_the_hold_is_the_configured_one_and_a_closing_gate_still_ends_it_sooner() -> None:
    short = _Run(["[unk]"], FakeSosDetector({12: 0.97}), hold_s=0.4)
    short.feed(bytes(32000) + _tone(5.0))  # the gate stays open: the hold ends it
    [(_, at)] = short.heard
    assert at == pytest.approx(1.3 + 0.4, abs=0.11)
    # 1 s voice, then quiet: the hangover (600 ms) closes the segment before a 3 s hold ends
    long = _Run(["[unk]"], FakeSosDetector({20: 0.97}), hold_s=3.0)
    _utterance(long)
    [(_, at)] = long.heard
    assert 2.0 < at <= 2.9


def test_the_hold_setting_is_bounded_and_reaches_the_agents_voice_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert VoiceConfig().kws_hold_s == 0.5
    for bad in (-0.1, 3.5):
        with pytest.raises(ValidationError, match="kws_hold_s"):
            VoiceConfig(kws_hold_s=bad)
    # attach_voice as the agent runs it, with the microphone replaced (no sound card here)
    import edge_agent.audio
    from edge_agent.agent import Agent
    from edge_agent.announce import LogAnnouncer
    from edge_agent.outbox import Outbox
    from edge_agent.runtime import attach_voice
    from firmware_config.device import DeviceConfig

    monkeypatch.setattr(edge_agent.audio, "SoundDeviceSource", lambda config: PushedSource())
    cfg = DeviceConfig.model_validate(
        {
            "district": "d1",
            "household_id": "h1",
            "device_id": "p1",
            "outbox_path": str(tmp_path / "outbox.sqlite3"),
            "broker": {"url": "mqtt://127.0.0.1:1883", "username": "u", "password": "x"},
            "voice": {"kws_hold_s": 0.4},
        }
    )
    agent = Agent(cfg, KO, Outbox(cfg.outbox_path), LogAnnouncer(), version="test")
    attach_voice(agent, cfg, stand_in=True)
    assert isinstance(agent.voice, VoicePipeline) and agent.voice.detector_hold_s == 0.4


def test_a_weak_hit_asks_and_a_later_strong_score_in_its_hold_makes_it_sure() -> None:
    weak = _Run(["[unk]"], FakeSosDetector({15: 0.9}, strong_at=0.95))
    _utterance(weak)
    [(sos, _)] = weak.heard
    assert (sos.confidence, sos.sure) == (0.9, False)
    decider = VoiceSosDecider(ask_below=0.5, answer_timeout_s=8)  # sure overrides ask_below
    assert [d.action for d in decider.hear(sos, now=0)] == [Action.ASK]

    rising = _Run(["[unk]"], FakeSosDetector({15: 0.9, 17: 0.96}, strong_at=0.95))
    _utterance(rising)
    [(sos, _)] = rising.heard
    assert (sos.confidence, sos.sure) == (0.96, True)
    decider = VoiceSosDecider(ask_below=0.99, answer_timeout_s=8)
    assert [d.action for d in decider.hear(sos, now=0)] == [Action.SEND]


def test_a_failing_detector_leaves_the_recognisers_sos_standing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = _Run(["살려 주세요"], FakeSosDetector(fails=RuntimeError("onnx")))
    with caplog.at_level(logging.ERROR, logger="anbu.agent.voice"):
        _utterance(run)
    [(sos, _)] = run.heard
    assert (sos.kind, sos.phrase) == (Kind.SOS, "살려 줘")
    assert run.pipeline.errors == 35  # every block of the 3.5 s
    assert sum("failed on a block" in r.getMessage() for r in caplog.records) == 1


def test_the_detector_is_off_by_default_and_not_beside_the_verifier(tmp_path: Path) -> None:
    assert VoiceConfig().kws_detector is None
    assert make_detector(VoiceConfig()) is None
    with pytest.raises(ValidationError, match="both set"):
        VoiceConfig(kws_verifier=tmp_path / "a.npz", kws_detector=tmp_path / "b.npz")


def test_a_head_keeps_its_three_thresholds_and_an_old_head_detects_at_its_one(
    tmp_path: Path,
) -> None:
    d = CONTEXT * 96
    z = np.zeros(d, np.float32)
    parts = (z, np.ones(d, np.float32), np.zeros((d, 0), np.float32), np.zeros(0, np.float32), z)
    head = KeywordHead(*parts, 0.0, 0.6, detect_threshold=0.8, strong_threshold=0.9)
    head.save(tmp_path / "head.npz")
    again = KeywordHead.load(tmp_path / "head.npz")
    assert (again.threshold, again.detect_at, again.strong_at) == pytest.approx((0.6, 0.8, 0.9))
    old = KeywordHead(*parts, 0.0, 0.6)
    assert (old.detect_at, old.strong_at) == (0.6, 0.6)


_MODELS = importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("openwakeword")


@pytest.mark.skipif(not _MODELS, reason="needs onnxruntime and openwakeword (the speech bench's)")
def test_the_live_detector_hits_where_the_bench_counts_events() -> None:
    from bench.speech_kws import events
    from edge_agent.kws import EmbeddingDetector
    from edge_agent.speech_embedding import (
        HOP_SAMPLES,
        RATE_HZ,
        STEP_FRAMES,
        EmbeddingStream,
        SpeechEmbedding,
    )

    emb = SpeechEmbedding.from_openwakeword()
    rng = np.random.default_rng(3)
    # noise whose loudness comes and goes, so that the scores cross a threshold several times
    envelope = np.repeat(rng.uniform(0, 1, 40) ** 3, 16000 // 4)
    audio = (rng.normal(0, 6000, len(envelope)) * envelope).astype("<i2").tobytes()
    d = CONTEXT * 96
    f32 = np.float32
    head = KeywordHead(np.zeros(d, f32), np.ones(d, f32), np.zeros((d, 0), f32),
                       np.zeros(0, f32), rng.normal(0, 0.002, d).astype(f32), 0.0, 0.5)  # fmt: skip
    stream = EmbeddingStream(emb)
    blocks = [audio[i : i + BLOCK] for i in range(0, len(audio), BLOCK)]
    embs = np.concatenate([stream.accept(b) for b in blocks])
    scores = head.score(stack(embs))
    head.detect_threshold = float(np.quantile(scores, 0.7))
    step = STEP_FRAMES * HOP_SAMPLES / RATE_HZ
    expected = events((np.arange(len(scores)) + 1) * step, scores, head.detect_at)
    assert len(expected) >= 2

    detector = EmbeddingDetector(emb, head)
    hits = [detector.hear(b) for b in blocks]
    assert sum(h is not None for h in hits) == len(expected)


def test_a_missing_head_or_missing_runtime_is_a_clear_start_up_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_agent.kws import HeadError, bundled_head
    from edge_agent.speech_embedding import EmbeddingModelError

    with pytest.raises(HeadError, match="no keyword-classifier head"):
        make_detector(VoiceConfig(kws_detector=tmp_path / "missing.npz"))
    with pytest.raises(HeadError, match="ships for language 'en'"):
        bundled_head("en")
    # errors the agent's `run` reports in one line (it catches RuntimeError and OSError)
    assert issubclass(HeadError, RuntimeError) and issubclass(EmbeddingModelError, RuntimeError)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(EmbeddingModelError, match="kws_detector needs onnxruntime"):
        make_detector(VoiceConfig(kws_detector=bundled_head("ko")))


def test_a_bare_head_name_is_one_the_package_ships_and_a_path_is_a_path(tmp_path: Path) -> None:
    from edge_agent.kws import bundled_head, resolve_head

    assert resolve_head(Path("ko-sos.npz")) == bundled_head("ko")
    assert resolve_head(tmp_path / "ko-sos.npz") == tmp_path / "ko-sos.npz"
    assert resolve_head(Path("heads/ko-sos.npz")) == Path("heads/ko-sos.npz")


@pytest.mark.skipif(not _MODELS, reason="needs onnxruntime and openwakeword (the speech bench's)")
def test_the_agent_builds_its_detector_from_the_shipped_head() -> None:
    from edge_agent.kws import EmbeddingDetector, bundled_head

    detector = make_detector(VoiceConfig(kws_detector=Path("ko-sos.npz")))
    assert isinstance(detector, EmbeddingDetector)
    head = KeywordHead.load(bundled_head("ko"))
    assert detector.strong_at == head.strong_at >= head.detect_at > head.threshold
    assert detector.hear(bytes(3200 * 30)) is None  # 3 s of silence is no SOS


def test_the_utterance_that_raised_the_sos_does_not_answer_its_question() -> None:
    # noise heard as "[unk] [unk] 아니야": the hit is passed on after its hold while the
    # segment is still open (the agent asks); the segment's own 아니야 must not drop it, and a
    # 아니 said afterwards, in an utterance of its own, is an answer
    run = _Run(["[unk] [unk] 아니야", "아니"], FakeSosDetector({12: 0.97}), answering=True)
    run.feed(bytes(32000) + _tone(3.0) + bytes(48000))
    assert run.kinds() == [Kind.SOS]
    _utterance(run)
    assert run.kinds() == [Kind.SOS, Kind.NO]


def test_a_hit_still_held_when_the_stream_ends_is_passed_on() -> None:
    run = _Run(["[unk]"], FakeSosDetector({12: 0.97}))
    run.feed(bytes(32000) + _tone(0.5))  # the hit at 1.3 s, the gate still open, 0.2 s held
    assert run.heard == []
    run.pipeline.end_of_stream()  # stop() calls this: an SOS is not lost on the way out
    assert run.kinds() == [Kind.SOS]

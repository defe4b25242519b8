"""The keyword-classifier verifier: how the voice path asks it (FakeSosVerifier stands in for the
trained head and the ONNX models), and, where openwakeword and onnxruntime are installed, the
speech embedding and the verifier on real audio."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from edge_agent.audio import PushedSource
from edge_agent.fakes import FakeRecognizer, FakeSosVerifier
from edge_agent.kws import CONTEXT, HeadError, KeywordHead, stack
from edge_agent.runtime import make_verifier
from edge_agent.spotter import Detection, Kind, Spotter
from edge_agent.vad import VoiceActivityGate
from edge_agent.voice import VoicePipeline
from firmware_config.device import AudioConfig, VoiceConfig
from firmware_config.phrases import load_phrase_set

KO = load_phrase_set("ko")


def _say(heard_as: str, verifier: FakeSosVerifier | None) -> tuple[VoicePipeline, list[Detection]]:
    """One tone utterance through the energy gate, which FakeRecognizer hears as ``heard_as``."""
    t = np.arange(16000) / 16000
    said = (6000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()
    audio = bytes(32000) + said + bytes(48000)
    heard: list[Detection] = []
    pipeline = VoicePipeline(
        PushedSource(),
        VoiceActivityGate.from_config(AudioConfig(vad="energy")),
        FakeRecognizer([heard_as]),
        Spotter(KO),
        on_detection=heard.append,
        verifier=verifier,
    )
    for i in range(0, len(audio), 3200):
        pipeline.process(audio[i : i + 3200])
    pipeline.end_of_stream()
    return pipeline, heard


def test_an_sos_the_verifier_does_not_confirm_is_dropped() -> None:
    verifier = FakeSosVerifier(confirm=False)
    pipeline, heard = _say("살려 주세요", verifier)
    assert heard == []
    assert pipeline.sos_unconfirmed == 1
    assert verifier.heard_bytes == 32000 + 32000 + 48000  # every block, voiced or not


def test_an_sos_the_verifier_confirms_is_taken() -> None:
    pipeline, heard = _say("살려 주세요", FakeSosVerifier(confirm=True))
    assert [d.kind for d in heard] == [Kind.SOS]
    assert pipeline.sos_unconfirmed == 0


def test_the_verifier_is_not_asked_about_a_cancel() -> None:
    verifier = FakeSosVerifier(confirm=False)
    _, heard = _say("취소 해 줘", verifier)
    assert [d.kind for d in heard] == [Kind.CANCEL]
    assert verifier.asked == 0


def test_a_failing_verifier_leaves_the_recognisers_sos_standing() -> None:
    pipeline, heard = _say("살려 주세요", FakeSosVerifier(True, fails=RuntimeError("onnx")))
    assert [d.kind for d in heard] == [Kind.SOS]
    assert pipeline.errors == 1


def test_a_verifier_failing_on_every_block_is_counted_each_time_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier = FakeSosVerifier(True, fails=RuntimeError("onnx"), hearing_fails=True)
    with caplog.at_level(logging.ERROR, logger="anbu.agent.voice"):
        pipeline, heard = _say("살려 주세요", verifier)
    assert [d.kind for d in heard] == [Kind.SOS]  # the SOS still stands
    blocks = 35  # _say pushes 3.5 s of audio in 0.1 s blocks
    assert pipeline.errors == blocks + 1  # every block, and the confirm at the SOS
    logged = [r.getMessage() for r in caplog.records]
    assert sum("failed on a block" in m for m in logged) == 1


def test_the_verifier_is_off_by_default() -> None:
    assert VoiceConfig().kws_verifier is None
    assert make_verifier(VoiceConfig()) is None


def test_a_head_survives_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    d = CONTEXT * 96
    f32 = np.float32
    head = KeywordHead(
        rng.normal(size=d).astype(f32),
        np.ones(d, f32),
        rng.normal(size=(d, 4)).astype(f32),
        np.zeros(4, f32),
        rng.normal(size=4).astype(f32),
        0.25,
        0.7,
    )
    head.save(tmp_path / "head.npz")
    again = KeywordHead.load(tmp_path / "head.npz")
    x = stack(rng.normal(size=(20, 96)).astype(f32))
    assert x.shape == (20, d)
    assert np.allclose(head.score(x), again.score(x))
    assert again.threshold == pytest.approx(0.7)


def test_a_head_that_does_not_match_its_checksum_or_has_none_is_refused(tmp_path: Path) -> None:
    d = CONTEXT * 96
    z = np.zeros(d, np.float32)
    head = KeywordHead(z, np.ones(d, np.float32), np.zeros((d, 1), np.float32),
                       np.zeros(1, np.float32), np.zeros(1, np.float32), 0.0, 0.5)  # fmt: skip
    path = tmp_path / "head.npz"
    head.save(path)
    assert (tmp_path / "head.npz.sha256").read_text().endswith("  head.npz\n")
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(HeadError, match="does not match"):
        KeywordHead.load(path)
    (tmp_path / "head.npz.sha256").unlink()
    with pytest.raises(HeadError, match="no checksum"):
        KeywordHead.load(path)
    with pytest.raises(HeadError, match="no keyword-classifier head"):
        KeywordHead.load(tmp_path / "missing.npz")


_MODELS = importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("openwakeword")


@pytest.mark.skipif(not _MODELS, reason="needs onnxruntime and openwakeword (the speech bench's)")
def test_the_embedding_gives_one_vector_per_80_ms_batch_or_streamed(tmp_path: Path) -> None:
    from edge_agent.kws import EmbeddingVerifier
    from edge_agent.speech_embedding import EmbeddingStream, SpeechEmbedding

    emb = SpeechEmbedding.from_openwakeword()
    audio = np.random.default_rng(1).normal(0, 2000, 16000 * 3).astype("<i2").tobytes()
    batch = emb.embed(audio)
    assert batch.shape == ((300 - 3 - 76) // 8 + 1, 96)
    stream = EmbeddingStream(emb)
    streamed = np.concatenate([stream.accept(audio[i : i + 3200]) for i in range(0, 96000, 3200)])
    assert streamed.shape[1] == 96
    assert abs(len(streamed) - len(batch)) <= 1

    d = CONTEXT * 96
    z = np.zeros(d, np.float32)
    always = KeywordHead(z, np.ones(d, np.float32), np.zeros((d, 0), np.float32),
                         np.zeros(0, np.float32), z, 5.0, 0.5)  # fmt: skip
    verifier = EmbeddingVerifier(emb, always)
    assert not verifier.confirms()  # nothing heard yet
    for i in range(0, len(audio), 3200):
        verifier.hear(audio[i : i + 3200])
    assert verifier.confirms()

    # A head with weights: the live verifier scores exactly what the classifier scores on the
    # stream's embeddings, each with the 15 before it (stack), over its last 3 s.
    rng = np.random.default_rng(2)
    f32 = np.float32
    head = KeywordHead(z, np.ones(d, f32), np.zeros((d, 0), f32), np.zeros(0, f32),
                       rng.normal(0, 0.002, d).astype(f32), 0.0, 0.5)  # fmt: skip
    live = EmbeddingVerifier(emb, head)
    for i in range(0, len(audio), 3200):
        live.hear(audio[i : i + 3200])
    expected = head.score(stack(streamed))[-len(live._scores) :]
    assert np.allclose(list(live._scores), expected, atol=1e-5)


@pytest.mark.skipif(not _MODELS, reason="needs onnxruntime and openwakeword (the speech bench's)")
def test_the_stream_does_not_depend_on_its_blocks_and_the_bench_embeds_as_it_does() -> None:
    from edge_agent.speech_embedding import (
        FIRST_END_S,
        STEP_S,
        EmbeddingStream,
        SpeechEmbedding,
        stream_embed,
    )

    emb = SpeechEmbedding.from_openwakeword()
    rng = np.random.default_rng(4)
    # loud noise after digital silence: where the mel model's clamp depends on what it is given
    audio = bytes(2 * 8000) + rng.normal(0, 3000, 16000 * 2).astype("<i2").tobytes()
    by_block = {}
    for block in (3200, 1000, 1280, len(audio)):
        stream = EmbeddingStream(emb)
        parts = [stream.accept(audio[i : i + block]) for i in range(0, len(audio), block)]
        by_block[block] = np.concatenate(parts)
    for got in by_block.values():
        assert np.array_equal(got, by_block[3200])
    whole = stream_embed(emb, audio)
    assert np.array_equal(whole, by_block[3200])
    # 2.5 s of audio: embeddings ending at 0.8 s, 0.88 s, ... up to 2.48 s
    assert len(whole) == int((2.5 - FIRST_END_S) / STEP_S + 1e-9) + 1
    # the batch embedding of the same audio differs (the reason heads train on the stream's)
    assert not np.allclose(emb.embed(audio)[: len(whole)], whole, atol=1.0)


@pytest.mark.skipif(not _MODELS, reason="needs onnxruntime and openwakeword (the speech bench's)")
def test_an_embedding_model_other_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    from edge_agent.speech_embedding import EmbeddingModelError, openwakeword_models_dir, verified

    real = openwakeword_models_dir() / "embedding_model.onnx"
    assert verified(real) == real
    copy = tmp_path / "embedding_model.onnx"
    copy.write_bytes(real.read_bytes()[:-1] + b"\0")
    with pytest.raises(EmbeddingModelError, match="sha256"):
        verified(copy)
    with pytest.raises(EmbeddingModelError, match="missing"):
        verified(tmp_path / "melspectrogram.onnx")
    with pytest.raises(EmbeddingModelError, match="knows"):
        verified(tmp_path / "other.onnx")

"""A regression floor for voice SOS on the real model (a small, fast subset of bench/speech.py).

espeak-ng's Korean is hard for this model (see docs/speech.md): the floors below are what the
agent's voice path reached here when they were set, less a margin — not the goals. They catch a
change that makes SOS deaf or makes everyday speech cry wolf; the benchmark tells how good it is.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.speech import Item, VoicePath
from bench.speech_corpus import CANCEL_TEXTS, NEAR_MISS, SOS_TEXTS, Synth, pad
from firmware_config.device import AudioConfig, VoiceConfig
from tests.edge_agent.conftest import RealModel

pytestmark = pytest.mark.vosk_model

VOICE = ("ko", 150, 50)
EVERYDAY = ("밥 먹었어요", "오늘 날씨가 참 좋네", "텔레비전 좀 꺼 줄래", "다음 소식입니다")


@pytest.fixture(scope="module")
def path(real_model: RealModel) -> VoicePath:
    if real_model.language != "ko":
        pytest.skip("the floor set is Korean speech")
    return VoicePath(real_model.recognizer(), real_model.phrases, AudioConfig(), VoiceConfig())


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(tmp_path_factory.mktemp("speech"))


def item(synth: Synth, text: str, cls: str) -> Item:
    speech = synth.speak(text, *VOICE)
    return Item(cls, "clean", pad(speech), 1.0 + len(speech) / 32000, text)


def _words(path: VoicePath, sample: Item) -> list[tuple[str, ...]]:
    out = path.run_one(sample)
    return [tuple(f"{w.text}:{w.confidence:.4f}" for w in t.words) for t in out.transcripts]


def test_the_same_audio_is_heard_the_same_every_time(real_model: RealModel, synth: Synth) -> None:
    # Kaldi dithers every frame from C's rand(); the recogniser reseeds it per segment. Unseeded,
    # these words and confidences differed between runs of the same WAV (docs/speech.md).
    samples = [item(synth, t, "sos") for t in SOS_TEXTS[:3]]
    runs = []
    for _ in range(3):
        path = VoicePath(real_model.recognizer(), real_model.phrases, AudioConfig(), VoiceConfig())
        runs.append([_words(path, s) for s in samples])
    assert runs[0] == runs[1] == runs[2]
    assert any(runs[0]), "nothing was heard at all"


def test_cancel_phrases_never_raise_an_sos(path: VoicePath, synth: Synth) -> None:
    for text in CANCEL_TEXTS:
        assert not path.run_one(item(synth, text, "cancel")).sos, text


def test_sos_phrases_are_heard(path: VoicePath, synth: Synth) -> None:
    heard = [t for t in SOS_TEXTS if path.run_one(item(synth, t, "sos")).sos]
    # A floor, not the goal (docs/speech.md). With Kaldi's dither seeded the path is deterministic:
    # it hears 도와주세요 and 도와줘 of these 7, every run (it used to be 2 or 3 from run to run,
    # from the unseeded dither) — far below what residents need.
    assert len(heard) >= 2, f"only {heard} of {SOS_TEXTS}"


def test_everyday_speech_and_near_misses_rarely_cry_wolf(path: VoicePath, synth: Synth) -> None:
    texts = EVERYDAY + NEAR_MISS[:16]
    false = [t for t in texts if path.run_one(item(synth, t, "none")).sos]
    # 1 of these 20 with the agent's rule (도와줄까, heard as "도와줘 [unk]"); 2 without the check
    # of the voice after the phrase (도와줄게 too)
    assert len(false) <= 2, false


def not_speech() -> list[Item]:
    """A 440 Hz beep (once heard as 도와줘) and white noise."""
    t = np.arange(16000 * 2) / 16000
    beep = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    noise = np.random.default_rng(1).normal(0, 3000, 16000 * 3).astype("<i2").tobytes()
    clips = ((beep, "beep"), (noise, "noise"))
    return [Item("none", "clean", pad(audio), 3.0, name) for audio, name in clips]


def test_a_beep_and_noise_are_not_an_sos(path: VoicePath) -> None:
    for sample in not_speech():
        assert not path.run_one(sample).sos, sample.label


def test_decision_comes_within_a_second_of_the_end_of_speech(path: VoicePath, synth: Synth) -> None:
    sample = item(synth, "도와줘", "sos")
    out = path.run_one(sample)
    at = out.first_sos_at()
    assert at is not None and at - sample.speech_end_s <= 1.0


def test_the_cancel_once_heard_as_an_sos_is_not_one(path: VoicePath, synth: Synth) -> None:
    """The full bench's one cancel → SOS (docs/speech.md): 취소해 줘, voice ko+f4, pink noise at
    20 dB, made here from its recipe. The recogniser hears no cancel in it ("구 [unk] 살려
    주세요"), so the cancel veto cannot apply; the agent's SOS rule must refuse it — while the
    previous rule, replayed on the same transcripts, still sends it (the clip is still a trap)."""
    from bench.speech import replay
    from bench.speech_corpus import mix
    from edge_agent.spotter import SosRule

    speech = synth.speak("취소해 줘", "ko+f4", 120, 70)
    clip = Item("cancel", "20dB", mix(pad(speech), "20dB", "pink", synth, 44), 0.0, "취소해 줘")
    out = path.run_one(clip)
    assert not out.sos, [t.text for t in out.transcripts]
    before = replay(path.phrases, path.voice_config, SosRule(), out, len(clip.audio) / 32000)
    assert any(d.action.value == "send" for d, _ in before), [t.text for t in out.transcripts]


def test_the_recogniser_hears_whether_the_speaker_went_on(path: VoicePath, synth: Synth) -> None:
    """도와줄게 (voice ko) comes out of the recogniser as the phrase 도와줘 alone, its last syllable
    put down as silence; the loudness the recogniser measures after the word (on its own word
    clock, which runs on across resets and results) must show the syllable — and show none after
    a real 도와줘. If 도와줄게 stops being heard as 도와줘, this fails rather than passing idly."""
    went_on = path.run_one(item(synth, "도와줄게", "none")).transcripts
    assert [t.text for t in went_on] == ["도와줘"]
    stopped = path.run_one(item(synth, "도와줘", "sos")).transcripts
    assert [t.text for t in stopped] == ["도와줘"]
    after = [t.loudness.voice_after() if t.loudness else None for t in (*went_on, *stopped)]
    assert after[0] is not None and after[0] > 0.7, after
    assert after[1] is not None and after[1] < 0.3, after

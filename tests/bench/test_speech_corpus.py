"""The speech bench's synthesizer cache: real espeak-ng and sox (``.ci/run`` installs both)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from bench.speech_corpus import Synth


def test_a_render_is_cached_once_and_leaves_only_the_wav(tmp_path: Path) -> None:
    synth = Synth(tmp_path)
    first = synth.speak("살려줘")
    assert len(first) > 16000  # more than half a second of 16 kHz 16-bit speech
    assert [p.suffix for p in tmp_path.iterdir()] == [".wav"]
    (wav,) = tmp_path.iterdir()
    stamp = wav.stat().st_mtime_ns
    assert synth.speak("살려줘") == first and wav.stat().st_mtime_ns == stamp  # not rendered again


def test_a_failed_render_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        Synth(tmp_path).speak("살려줘", voice="zz9")  # espeak-ng has no such voice
    assert list(tmp_path.iterdir()) == []


def test_two_renders_of_the_same_utterance_at_once_give_the_same_audio(tmp_path: Path) -> None:
    synths = [Synth(tmp_path), Synth(tmp_path)]
    out: list[bytes] = []
    threads = [
        threading.Thread(target=lambda s=s: out.append(s.speak("도와줘", "ko+f3"))) for s in synths
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(out) == 2 and out[0] == out[1]
    assert len(list(tmp_path.iterdir())) == 1  # one file, no scratch left


def test_noise_is_made_once_per_kind(tmp_path: Path) -> None:
    noise = Synth(tmp_path).noise("pink", 0.5, seed=3)
    assert len(noise) == 8000 and abs(float((noise**2).mean()) - 1) < 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["noise-pink-60s.wav"]

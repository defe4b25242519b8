"""The voice pipeline end to end: WAV or the real sounddevice stream → gate → FakeRecognizer →
the real spotter. (FakeRecognizer stands in for Vosk: no model can be downloaded here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_agent.audio import PushedSource, WavFileSource
from edge_agent.fakes import FakeRecognizer
from edge_agent.spotter import Detection, Kind, Spotter
from edge_agent.vad import VoiceActivityGate
from edge_agent.voice import VoicePipeline
from firmware_config.device import AudioConfig
from firmware_config.phrases import load_phrase_set
from tests.support.virtual_mic import VirtualMic, unsupported_reason

REPO = Path(__file__).resolve().parents[2]
KO = load_phrase_set("ko")


def quiet(seconds: float) -> bytes:
    return bytes(int(16000 * seconds) * 2)


def speech_bounds(speech: bytes) -> bytes:
    """The audible part of ``speech`` (first to last sample above a whisper)."""
    x = np.frombuffer(speech, "<i2")
    loud = np.nonzero(np.abs(x) > 200)[0]
    return x[loud[0] : loud[-1] + 1].tobytes()


def run_file(
    path: Path, recognizer: FakeRecognizer, clock: Callable[[], float] = lambda: 0.0
) -> tuple[VoicePipeline, list[Detection]]:
    heard: list[Detection] = []
    source = WavFileSource(path, realtime=False)
    pipeline = VoicePipeline(
        source,
        VoiceActivityGate.from_config(AudioConfig()),
        recognizer,
        Spotter(KO),
        on_detection=heard.append,
        clock=clock,
    )
    pipeline.start()
    assert source.finished.wait(10)
    pipeline.stop()
    return pipeline, heard


def test_spoken_sos_reaches_on_detection(sos_speech: bytes, write_wav: Callable[..., Path]) -> None:
    audio = quiet(1.5) + sos_speech + quiet(1.5)
    recognizer = FakeRecognizer(["살려 주세요"])
    pipeline, heard = run_file(write_wav(audio), recognizer)

    assert [d.kind for d in heard] == [Kind.SOS]
    assert (pipeline.utterances, pipeline.interactions, pipeline.wake_word_count) == (1, 1, 0)
    assert pipeline.speech_s > 0.3 and pipeline.audio_overruns == 0 and not pipeline.running
    # the recogniser heard the whole utterance, intact, and not the silence around it
    (segment,) = recognizer.segments
    assert speech_bounds(sos_speech) in segment and segment in audio
    assert len(segment) <= len(sos_speech) + 2 * 16000 * 2


def test_the_recogniser_hears_nothing_in_a_silent_home(write_wav: Callable[..., Path]) -> None:
    noise = np.random.default_rng(0).normal(0, 20, 16000 * 5).astype("<i2").tobytes()
    recognizer = FakeRecognizer(["살려 주세요"])
    pipeline, heard = run_file(write_wav(noise), recognizer)
    assert recognizer.fed_bytes == 0 and recognizer.segments == []
    assert heard == [] and pipeline.utterances == 0 and pipeline.speech_s == 0


def test_wake_word_then_answer_is_a_check_in(
    sos_speech: bytes, write_wav: Callable[..., Path]
) -> None:
    """Two utterances; the injected clock decides that the answer came within the wake window."""
    audio = quiet(1) + sos_speech + quiet(1.5) + sos_speech + quiet(1.5)
    times = iter([100.0, 103.0])
    recognizer = FakeRecognizer(["안부야", "네"])
    pipeline, heard = run_file(write_wav(audio), recognizer, clock=lambda: next(times))
    assert [d.kind for d in heard] == [Kind.WAKE, Kind.CHECKIN]
    assert (pipeline.utterances, pipeline.interactions, pipeline.wake_word_count) == (2, 2, 1)


def test_a_failing_recogniser_or_callback_does_not_stop_the_voice_path(
    sos_speech: bytes, write_wav: Callable[..., Path]
) -> None:
    audio = quiet(1) + (sos_speech + quiet(1.5)) * 3
    recognizer = FakeRecognizer([RuntimeError("decoder fell over"), "도와줘", "살려줘"])
    heard: list[Detection] = []

    def on_detection(detection: Detection) -> None:
        heard.append(detection)
        if len(heard) == 1:
            raise RuntimeError("the outbox is full")

    pipeline = VoicePipeline(
        WavFileSource(write_wav(audio)),
        VoiceActivityGate(),
        recognizer,
        Spotter(KO),
        on_detection=on_detection,
    )
    for i in range(0, len(audio), 3200):  # synchronously, without the thread
        pipeline.process(audio[i : i + 3200])
    assert [d.phrase for d in heard] == ["도와줘", "살려 줘"]
    assert pipeline.errors == 2 and recognizer.resets >= 1


def test_stop_closes_an_utterance_cut_off_by_the_end(
    sos_speech: bytes, write_wav: Callable[..., Path]
) -> None:
    recognizer = FakeRecognizer(["살려줘"])
    _, heard = run_file(write_wav(quiet(1) + sos_speech), recognizer)
    assert [d.kind for d in heard] == [Kind.SOS]


# --- through the real sounddevice stream ----------------------------------------------------------

PIPELINE = textwrap.dedent(
    """
    import json, sys, time
    from edge_agent.audio import SoundDeviceSource
    from edge_agent.fakes import FakeRecognizer
    from edge_agent.spotter import Spotter
    from edge_agent.vad import VoiceActivityGate
    from edge_agent.voice import VoicePipeline
    from firmware_config.device import AudioConfig
    from firmware_config.phrases import load_phrase_set

    config = AudioConfig(device="testmic")
    recognizer = FakeRecognizer(["살려 주세요"])
    heard = []
    pipeline = VoicePipeline(
        SoundDeviceSource(config), VoiceActivityGate.from_config(config), recognizer,
        Spotter(load_phrase_set("ko")), on_detection=heard.append,
    )
    pipeline.start()
    deadline = time.monotonic() + 20
    while not recognizer.segments and time.monotonic() < deadline:
        time.sleep(0.05)
    pipeline.stop()
    json.dump({"heard": [d.kind.value for d in heard], "overruns": pipeline.audio_overruns,
               "segments": [s.hex() for s in recognizer.segments]}, sys.stdout)
    """
)


@pytest.mark.skipif(unsupported_reason() is not None, reason=str(unsupported_reason()))
def test_real_stream_delivers_the_utterance_intact_to_the_recogniser(
    sos_speech: bytes, tmp_path: Path
) -> None:
    mic = VirtualMic(tmp_path / "mic")
    played = mic.play(quiet(1) + sos_speech + quiet(1.5))
    with mic:
        env = mic.env()
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        done = subprocess.run(
            [sys.executable, "-c", PIPELINE], env=env, capture_output=True, timeout=60, check=False
        )
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["heard"] == ["sos"] and result["overruns"] == 0
    (segment,) = (bytes.fromhex(s) for s in result["segments"])
    assert speech_bounds(sos_speech) in segment  # every sample of the utterance, in order
    assert segment in quiet(1) + played + quiet(2)  # and nothing that was not played


def test_the_gain_control_sits_between_gate_and_recogniser() -> None:
    """Quiet speech reaches the recogniser louder."""
    from edge_agent.agc import GainControl
    from edge_agent.vad import level_dbfs

    t = np.arange(16000) / 16000
    said = (600 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()  # about -37 dBFS
    heard: dict[str, FakeRecognizer] = {}
    for name, gain in (("as captured", None), ("with gain", GainControl(max_gain_db=18.0))):
        rec = FakeRecognizer(["[unk]"])
        pipeline = VoicePipeline(
            PushedSource(),
            VoiceActivityGate.from_config(AudioConfig(vad="energy")),
            rec,
            Spotter(KO),
            on_detection=lambda d: None,
            gain=gain,
        )
        audio = quiet(1.0) + said + quiet(1.5)
        for i in range(0, len(audio), 3200):
            pipeline.process(audio[i : i + 3200])
        heard[name] = rec
    plain, louder = heard["as captured"].segments[0], heard["with gain"].segments[0]
    assert len(plain) == len(louder)
    assert level_dbfs(louder) - level_dbfs(plain) > 12.0

"""The agent's check-in: prompt through the announcer, listen, one durable answer.

Real outbox (SQLite) and the real LogAnnouncer; the wall clock is a number the test moves.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.announce import LogAnnouncer
from edge_agent.audio import WavFileSource, read_wav_16k
from edge_agent.checkin import AnswerMatcher, CheckinResponder
from edge_agent.fakes import FakeRecognizer
from edge_agent.outbox import Outbox
from edge_agent.runtime import build_agent
from edge_agent.spotter import Spotter
from edge_agent.vad import VoiceActivityGate
from edge_agent.voice import VoicePipeline
from firmware_config.checkin import (
    CheckinRequest,
    checkin_answer_topic,
    checkin_command_topic,
    decode_checkin_answer,
)
from firmware_config.device import DeviceConfig
from firmware_config.phrases import load_phrase_set
from firmware_config.topics import DeviceAddress
from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.mqtt_client import TestClient

ADDR = DeviceAddress("seodaemun", "h0001", "d0001")


class Wall:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("language", "said", "phrase"),
    [
        ("ko", "네", "네"),
        ("ko", "응 괜찮아요", "괜찮아"),
        ("ko", "괜찮아", "괜찮아"),
        ("en", "Yes.", "yes"),
        ("en", "I'm fine thanks", "i'm fine"),
        ("en", "i am fine", "i am fine"),
    ],
)
def test_answers_in_both_languages(language: str, said: str, phrase: str) -> None:
    assert AnswerMatcher(load_phrase_set(language)).match(said) == phrase


@pytest.mark.parametrize(("language", "said"), [("ko", "살려줘"), ("ko", "[unk]"), ("en", "help")])
def test_other_speech_is_not_an_answer(language: str, said: str) -> None:
    assert AnswerMatcher(load_phrase_set(language)).match(said) is None


def responder(tmp_path: Path, wall: Wall) -> tuple[CheckinResponder, LogAnnouncer, Outbox]:
    announcer = LogAnnouncer()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    return (
        CheckinResponder(ADDR, load_phrase_set("ko"), announcer, outbox, wall=wall),
        announcer,
        outbox,
    )


def request(expires_ts: float = 2_000.0) -> CheckinRequest:
    return CheckinRequest(
        device_ts=990, seq=1, checkin_id="a" * 32, listen_s=30, repeats=2, expires_ts=expires_ts
    )


def answers(outbox: Outbox) -> list[tuple[bool, str | None, bool]]:
    out = []
    for item in outbox.pending(10):
        assert item.topic == checkin_answer_topic(ADDR)
        answer = decode_checkin_answer(item.payload)
        out.append((answer.answered, answer.phrase, answer.expired))
    return out


def test_prompt_then_an_answer_is_queued_once(tmp_path: Path) -> None:
    wall = Wall()
    checkin, announcer, outbox = responder(tmp_path, wall)
    checkin.on_request(request())
    assert len(announcer.said) == 1 and "네" in announcer.said[0]
    checkin.on_request(request())  # QoS 1 re-delivery: not asked twice
    assert len(announcer.said) == 1
    wall.now += 4
    assert checkin.hear("음 네") is True
    assert checkin.hear("네") is False  # one answer per check-in
    assert answers(outbox) == [(True, "네", False)]
    outbox.close()


def test_prompt_is_repeated_then_no_answer_is_reported(tmp_path: Path) -> None:
    wall = Wall()
    checkin, announcer, outbox = responder(tmp_path, wall)
    checkin.on_request(request())
    wall.now += 29
    checkin.tick()
    assert len(announcer.said) == 1
    wall.now += 1
    checkin.tick()
    assert len(announcer.said) == 2 and checkin.listening
    wall.now += 30
    checkin.tick()
    assert answers(outbox) == [(False, None, False)]
    assert not checkin.listening
    outbox.close()


def test_a_request_delivered_after_it_expired_is_never_played(tmp_path: Path) -> None:
    wall = Wall()
    checkin, announcer, outbox = responder(tmp_path, wall)
    checkin.on_request(request(expires_ts=999.0))
    assert announcer.said == []
    assert answers(outbox) == [(False, None, True)]
    outbox.close()


def test_check_in_end_to_end_through_the_broker_and_the_voice_pipeline(
    tmp_path: Path, broker: Broker, espeak_wav: Callable[[str, str], Path]
) -> None:
    """Real broker, link, outbox and voice pipeline; a FakeRecognizer stands in for Vosk (no
    model can be installed here) and "hears" 네 in the one utterance of the WAV file."""
    cfg = DeviceConfig.model_validate(
        {
            "district": "seodaemun",
            "household_id": "h-1",
            "device_id": "dev-1",
            "outbox_path": str(tmp_path / "outbox.sqlite3"),
            "broker": {
                "url": broker.url,
                "username": "dev-1",
                "password": broker.password("dev-1"),
            },
            "audio": {"enabled": False},
        }
    )
    announcer = LogAnnouncer()
    agent = build_agent(cfg, gpio=False, voice=False, announcer=announcer)
    speech = read_wav_16k(espeak_wav("네", "ko"))
    wav = tmp_path / "answer.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(16000) + speech + bytes(32000))
    pipeline = VoicePipeline(
        WavFileSource(wav, realtime=False),
        VoiceActivityGate(),
        FakeRecognizer(["네"]),
        Spotter(agent.phrases),
        on_detection=agent.on_detection,
        on_transcript=agent.on_transcript,
    )
    with TestClient(broker, COLLECTOR_USER).connect() as collector:
        collector.subscribe(checkin_answer_topic(cfg.address))
        agent.start()
        try:
            deadline = time.monotonic() + 5
            while not (agent.link is not None and agent.link.is_connected):
                assert time.monotonic() < deadline, "agent did not connect"
                time.sleep(0.05)
            time.sleep(0.2)  # its SUBACK
            now = time.time()
            request = CheckinRequest(
                device_ts=now, seq=1, checkin_id="b" * 32, listen_s=30, expires_ts=now + 300
            )
            collector.publish(checkin_command_topic(cfg.address), request.to_payload())
            deadline = time.monotonic() + 5
            while not announcer.said:
                assert time.monotonic() < deadline, "the prompt was never played"
                time.sleep(0.05)
            pipeline.start()  # the resident answers after the prompt
            message = collector.next_message(timeout_s=10)
        finally:
            pipeline.stop()
            agent.stop()
    answer = decode_checkin_answer(bytes(message.payload))
    assert (answer.checkin_id, answer.answered, answer.phrase) == ("b" * 32, True, "네")

"""The agent's wiring, in process: outbox, tracker, feedback, heartbeats; and what it publishes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.agent import Agent, Clocks
from edge_agent.announce import LogAnnouncer
from edge_agent.audio import WavFileSource, read_wav_16k
from edge_agent.fakes import FakeRecognizer
from edge_agent.link import Link
from edge_agent.outbox import Outbox
from edge_agent.sos import Feedback
from edge_agent.spotter import Detection, Kind, Spotter
from edge_agent.vad import VoiceActivityGate
from edge_agent.voice import VoicePipeline
from firmware_config.device import DeviceConfig
from firmware_config.messages import CancelAck, SosAck, decode_device_message
from firmware_config.phrases import load_phrase_set
from firmware_config.topics import parse
from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.mqtt_client import TestClient


class RecordingLed:
    def __init__(self) -> None:
        self.shown: list[Feedback] = []

    def show(self, feedback: Feedback) -> None:
        self.shown.append(feedback)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def config(tmp_path: Path, url: str = "mqtt://127.0.0.1:1883", password: str = "x") -> DeviceConfig:
    return DeviceConfig.model_validate(
        {
            "district": "seodaemun",
            "household_id": "h-1",
            "device_id": "dev-1",
            "heartbeat_interval_s": 60,
            "outbox_path": str(tmp_path / "outbox.sqlite3"),
            "broker": {"url": url, "username": "dev-1", "password": password},
            "audio": {"enabled": False},
        }
    )


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    cfg = config(tmp_path)
    clock = Clock()
    a = Agent(
        cfg,
        load_phrase_set("ko"),
        Outbox(cfg.outbox_path),
        LogAnnouncer(),
        version="test",
        clocks=Clocks(monotonic=clock, wall=lambda: 1.7e9),
    )
    a.led = RecordingLed()
    return a


def payloads(agent: Agent) -> list[dict[str, object]]:
    return [json.loads(i.payload) for i in agent.outbox.pending(100)]


def test_sos_is_on_disk_and_held_before_the_resident_is_told(agent: Agent) -> None:
    sos_id = agent.raise_sos("button")
    [stored] = payloads(agent)
    assert stored["kind"] == "sos" and stored["message_id"] == sos_id
    assert [key for key, _, _ in agent.outbox.held()] == [sos_id]
    assert agent.led.shown == [Feedback.SENDING]  # type: ignore[union-attr]
    assert agent.announcer.said == ["도움 요청을 보냈어요."]  # type: ignore[attr-defined]


def test_broker_ack_then_collector_ack_drive_the_feedback(agent: Agent) -> None:
    sos_id = agent.raise_sos("voice", "살려줘")
    agent.check_delivery()
    assert agent.tracker.feedback is Feedback.SENDING
    agent.outbox.ack(agent.outbox.pending(1)[0].id)  # what the link does on PUBACK
    agent.check_delivery()
    assert agent.tracker.feedback is Feedback.SENT
    agent.on_command(SosAck(device_ts=1, seq=0, sos_id=sos_id, dispatch_id=3))
    assert agent.tracker.feedback is Feedback.CONFIRMED
    assert agent.outbox.held() == []
    assert agent.led.shown == [Feedback.SENDING, Feedback.SENT, Feedback.CONFIRMED]  # type: ignore[union-attr]
    assert agent.announcer.said[-1].startswith("생활지원사님께")  # type: ignore[attr-defined]


def test_unconfirmed_sos_is_sent_again_with_the_same_id(agent: Agent) -> None:
    sos_id = agent.raise_sos("button")
    agent.outbox.ack(agent.outbox.pending(1)[0].id)
    agent.resend_unconfirmed()
    assert [p["message_id"] for p in payloads(agent)] == [sos_id]
    agent.on_command(SosAck(device_ts=1, seq=0, sos_id=sos_id, dispatch_id=3))
    agent.outbox.ack(agent.outbox.pending(1)[0].id)
    agent.resend_unconfirmed()
    assert payloads(agent) == []


def test_cancel_within_the_window_only(agent: Agent) -> None:
    clock = agent.clocks.monotonic
    sos_id = agent.raise_sos("button")
    clock.t += 10  # type: ignore[attr-defined]
    assert agent.request_cancel("voice", "괜찮아") == sos_id
    cancel = payloads(agent)[-1]
    assert cancel["kind"] == "sos_cancel" and cancel["sos_id"] == sos_id
    assert agent.request_cancel("button") is None  # only once
    agent.on_command(CancelAck(device_ts=1, seq=0, sos_id=sos_id, dispatch_id=1))
    assert [k for k, _, _ in agent.outbox.held()] == [sos_id]  # the SOS itself still awaits its ack
    second = agent.raise_sos("button")
    clock.t += 31  # type: ignore[attr-defined]
    assert agent.request_cancel("button") is None
    assert agent.tracker.latest_id == second


def test_heartbeat_counts_motion_and_presses_and_reports_depth(agent: Agent) -> None:
    agent.on_motion()
    agent.on_motion()  # a second episode within the interval: counted, no second event
    agent.raise_sos("button")
    agent.clocks.monotonic.t += 60  # type: ignore[attr-defined]
    agent.send_heartbeat()
    kinds = [p["kind"] for p in payloads(agent)]
    assert kinds == ["motion", "sos", "heartbeat"]
    hb = payloads(agent)[-1]
    assert (hb["motion_count"], hb["button_presses"], hb["outbox_depth"]) == (2, 1, 2)
    seqs = [p["seq"] for p in payloads(agent)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_nothing_but_contract_messages_and_matched_phrases_leave_the_home(
    tmp_path: Path, broker: Broker, espeak_wav: Callable[[str, str], Path]
) -> None:
    """Speech flows through the real voice pipeline (a FakeRecognizer stands in for Vosk, which
    has no model here) while a collector-side client records everything the agent publishes."""
    secret = "우리 딸 전화번호는 공일공 일이삼사"
    cfg = config(tmp_path, broker.url, broker.password("dev-1"))
    phrases = load_phrase_set("ko")
    outbox = Outbox(cfg.outbox_path)
    agent = Agent(cfg, phrases, outbox, LogAnnouncer(), version="test")
    agent.link = Link(
        cfg.broker,
        cfg.address,
        outbox,
        client_id="dev-1",
        agent_version="test",
        on_command=agent.on_command,
    )
    speech = read_wav_16k(espeak_wav("살려주세요 우리 딸", "ko"))
    silence = bytes(16000 * 2)
    wav = tmp_path / "talk.wav"
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(silence + speech + silence + speech + silence + speech + silence)
    recognizer = FakeRecognizer([secret, "살려 주세요", "[unk] 날씨 [unk]"])
    agent.voice = VoicePipeline(
        WavFileSource(wav, realtime=False),
        VoiceActivityGate(),
        recognizer,
        Spotter(phrases),
        on_detection=agent.on_detection,
    )
    with TestClient(broker, COLLECTOR_USER).connect() as sniffer:
        sniffer.subscribe("anbu/v1/#")
        agent.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(recognizer.segments) < 3:
            time.sleep(0.05)
        agent.send_heartbeat()
        time.sleep(0.5)
        agent.stop()
        seen = sniffer.messages_within(0.5)
    assert len(recognizer.segments) == 3, "the pipeline should have heard three utterances"
    kinds = []
    for message in seen:
        parsed = parse(message.topic)
        assert parsed.channel is not None
        decoded = decode_device_message(parsed.channel, message.payload)  # raises if not contract
        kinds.append(decoded.kind)
        phrase = getattr(decoded, "phrase", None)
        assert phrase is None or phrase in phrases.all_phrases()
        for word in ("딸", "전화번호", "날씨", "공일공"):
            assert word.encode() not in message.payload
    assert "sos" in kinds and "heartbeat" in kinds and "state" in kinds
    assert kinds.count("sos") == 1


# --- voice SOS the recogniser was not sure of --------------------------------------------------


def test_a_doubtful_voice_sos_asks_first_and_sends_on_yes(agent: Agent) -> None:
    said = agent.announcer.said  # type: ignore[attr-defined]
    agent.on_detection(Detection(Kind.SOS, "도와줘", confidence=0.5))
    assert payloads(agent) == [] and said == ["도움을 요청할까요?"]
    agent.on_detection(Detection(Kind.YES, "네"))
    (sos,) = payloads(agent)
    assert sos["kind"] == "sos" and sos["phrase"] == "도와줘" and sos["source"] == "voice"


def test_a_doubtful_voice_sos_is_sent_when_nobody_answers(agent: Agent) -> None:
    clock = agent.clocks.monotonic
    assert isinstance(clock, Clock)
    agent.on_detection(Detection(Kind.SOS, "살려 줘", confidence=0.5))
    clock.t += agent.config.voice.answer_timeout_s - 0.5
    agent.check_voice_question()
    assert payloads(agent) == []
    clock.t += 0.5
    agent.check_voice_question()
    assert [p["kind"] for p in payloads(agent)] == ["sos"]


def test_no_to_the_question_sends_nothing_and_a_strong_match_sends_at_once(agent: Agent) -> None:
    agent.on_detection(Detection(Kind.SOS, "살려 줘", confidence=0.5))
    agent.on_detection(Detection(Kind.CANCEL, "괜찮아"))
    agent.clocks.monotonic.t += 60  # type: ignore[attr-defined]
    agent.check_voice_question()
    assert payloads(agent) == []
    agent.on_detection(Detection(Kind.SOS, "살려 줘", confidence=0.99))
    assert [p["kind"] for p in payloads(agent)] == ["sos"]
    # and the cancel window still works for it
    agent.on_detection(Detection(Kind.CANCEL, "괜찮아"))
    assert [p["kind"] for p in payloads(agent)] == ["sos", "sos_cancel"]

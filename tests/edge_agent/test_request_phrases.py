"""The resident asks for a call ("상담 받고 싶어요"): spotted only after the wake word, never as
an SOS, and sent by the agent on the contract's ``event/request`` from the on-disk outbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.agent import Agent, Clocks
from edge_agent.announce import LogAnnouncer
from edge_agent.outbox import Outbox
from edge_agent.spotter import Detection, Kind, Spotter
from firmware_config.messages import CallRequest, decode_device_message
from firmware_config.phrases import load_phrase_set
from firmware_config.topics import Channel, parse
from tests.edge_agent.test_agent import config


@pytest.mark.parametrize(
    "heard", ["안부야 상담 받고 싶어요", "안부 야 상담받고 싶어요", "안부야 전화 해 주세요"]
)
def test_korean_request_after_the_wake_word(heard: str) -> None:
    spotter = Spotter(load_phrase_set("ko"))
    detection = spotter.hear(heard, now=0.0)
    assert detection is not None and detection.kind is Kind.REQUEST


def test_a_request_heard_while_armed_and_not_without_the_wake_word() -> None:
    spotter = Spotter(load_phrase_set("ko"), wake_window_s=8)
    assert spotter.hear("상담 받고 싶어요", now=0.0) is None  # television talk files nothing
    woke = spotter.hear("안부 야", now=1.0)
    assert woke is not None and woke.kind is Kind.WAKE
    request = spotter.hear("상담 받고 싶어요", now=5.0)
    assert request is not None and request.kind is Kind.REQUEST
    assert request.phrase == "상담 받고 싶어요"


def test_an_sos_still_wins_over_a_request() -> None:
    spotter = Spotter(load_phrase_set("ko"))
    detection = spotter.hear("안부야 살려 주세요", now=0.0)
    assert detection is not None and detection.kind is Kind.SOS


def test_english_request() -> None:
    spotter = Spotter(load_phrase_set("en"))
    detection = spotter.hear("hey anbu i want to talk to someone", now=0.0)
    assert detection is not None and detection.kind is Kind.REQUEST


def test_request_words_are_in_the_grammar() -> None:
    phrases = load_phrase_set("ko")
    assert "상담 받고 싶어요" in phrases.all_phrases()
    assert {"상담", "받고", "싶어요"} <= phrases.words()
    assert "request_sent" in phrases.prompts


def test_the_agent_sends_a_request_on_its_own_topic(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    agent = Agent(
        cfg,
        load_phrase_set("ko"),
        Outbox(cfg.outbox_path),
        LogAnnouncer(),
        version="test",
        clocks=Clocks(monotonic=lambda: 10.0, wall=lambda: 1.7e9),
    )
    agent.on_detection(Detection(Kind.REQUEST, "상담 받고 싶어요"))
    [item] = agent.outbox.pending(10)
    assert parse(item.topic).channel is Channel.REQUEST
    message = decode_device_message(Channel.REQUEST, item.payload)
    assert isinstance(message, CallRequest)
    assert (message.phrase, message.language, message.source) == ("상담 받고 싶어요", "ko", "voice")
    assert json.loads(item.payload)["kind"] == "request"
    assert agent.outbox.held() == []  # not held like an SOS: PUBACK is enough

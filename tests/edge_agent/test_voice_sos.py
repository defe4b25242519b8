"""The ask-before-send rules for doubtful voice SOS, driven by detections and times alone."""

from __future__ import annotations

import pytest

from edge_agent.spotter import Detection, Kind
from edge_agent.voice_sos import Action, VoiceSosDecider

SOS_STRONG = Detection(Kind.SOS, "살려 줘", 0.97)
SOS_WEAK = Detection(Kind.SOS, "도와줘", 0.55)
YES = Detection(Kind.YES, "네")
NO = Detection(Kind.NO, "아니")
CANCEL = Detection(Kind.CANCEL, "괜찮아")
WAKE = Detection(Kind.WAKE, "안부 야")


def actions(decisions: list[object]) -> list[Action]:
    return [d.action for d in decisions]  # type: ignore[attr-defined]


@pytest.fixture
def decider() -> VoiceSosDecider:
    return VoiceSosDecider(ask_below=0.9, answer_timeout_s=8.0)


def test_a_strong_match_is_sent_at_once(decider: VoiceSosDecider) -> None:
    (decision,) = decider.hear(SOS_STRONG, now=0)
    assert decision.action is Action.SEND and decision.phrase == "살려 줘"
    assert not decider.asking


def test_a_weak_match_asks_and_yes_sends_it(decider: VoiceSosDecider) -> None:
    assert actions(decider.hear(SOS_WEAK, now=0)) == [Action.ASK]
    assert decider.asking
    (decision,) = decider.hear(YES, now=3)
    assert decision.action is Action.SEND and decision.phrase == "도와줘"
    assert not decider.asking and decider.tick(now=100) == []


def test_no_answer_sends_it_when_the_time_is_up(decider: VoiceSosDecider) -> None:
    decider.hear(SOS_WEAK, now=10)
    assert decider.tick(now=17.9) == []
    assert actions(decider.tick(now=18)) == [Action.SEND]
    assert decider.tick(now=19) == []  # once


def test_saying_the_sos_again_sends_it(decider: VoiceSosDecider) -> None:
    decider.hear(SOS_WEAK, now=0)
    assert actions(decider.hear(SOS_WEAK, now=2)) == [Action.SEND]


@pytest.mark.parametrize("answer", [NO, CANCEL])
def test_no_or_a_cancel_phrase_drops_it(decider: VoiceSosDecider, answer: Detection) -> None:
    decider.hear(SOS_WEAK, now=0)
    assert actions(decider.hear(answer, now=2)) == [Action.DROP]
    assert decider.tick(now=100) == []


def test_other_speech_while_asking_does_not_answer(decider: VoiceSosDecider) -> None:
    decider.hear(SOS_WEAK, now=0)
    assert decider.hear(WAKE, now=1) == [] and decider.asking
    assert actions(decider.hear(WAKE, now=9)) == [Action.SEND]  # late: the question ran out


def test_cancel_without_a_question_withdraws_the_last_sos(decider: VoiceSosDecider) -> None:
    assert actions(decider.hear(CANCEL, now=0)) == [Action.CANCEL]
    assert decider.hear(YES, now=1) == [] and decider.hear(WAKE, now=1) == []


def test_ask_below_zero_never_asks() -> None:
    decider = VoiceSosDecider(ask_below=0.0, answer_timeout_s=8)
    assert actions(decider.hear(Detection(Kind.SOS, "살려 줘", 0.01), now=0)) == [Action.SEND]


def test_without_send_unanswered_an_unanswered_question_drops_the_sos() -> None:
    decider = VoiceSosDecider(ask_below=0.9, answer_timeout_s=8, send_unanswered=False)
    assert actions(decider.hear(SOS_WEAK, now=0)) == [Action.ASK]
    assert decider.tick(now=7.9) == []
    assert actions(decider.tick(now=8)) == [Action.DROP]
    assert not decider.asking and decider.tick(now=100) == []
    # an answer still sends it, and a strong match still goes at once
    decider.hear(SOS_WEAK, now=200)
    assert actions(decider.hear(YES, now=202)) == [Action.SEND]
    assert actions(decider.hear(Detection(Kind.SOS, "살려 줘", 1.0), now=300)) == [Action.SEND]

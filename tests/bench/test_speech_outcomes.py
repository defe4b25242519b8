"""How the speech bench counts an SOS: one the agent would withdraw does not count
(``bench/speech.py``, ``standing_sends``, which runs the agent's own ``SosTracker``)."""

from __future__ import annotations

from bench.speech import CANCEL_WINDOW_S, Item, Outcome, standing_sends
from edge_agent.voice_sos import Action, Decision

SEND = Decision(Action.SEND, "(keyword classifier)", 1.0)
ASK = Decision(Action.ASK, "(keyword classifier)", 0.9)
CANCEL = Decision(Action.CANCEL, "취소", 0.3)


def test_a_cancel_just_after_the_sos_withdraws_it_and_the_bench_does_not_count_it() -> None:
    # as measured: the classifier's SOS at 3.7 s, the recogniser's 취소 (heard in noise) at 3.8 s
    out = Outcome(decisions=[(SEND, 3.7), (CANCEL, 3.8)])
    assert standing_sends(out.decisions) == []
    assert not out.sos and not out.sos_before(None) and not out.sent_at_once
    item = Item("sos", "20dB", b"", 3.5, "sos:test", answer_at_s=6.0)
    assert not out.sos_before(item.answer_at_s)


def test_a_cancel_before_the_sos_or_after_the_window_leaves_it_standing() -> None:
    assert standing_sends([(CANCEL, 1.0), (SEND, 2.0)]) == [(SEND, 2.0)]
    late = 2.0 + CANCEL_WINDOW_S + 0.1
    assert standing_sends([(SEND, 2.0), (CANCEL, late)]) == [(SEND, 2.0)]
    assert Outcome(decisions=[(SEND, 2.0), (CANCEL, late)]).sent_at_once


def test_a_cancel_withdraws_the_latest_sos_only_and_only_once() -> None:
    decisions = [(SEND, 1.0), (SEND, 5.0), (CANCEL, 6.0), (CANCEL, 7.0)]
    assert standing_sends(decisions) == [(SEND, 1.0)]
    # an asked SOS sent on no answer is withdrawn the same way
    assert standing_sends([(ASK, 1.0), (SEND, 9.0), (CANCEL, 9.5)]) == []

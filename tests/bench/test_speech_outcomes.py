"""How the speech bench counts an SOS that a cancel follows (``bench/speech.py``,
``cancelled_sends``, which runs the agent's own ``SosTracker``): it was sent, and the collector
keeps its dispatch open, so it counts as sent; the bench also says that it was cancelled."""

from __future__ import annotations

from bench.speech import CANCEL_WINDOW_S, Item, Outcome, cancelled_sends, summarise
from edge_agent.voice_sos import Action, Decision

SEND = Decision(Action.SEND, "(keyword classifier)", 1.0)
ASK = Decision(Action.ASK, "(keyword classifier)", 0.9)
CANCEL = Decision(Action.CANCEL, "취소", 0.3)


def test_an_sos_a_cancel_follows_still_counts_as_sent_and_as_cancelled() -> None:
    # as measured: the classifier's SOS at 3.7 s, the recogniser's 취소 (heard in noise) at 3.8 s
    out = Outcome(decisions=[(SEND, 3.7), (CANCEL, 3.8)])
    assert cancelled_sends(out.decisions) == [(SEND, 3.7)]
    assert out.sos and out.sos_before(6.0) and out.sent_at_once and out.cancelled_after
    item = Item("sos", "20dB", b"", 3.5, "sos:test", answer_at_s=6.0)
    row = summarise([(item, out)])["by_cond"]["20dB"]
    assert (row["sos_detected"], row["sos_then_cancelled"]) == (1, 1)


def test_a_cancel_before_the_sos_or_after_the_window_does_not_cancel_it() -> None:
    assert cancelled_sends([(CANCEL, 1.0), (SEND, 2.0)]) == []
    late = 2.0 + CANCEL_WINDOW_S + 0.1
    out = Outcome(decisions=[(SEND, 2.0), (CANCEL, late)])
    assert out.sos and not out.cancelled_after


def test_a_cancel_applies_to_the_latest_sos_only_and_only_once() -> None:
    decisions = [(SEND, 1.0), (SEND, 5.0), (CANCEL, 6.0), (CANCEL, 7.0)]
    assert cancelled_sends(decisions) == [(SEND, 5.0)]
    # an asked SOS sent on no answer is cancelled the same way
    assert cancelled_sends([(ASK, 1.0), (SEND, 9.0), (CANCEL, 9.5)]) == [(SEND, 9.0)]

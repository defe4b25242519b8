from edge_agent.sos import Feedback, SosTracker


def test_feedback_follows_the_sos() -> None:
    t = SosTracker(cancel_window_s=30)
    assert t.feedback is Feedback.IDLE
    assert t.sos("a" * 32, now=100) is Feedback.SENDING
    assert t.delivered("a" * 32) and t.feedback is Feedback.SENT
    assert not t.delivered("a" * 32)
    assert t.confirmed("a" * 32) and t.feedback is Feedback.CONFIRMED
    assert not t.confirmed("b" * 32)


def test_confirmation_may_overtake_delivery() -> None:
    t = SosTracker(cancel_window_s=30)
    t.sos("a" * 32, now=0)
    assert t.confirmed("a" * 32)
    assert not t.delivered("a" * 32)
    assert t.feedback is Feedback.CONFIRMED


def test_cancel_only_within_the_window_and_once() -> None:
    t = SosTracker(cancel_window_s=30)
    assert t.cancel(now=0) is None
    t.sos("a" * 32, now=100)
    assert t.cancel(now=99) is None
    assert t.cancel(now=130) == "a" * 32
    assert t.feedback is Feedback.CANCELLED
    assert t.cancel(now=131) is None
    t.sos("b" * 32, now=200)
    assert t.cancel(now=230.01) is None
    assert t.feedback is Feedback.SENDING


def test_a_new_sos_restarts_the_window_and_cancel_targets_the_latest() -> None:
    t = SosTracker(cancel_window_s=30)
    t.sos("a" * 32, now=0)
    t.sos("b" * 32, now=25)
    assert t.cancel(now=50) == "b" * 32


def test_late_acks_of_a_cancelled_sos_do_not_change_feedback() -> None:
    t = SosTracker(cancel_window_s=30)
    t.sos("a" * 32, now=0)
    t.cancel(now=1)
    assert not t.delivered("a" * 32)
    assert not t.confirmed("a" * 32)
    assert t.feedback is Feedback.CANCELLED

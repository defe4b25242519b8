"""Pure: what a spotted phrase makes the agent do, with a question when the recogniser is unsure.

Rules (``now`` is an argument; nothing here reads the clock):

1. An SOS phrase heard with ``confidence >= ask_below`` is sent at once (``SEND``); a detection
   that carries its own verdict (``Detection.sure``, the keyword classifier's) follows that.
2. A weaker one makes the agent ask "도움을 요청할까요?" (``ASK``) and wait ``answer_timeout_s``:
   a yes (네 / 응) or the SOS phrase again sends it; a no or a cancel phrase drops it (``DROP``).
   **No answer at all** sends it when ``send_unanswered`` (the default: a resident who has fallen
   may not manage a second sentence), and drops it otherwise (television does not answer).
3. A cancel phrase with no question pending withdraws the last SOS (``CANCEL``): the resident's
   cancel window (:mod:`edge_agent.sos`) is unchanged.
4. Everything else (wake word, check-in answers, a yes nobody asked for) does nothing here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edge_agent.spotter import Detection, Kind


class Action(enum.Enum):
    SEND = "send"
    """Raise the SOS now."""
    ASK = "ask"
    """Say the ``sos_ask`` prompt and wait for an answer."""
    DROP = "drop"
    """The resident said no (or nobody answered, without ``send_unanswered``): forget the
    doubtful SOS."""
    CANCEL = "cancel"
    """Withdraw the last SOS (if still within the cancel window)."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    phrase: str
    """The SOS or cancel phrase this is about."""
    confidence: float


class VoiceSosDecider:
    """The question-and-answer state for doubtful voice SOS (rules in the module doc).

    >>> d = VoiceSosDecider(ask_below=0.9, answer_timeout_s=8)
    >>> d.hear(Detection(Kind.SOS, "살려 줘", 0.6), now=0)[0].action
    <Action.ASK: 'ask'>
    >>> d.tick(now=8)[0].action
    <Action.SEND: 'send'>
    """

    def __init__(
        self, ask_below: float, answer_timeout_s: float, send_unanswered: bool = True
    ) -> None:
        self.ask_below = ask_below
        self.answer_timeout_s = answer_timeout_s
        self.send_unanswered = send_unanswered
        self._pending: Detection | None = None
        self._deadline = 0.0

    @property
    def asking(self) -> bool:
        """True while a question is waiting for its answer."""
        return self._pending is not None

    def hear(self, detection: Detection, now: float) -> list[Decision]:
        pending = self._pending
        if pending is not None:
            if detection.kind in (Kind.YES, Kind.SOS):
                self._pending = None
                return [
                    Decision(
                        Action.SEND, pending.phrase, max(pending.confidence, detection.confidence)
                    )
                ]
            if detection.kind in (Kind.NO, Kind.CANCEL):
                self._pending = None
                return [Decision(Action.DROP, pending.phrase, pending.confidence)]
            return self.tick(now)
        if detection.kind is Kind.SOS:
            sure = detection.sure
            if sure is None:
                sure = detection.confidence >= self.ask_below
            if sure:
                return [Decision(Action.SEND, detection.phrase, detection.confidence)]
            self._pending = detection
            self._deadline = now + self.answer_timeout_s
            return [Decision(Action.ASK, detection.phrase, detection.confidence)]
        if detection.kind is Kind.CANCEL:
            return [Decision(Action.CANCEL, detection.phrase, detection.confidence)]
        return []

    def tick(self, now: float) -> list[Decision]:
        """Send (or, without ``send_unanswered``, drop) a doubtful SOS whose question went
        unanswered."""
        pending = self._pending
        if pending is None or now < self._deadline:
            return []
        self._pending = None
        action = Action.SEND if self.send_unanswered else Action.DROP
        return [Decision(action, pending.phrase, pending.confidence)]

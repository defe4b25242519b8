"""The agent's side of a check-in: play the prompt, listen, answer the collector once.

Pure parts first: :class:`AnswerMatcher` (is this transcript a "yes, I'm fine"?) and
:class:`CheckinSession` (one request's life: prompts, listening window, one answer). Then
:class:`CheckinResponder`, which speaks through the agent's :class:`Announcer` and puts the
answer in the durable outbox (never dropped: a resident's "네" must reach the collector).

Answers are the phrase set's ``checkin`` list plus its "I'm fine" cancel phrases (괜찮아;
i'm fine / i am fine): the recogniser's grammar is built from the phrase set, so nothing else
could be recognised anyway. No wake word is needed while a check-in is listening: the prompt
itself asked the question.

Wiring (``edge_agent/runtime.py``): the link routes ``cmd/checkin`` to ``Agent.on_checkin``,
the voice pipeline shows each transcript to ``Agent.on_transcript`` first (an answer goes no
further), and the agent's 1 s loop calls :meth:`CheckinResponder.tick`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edge_agent.announce import Announcer
from edge_agent.spotter import normalise
from firmware_config.checkin import CheckinAnswer, CheckinRequest, checkin_answer_topic
from firmware_config.phrases import PhraseSet
from firmware_config.topics import DeviceAddress

log = logging.getLogger("anbu.agent.checkin")

FINE_ANSWERS = {"ko": ("괜찮아",), "en": ("i'm fine", "i am fine")}
DEFAULT_PROMPTS = {
    "ko": "안녕하세요, 안부예요. 괜찮으시면 '네'라고 대답해 주세요.",
    "en": "Hello, this is Anbu. If you are all right, please say yes.",
}


class AnswerMatcher:
    """Finds a check-in answer in a transcript; returns the phrase-set phrase, never the text."""

    def __init__(self, phrases: PhraseSet) -> None:
        self.language = phrases.language
        fine = [p for p in phrases.cancel if p in FINE_ANSWERS.get(self.language, ())]
        answers = [*phrases.checkin, *fine]
        self._table = sorted(
            ((normalise(p, self.language), p) for p in answers if p.strip()),
            key=lambda item: -len(item[0]),
        )

    @property
    def answers(self) -> tuple[str, ...]:
        return tuple(original for _, original in self._table)

    def match(self, transcript: str) -> str | None:
        text = normalise(transcript, self.language)
        for norm, original in self._table:
            if norm.strip() and norm in text:
                return original
        return None


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Answered:
    answered: bool
    phrase: str | None
    heard_after_s: float | None
    expired: bool = False


@dataclass(slots=True)
class CheckinSession:
    """One check-in on the device. Pure: ``now`` is wall-clock seconds, passed in.

    The prompt is played ``repeats`` times, ``listen_s`` apart; an answer heard any time before
    the last window closes settles it. A request past its ``expires_ts`` is never played.
    """

    request: CheckinRequest
    started_at: float
    prompt: str
    plays: int = 0
    result: Answered | None = None
    next_prompt_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.next_prompt_at = self.started_at

    def begin(self) -> list[Say | Answered]:
        if self.started_at > self.request.expires_ts:
            self.result = Answered(False, None, None, expired=True)
            return [self.result]
        return self.tick(self.started_at)

    def tick(self, now: float) -> list[Say | Answered]:
        if self.result is not None:
            return []
        if self.plays < self.request.repeats and now >= self.next_prompt_at:
            self.plays += 1
            self.next_prompt_at = now + self.request.listen_s
            return [Say(self.prompt)]
        if self.plays >= self.request.repeats and now >= self.next_prompt_at:
            self.result = Answered(False, None, None)
            return [self.result]
        return []

    def hear(self, phrase: str | None, now: float) -> Answered | None:
        if self.result is not None or phrase is None or self.plays == 0:
            return None
        self.result = Answered(True, phrase, round(now - self.started_at, 2))
        return self.result


class AnswerSink(Protocol):
    """Where answers go: the agent's durable outbox (``Outbox.put``)."""

    def put(self, topic: str, payload: bytes, *, droppable: bool = False) -> int: ...

    def next_seq(self) -> int: ...


class CheckinResponder:
    """Runs check-in sessions for one device (one at a time; a newer request replaces one)."""

    def __init__(
        self,
        address: DeviceAddress,
        phrases: PhraseSet,
        announcer: Announcer,
        outbox: AnswerSink,
        *,
        wall: Callable[[], float],
        on_answer_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.address = address
        self.matcher = AnswerMatcher(phrases)
        self.prompt = phrases.prompts.get("checkin") or DEFAULT_PROMPTS.get(
            phrases.language, DEFAULT_PROMPTS["en"]
        )
        self.announcer = announcer
        self.outbox = outbox
        self.wall = wall
        self.on_answer_queued = on_answer_queued
        self._session: CheckinSession | None = None
        self._lock = threading.Lock()

    @property
    def listening(self) -> bool:
        with self._lock:
            return self._session is not None and self._session.result is None

    def on_request(self, request: CheckinRequest) -> None:
        with self._lock:
            if self._session is not None and self._session.request.checkin_id == request.checkin_id:
                return  # re-delivered (QoS 1): already running or answered
            self._session = CheckinSession(request, self.wall(), self.prompt)
            actions = self._session.begin()
        self._act(actions)

    def hear(self, transcript: str) -> bool:
        """A transcript from the recogniser; True if it answered the check-in."""
        with self._lock:
            if self._session is None:
                return False
            answer = self._session.hear(self.matcher.match(transcript), self.wall())
        if answer is None:
            return False
        self._act([answer])
        return True

    def tick(self) -> None:
        with self._lock:
            actions = [] if self._session is None else self._session.tick(self.wall())
        self._act(actions)

    def _act(self, actions: list[Say | Answered]) -> None:
        for action in actions:
            if isinstance(action, Say):
                self.announcer.say(action.text)
                continue
            session = self._session
            assert session is not None  # noqa: S101 - actions come from a session
            message = CheckinAnswer(
                device_ts=self.wall(),
                seq=self.outbox.next_seq(),
                checkin_id=session.request.checkin_id,
                answered=action.answered,
                phrase=action.phrase,
                language=self.matcher.language if action.answered else None,  # type: ignore[arg-type]
                heard_after_s=action.heard_after_s,
                expired=action.expired,
            )
            self.outbox.put(checkin_answer_topic(self.address), message.to_payload())
            log.info(
                "check-in answered" if action.answered else "check-in not answered",
                extra={"checkin_id": session.request.checkin_id, "expired": action.expired},
            )
            self.on_answer_queued()

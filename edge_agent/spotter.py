"""Pure phrase spotting: a transcript and the time in, a detection (or nothing) out.

Rules, in order:

1. The transcript's words and every phrase are *normalised* the same way: lower case,
   punctuation removed; Korean spacing ignored (``살려 줘`` = ``살려줘``), polite endings folded
   (``살려주세요`` = ``살려줘요`` = ``살려줘``, ``괜찮아요`` = ``괜찮아``), ``일일구`` = ``119``.
2. A phrase matches a run of *whole* words of the transcript (``살려줘서`` is not ``살려줘``);
   a run never crosses ``[unk]``, which is how the recogniser marks filler and doubtful words.
3. A cancel phrase is a cancel, even when an SOS phrase is heard too: a resident saying
   ``괜찮아`` must never raise an SOS (whether a cancel is still allowed is for
   :mod:`edge_agent.sos` to decide, not the spotter).
4. Otherwise an SOS phrase is an SOS — if the utterance has at most ``max_unknown_words``
   ``[unk]`` words besides it: a call for help is short ("아이고 살려 주세요"), while a sentence
   of talk or television that happens to contain the phrase's sounds is long. SOS needs **no wake
   word**: a resident who has fallen should not have to remember one. Its ``confidence`` is the
   lowest word confidence of the run.
   When the best hypothesis holds no SOS, the recogniser's close *alternatives* (hypotheses
   nearly as likely, :attr:`Transcript.alternatives`) are looked at, closest first: the first
   with an SOS phrase (and at most ``max_unknown_words`` ``[unk]``) is an SOS with that
   hypothesis' confidence — unless any of them holds a cancel phrase. The best hypothesis alone
   decides everything else.
5. While an answer is expected (``answering=True``, after "도움을 요청할까요?"), a yes or no
   phrase is an answer.
6. Otherwise the wake word arms the spotter for ``wake_window_s``; a check-in answer heard while
   armed (or in the same utterance) is a check-in, and a request phrase ("상담 받고 싶어요") is a
   request for a call (never without the wake word: talk on television must not file one).
   A bare wake word is reported as a wake.

Nothing here reads the clock or imports I/O: ``now`` is an argument.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

from edge_agent.transcript import UNKNOWN, Transcript
from firmware_config.phrases import PhraseSet


class Kind(enum.Enum):
    """What the resident said."""

    SOS = "sos"
    CANCEL = "cancel"
    WAKE = "wake"
    CHECKIN = "checkin"
    YES = "yes"
    """Yes to "shall I ask for help?"."""
    NO = "no"
    """No to "shall I ask for help?"."""
    REQUEST = "request"
    """A non-urgent request for a call from the welfare office (after the wake word)."""


@dataclass(frozen=True, slots=True)
class Detection:
    kind: Kind
    phrase: str
    """The phrase from the phrase set that matched (never the raw transcript)."""
    confidence: float = 1.0
    """The recogniser's lowest word confidence over the matched words."""


_PUNCT = re.compile(r"[^\w\s']|_", re.UNICODE)
_KO_FOLDS = (
    ("일일구", "119"),
    ("주세요", "줘"),
    ("줘요", "줘"),
    ("주십시오", "줘"),
    ("아요", "아"),
    ("어요", "어"),
)


def normalise(text: str, language: str) -> str:
    """Fold a transcript or phrase to the form phrases are compared in."""
    text = unicodedata.normalize("NFC", text).lower().replace("[unk]", " ")
    text = _PUNCT.sub(" ", text)
    if language == "ko":
        text = "".join(text.split())
        for old, new in _KO_FOLDS:
            text = text.replace(old, new)
        return text
    text = text.replace("'", "")
    return " " + " ".join(text.split()) + " "


def _fold(joined: str, language: str) -> str:
    if language == "ko":
        for old, new in _KO_FOLDS:
            joined = joined.replace(old, new)
    return joined


class Spotter:
    """Phrase spotter for one phrase set; keeps only the wake-word window as state.

    >>> from firmware_config.phrases import load_phrase_set
    >>> s = Spotter(load_phrase_set("ko"))
    >>> s.hear("살려 주세요", now=0.0)
    Detection(kind=<Kind.SOS: 'sos'>, phrase='살려 주세요', confidence=1.0)
    """

    def __init__(
        self, phrases: PhraseSet, wake_window_s: float = 8.0, max_unknown_words: int = 1
    ) -> None:
        self.language = phrases.language
        self.wake_window_s = wake_window_s
        self.max_unknown_words = max_unknown_words
        self._armed_until: float | None = None
        self._sep = "" if self.language == "ko" else " "
        self._table: dict[Kind, dict[str, str]] = {}
        for kind, source in (
            (Kind.SOS, phrases.sos),
            (Kind.CANCEL, phrases.cancel),
            (Kind.WAKE, phrases.wake),
            (Kind.CHECKIN, phrases.checkin),
            (Kind.YES, phrases.yes),
            (Kind.NO, phrases.no),
            (Kind.REQUEST, phrases.request),
        ):
            table: dict[str, str] = {}
            for p in source:
                key = self._key(normalise(p, self.language).split())
                if key:
                    table.setdefault(key, p)
            self._table[kind] = table

    def _key(self, tokens: list[str]) -> str:
        return _fold(self._sep.join(tokens), self.language)

    def _find(self, kind: Kind, tokens: list[tuple[str, float] | None]) -> tuple[str, float] | None:
        """The longest run of whole words that is a phrase of ``kind``, with its confidence."""
        table = self._table[kind]
        best: tuple[int, str, float] | None = None
        for i in range(len(tokens)):
            run: list[str] = []
            confidence = 1.0
            for token in tokens[i:]:
                if token is None:
                    break
                run.append(token[0])
                confidence = min(confidence, token[1])
                phrase = table.get(self._key(run))
                if phrase is not None and (best is None or len(run) > best[0]):
                    best = (len(run), phrase, confidence)
        return None if best is None else (best[1], best[2])

    def _tokens(self, heard: Transcript) -> list[tuple[str, float] | None]:
        tokens: list[tuple[str, float] | None] = []
        for word in heard.words:
            if word.text.lower() == UNKNOWN:
                tokens.append(None)
                continue
            parts = normalise(word.text, self.language).split()
            tokens.extend((part, word.confidence) for part in parts)
            if not parts:
                tokens.append(None)
        return tokens

    def _sos_in_alternatives(self, transcript: Transcript) -> tuple[str, float] | None:
        others = [self._tokens(t) for t in transcript.alternatives]
        if any(self._find(Kind.CANCEL, tokens) is not None for tokens in others):
            return None
        for tokens in others:
            found = self._find(Kind.SOS, tokens)
            if found is not None and tokens.count(None) <= self.max_unknown_words:
                return found
        return None

    def hear(
        self, heard: str | Transcript, now: float, answering: bool = False
    ) -> Detection | None:
        """Classify one recognised utterance heard at ``now`` (seconds, any monotonic origin)."""
        transcript = Transcript.of(heard) if isinstance(heard, str) else heard
        tokens = self._tokens(transcript)
        if not any(tokens):
            return None
        if (found := self._find(Kind.CANCEL, tokens)) is not None:
            return Detection(Kind.CANCEL, *found)
        found = self._find(Kind.SOS, tokens)
        if found is None or tokens.count(None) > self.max_unknown_words:
            found = self._sos_in_alternatives(transcript)
        if found is not None:
            self._armed_until = None
            return Detection(Kind.SOS, *found)
        if answering:
            for kind in (Kind.NO, Kind.YES):
                if (found := self._find(kind, tokens)) is not None:
                    return Detection(kind, *found)
        woke = self._find(Kind.WAKE, tokens)
        armed = self._armed_until is not None and now <= self._armed_until
        request = self._find(Kind.REQUEST, tokens)
        if request is not None and (armed or woke is not None):
            self._armed_until = None
            return Detection(Kind.REQUEST, *request)
        answer = self._find(Kind.CHECKIN, tokens)
        if answer is not None and (armed or woke is not None):
            self._armed_until = None
            return Detection(Kind.CHECKIN, *answer)
        if woke is not None:
            self._armed_until = now + self.wake_window_s
            return Detection(Kind.WAKE, *woke)
        return None

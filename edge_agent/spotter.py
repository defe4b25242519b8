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
   More than that, **a cancel heard anywhere vetoes an SOS**: a cancel phrase in any of the
   recogniser's alternatives, or one of the phrase set's ``cancel_words`` (``취소``, ``괜찮아``) in
   the best hypothesis, an alternative or the partial results it dropped
   (:attr:`Transcript.also_heard`). Such an utterance is never an SOS, whatever else it holds.
4. Otherwise an SOS phrase is an SOS if it passes :class:`SosRule`: at most ``max_unknown_words``
   ``[unk]`` and ``max_extra_words`` words of any kind besides it (a call for help is short, "아이고
   살려 주세요"; a sentence of talk or television that happens to contain the phrase's sounds is
   long), its weakest word at least ``min_confidence``, and it covers at least
   ``min_phrase_share`` of the utterance's time; optionally it must end the utterance (at most
   ``max_words_after`` words after it) with nothing louder than ``max_voice_after`` after the
   last word (Korean is verb-final: 도와줄게 goes on where 도와줘 stops). SOS needs **no wake
   word**: a resident who has fallen should not have to remember one. Its ``confidence`` is the
   lowest word confidence of the run.
   When the best hypothesis holds no such SOS, the recogniser's close *alternatives* (hypotheses
   nearly as likely, :attr:`Transcript.alternatives`) are looked at, closest first, with the same
   rule. The best hypothesis alone decides everything else.
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
class SosRule:
    """What an SOS phrase must look like in an utterance to be taken as one (rule 4).

    The agent's values are ``voice.sos_*`` (:class:`firmware_config.device.VoiceConfig`);
    ``bench/speech.py --sweep`` chooses them on one half of its labelled set and reports them on
    the other."""

    max_unknown_words: int = 1
    """``[unk]`` words allowed in the utterance besides the phrase."""
    max_extra_words: int | None = None
    """Words of any kind (``[unk]`` or other phrase words) allowed besides the phrase; None: any."""
    min_confidence: float = 0.0
    """The phrase's weakest word must have at least this confidence, or it is not an SOS."""
    min_phrase_share: float = 0.0
    """The phrase must span at least this share of the utterance, first word's start to last
    word's end (0: not checked; skipped when the recogniser gives no word times)."""
    max_words_after: int | None = None
    """Words of any kind (``[unk]`` too) allowed after the phrase's last word; None: any. Korean
    is verb-final, so a call for help ends with its phrase (0: the phrase must end the
    utterance)."""
    max_voice_after: float | None = None
    """How loud the audio just after the utterance's last word may be, as a share of the way
    from the utterance's quiet (0) to its words' level (1) (:meth:`Loudness.voice_after`):
    도와줄게 is often heard as the phrase 도와줘 with its last syllable put down as silence.
    None: not checked; skipped when the recogniser measured no loudness."""


@dataclass(frozen=True, slots=True)
class _Match:
    phrase: str
    confidence: float
    first: int
    """Index in ``Transcript.words`` of the phrase's first word."""
    last: int


Token = tuple[str, float, int]
"""A normalised word part, its confidence and the index of the word it came from."""


@dataclass(frozen=True, slots=True)
class Detection:
    kind: Kind
    phrase: str
    """The phrase from the phrase set that matched (never the raw transcript)."""
    confidence: float = 1.0
    """The recogniser's lowest word confidence over the matched words (from the keyword
    classifier: its score)."""
    sure: bool | None = None
    """The detector's own word on whether to send without asking (the keyword classifier's
    strong threshold); None: :class:`edge_agent.voice_sos.VoiceSosDecider` compares
    ``confidence`` with its ``ask_below``."""


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


def normalise_words(text: str, language: str) -> list[str]:
    """The words of ``text``, each normalised on its own (``살려 주세요`` → ``살려``, ``줘``)."""
    return [n for w in text.split() if (n := normalise(w, language).strip())]


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
        self,
        phrases: PhraseSet,
        wake_window_s: float = 8.0,
        max_unknown_words: int = 1,
        rule: SosRule | None = None,
    ) -> None:
        self.language = phrases.language
        self.wake_window_s = wake_window_s
        self.rule = rule or SosRule(max_unknown_words=max_unknown_words)
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
        self.cancel_words = frozenset(
            n for w in phrases.cancel_words for n in normalise_words(w, self.language)
        )
        """The phrase set's ``cancel_words``: heard anywhere in an utterance, they veto an SOS."""

    def arm(self, now: float) -> None:
        """Take a wake word heard at ``now`` by another ear (the keyword classifier): a request
        or check-in answer within ``wake_window_s`` is taken as after the wake word."""
        self._armed_until = now + self.wake_window_s

    def disarm(self) -> None:
        """Forget a wake word heard earlier (the spotter's only state)."""
        self._armed_until = None

    @property
    def max_unknown_words(self) -> int:
        return self.rule.max_unknown_words

    def _key(self, tokens: list[str]) -> str:
        return _fold(self._sep.join(tokens), self.language)

    def _find(self, kind: Kind, tokens: list[Token | None]) -> _Match | None:
        """The longest run of whole words that is a phrase of ``kind``, with its confidence."""
        table = self._table[kind]
        best: tuple[int, _Match] | None = None
        for i, first in enumerate(tokens):
            if first is None:
                continue
            run: list[str] = []
            confidence = 1.0
            for token in tokens[i:]:
                if token is None:
                    break
                run.append(token[0])
                confidence = min(confidence, token[1])
                phrase = table.get(self._key(run))
                if phrase is not None and (best is None or len(run) > best[0]):
                    best = (len(run), _Match(phrase, confidence, first[2], token[2]))
        return None if best is None else best[1]

    def _tokens(self, heard: Transcript) -> list[Token | None]:
        tokens: list[Token | None] = []
        for n, word in enumerate(heard.words):
            if word.text.lower() == UNKNOWN:
                tokens.append(None)
                continue
            parts = normalise(word.text, self.language).split()
            tokens.extend((part, word.confidence, n) for part in parts)
            if not parts:
                tokens.append(None)
        return tokens

    def cancel_heard(self, transcript: Transcript) -> bool:
        """Rule 3's veto: a cancel phrase in an alternative, or a cancel-only word anywhere."""
        for hypothesis in (transcript, *transcript.alternatives):
            tokens = self._tokens(hypothesis)
            if hypothesis is not transcript and self._find(Kind.CANCEL, tokens) is not None:
                return True
            if any(t is not None and t[0] in self.cancel_words for t in tokens):
                return True
        return any(
            w in self.cancel_words
            for heard in transcript.also_heard
            for w in normalise_words(heard, self.language)
        )

    def _accepted(self, match: _Match, heard: Transcript) -> bool:
        rule = self.rule
        words = heard.words
        outside = [w for n, w in enumerate(words) if not match.first <= n <= match.last]
        if sum(1 for w in outside if w.text.lower() == UNKNOWN) > rule.max_unknown_words:
            return False
        if rule.max_extra_words is not None and len(outside) > rule.max_extra_words:
            return False
        if match.confidence < rule.min_confidence:
            return False
        if rule.min_phrase_share > 0 and words[-1].end_s > words[0].start_s:
            spoken = words[-1].end_s - words[0].start_s
            phrase = words[match.last].end_s - words[match.first].start_s
            if phrase < rule.min_phrase_share * spoken:
                return False
        if rule.max_words_after is not None and len(words) - 1 - match.last > rule.max_words_after:
            return False
        if rule.max_voice_after is not None and heard.loudness is not None:
            after = heard.loudness.voice_after()
            if after is not None and after > rule.max_voice_after:
                return False
        return True

    def sos_in(self, transcript: Transcript) -> tuple[str, float] | None:
        """The SOS phrase rule 4 takes from this utterance (best hypothesis, then alternatives),
        ignoring the cancel veto."""
        for hypothesis in (transcript, *transcript.alternatives):
            match = self._find(Kind.SOS, self._tokens(hypothesis))
            if match is not None and self._accepted(match, hypothesis):
                return match.phrase, match.confidence
        return None

    def hear(
        self, heard: str | Transcript, now: float, answering: bool = False
    ) -> Detection | None:
        """Classify one recognised utterance heard at ``now`` (seconds, any monotonic origin)."""
        transcript = Transcript.of(heard) if isinstance(heard, str) else heard
        tokens = self._tokens(transcript)
        if not any(tokens):
            return None
        if (match := self._find(Kind.CANCEL, tokens)) is not None:
            return Detection(Kind.CANCEL, match.phrase, match.confidence)
        if not self.cancel_heard(transcript) and (found := self.sos_in(transcript)) is not None:
            self._armed_until = None
            return Detection(Kind.SOS, *found)
        if answering:
            for kind in (Kind.NO, Kind.YES):
                if (match := self._find(kind, tokens)) is not None:
                    return Detection(kind, match.phrase, match.confidence)
        woke = self._find(Kind.WAKE, tokens)
        armed = self._armed_until is not None and now <= self._armed_until
        request = self._find(Kind.REQUEST, tokens)
        if request is not None and (armed or woke is not None):
            self._armed_until = None
            return Detection(Kind.REQUEST, request.phrase, request.confidence)
        answer = self._find(Kind.CHECKIN, tokens)
        if answer is not None and (armed or woke is not None):
            self._armed_until = None
            return Detection(Kind.CHECKIN, answer.phrase, answer.confidence)
        if woke is not None:
            self._armed_until = now + self.wake_window_s
            return Detection(Kind.WAKE, woke.phrase, woke.confidence)
        return None

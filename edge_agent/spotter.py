"""Pure phrase spotting: a transcript and the time in, a detection (or nothing) out.

Rules, in order:

1. The transcript and every phrase are *normalised* the same way: lower case, ``[unk]`` and
   punctuation removed; Korean spacing ignored (``살려 줘`` = ``살려줘``), polite endings folded
   (``살려주세요`` = ``살려줘요`` = ``살려줘``, ``괜찮아요`` = ``괜찮아``), ``일일구`` = ``119``.
2. An SOS phrase anywhere in the transcript is an SOS. SOS needs **no wake word**: a resident who
   has fallen should not have to remember one.
3. Otherwise a cancel phrase is a cancel (whether a cancel is still allowed is for
   :mod:`edge_agent.sos` to decide, not the spotter).
4. Otherwise the wake word arms the spotter for ``wake_window_s``; a check-in answer heard while
   armed (or in the same utterance) is a check-in. A bare wake word is reported as a wake.

Nothing here reads the clock or imports I/O: ``now`` is an argument.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

from firmware_config.phrases import PhraseSet


class Kind(enum.Enum):
    """What the resident said."""

    SOS = "sos"
    CANCEL = "cancel"
    WAKE = "wake"
    CHECKIN = "checkin"


@dataclass(frozen=True, slots=True)
class Detection:
    kind: Kind
    phrase: str
    """The phrase from the phrase set that matched (never the raw transcript)."""


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


class Spotter:
    """Phrase spotter for one phrase set; keeps only the wake-word window as state.

    >>> from firmware_config.phrases import load_phrase_set
    >>> s = Spotter(load_phrase_set("ko"))
    >>> s.hear("살려 주세요", now=0.0)
    Detection(kind=<Kind.SOS: 'sos'>, phrase='살려줘')
    """

    def __init__(self, phrases: PhraseSet, wake_window_s: float = 8.0) -> None:
        self.language = phrases.language
        self.wake_window_s = wake_window_s
        self._armed_until: float | None = None
        self._table: dict[Kind, list[tuple[str, str]]] = {
            kind: sorted(
                ((normalise(p, self.language), p) for p in source),
                key=lambda item: -len(item[0]),  # longest first: "help me" before "help"
            )
            for kind, source in (
                (Kind.SOS, phrases.sos),
                (Kind.CANCEL, phrases.cancel),
                (Kind.WAKE, phrases.wake),
                (Kind.CHECKIN, phrases.checkin),
            )
        }

    def _find(self, kind: Kind, text: str) -> str | None:
        for norm, original in self._table[kind]:
            if norm.strip() and norm in text:
                return original
        return None

    def hear(self, transcript: str, now: float) -> Detection | None:
        """Classify one recognised utterance heard at ``now`` (seconds, any monotonic origin)."""
        text = normalise(transcript, self.language)
        if not text.strip():
            return None
        if (phrase := self._find(Kind.SOS, text)) is not None:
            self._armed_until = None
            return Detection(Kind.SOS, phrase)
        if (phrase := self._find(Kind.CANCEL, text)) is not None:
            return Detection(Kind.CANCEL, phrase)
        woke = self._find(Kind.WAKE, text)
        armed = self._armed_until is not None and now <= self._armed_until
        answer = self._find(Kind.CHECKIN, text)
        if answer is not None and (armed or woke is not None):
            self._armed_until = None
            return Detection(Kind.CHECKIN, answer)
        if woke is not None:
            self._armed_until = now + self.wake_window_s
            return Detection(Kind.WAKE, woke)
        return None

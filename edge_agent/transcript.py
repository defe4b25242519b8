"""What a recogniser heard: words with the recogniser's confidence in each. Pure data."""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN = "[unk]"
"""Stands for speech the recogniser does not put in the phrase vocabulary (a filler, a word below
its confidence floor): the spotter never lets a phrase match across it."""


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    confidence: float = 1.0
    """Vosk's per-word posterior (0..1); 1.0 when the recogniser gives none."""
    start_s: float = 0.0
    end_s: float = 0.0
    """Where the word lies in the utterance (seconds); both 0.0 when the recogniser gives none."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """One utterance as a sequence of words.

    >>> Transcript.of("살려 줘").text
    '살려 줘'
    """

    words: tuple[Word, ...]
    alternatives: tuple[Transcript, ...] = ()
    """Other hypotheses the recogniser found nearly as likely as ``words``, closest first
    (empty unless it is asked for an n-best list)."""
    also_heard: tuple[str, ...] = ()
    """Words the recogniser reported in its partial results for this utterance that are not in
    ``words`` (it changed its mind): a cancel among them still vetoes an SOS."""

    @classmethod
    def of(cls, text: str, confidence: float = 1.0) -> Transcript:
        return cls(tuple(Word(w, confidence) for w in text.split()))

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def __bool__(self) -> bool:
        return bool(self.words)

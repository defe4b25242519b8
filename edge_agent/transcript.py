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
class Loudness:
    """How loud the audio of an utterance was around its words (dBFS), as the recogniser measured
    it (:func:`edge_agent.loudness.measure`): enough to tell whether the speaker went on talking
    after the last word the recogniser put in the transcript."""

    words_db: float
    """From the first word's start to the last word's end."""
    after_db: float
    """The stretch just after the last word's end (see ``edge_agent.loudness``)."""
    floor_db: float
    """The quietest 100 ms of the utterance's audio (the room without the speaker)."""

    def voice_after(self) -> float | None:
        """Where the audio after the last word lies between the floor (0) and the words' level
        (1); None when the words are not clearly above the floor (nothing to compare with)."""
        span = self.words_db - self.floor_db
        if span < 1.0:
            return None
        return (self.after_db - self.floor_db) / span


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
    loudness: Loudness | None = None
    """The audio's level around the words (None when the recogniser measured none)."""

    @classmethod
    def of(cls, text: str, confidence: float = 1.0) -> Transcript:
        return cls(tuple(Word(w, confidence) for w in text.split()))

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def __bool__(self) -> bool:
        return bool(self.words)

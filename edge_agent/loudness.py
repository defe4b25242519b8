"""How loud an utterance was around its words: did the speaker go on after the last one?

Korean puts the verb last, so a call for help ends with the phrase (살려 줘, 도와줘); a sentence
that only begins like one (도와줄게, 도와줄까) goes on. In grammar mode the recogniser often gives
the phrase alone for such a sentence and puts the rest down as silence, so the transcript cannot
tell them apart — the audio can. Given an utterance's audio and its words' times, :func:`measure`
returns the level of the words, of the stretch that begins ``AFTER_GAP_S`` after the last word's
end and lasts ``AFTER_SPAN_S``, and of the utterance's quietest 100 ms. Pure: bytes in, numbers
out.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.transcript import Loudness, Word
from edge_agent.vad import level_dbfs

RATE_HZ = 16000
AFTER_GAP_S = 0.1
"""Skipped after the last word's end: the recogniser's word ends come a little early."""
AFTER_SPAN_S = 0.2
"""How much audio after that gap is measured."""
FLOOR_WINDOW_S = 0.1
MIN_LEVEL_DBFS = -70.0
"""Levels are counted from here: a microphone is never quieter, and digital silence (-120) would
otherwise make a faint tail look loud."""


def _level(audio: bytes, start_s: float, end_s: float) -> float | None:
    a = max(0, int(start_s * RATE_HZ)) * 2
    b = min(len(audio), int(end_s * RATE_HZ) * 2)
    if b - a < 2 * int(0.05 * RATE_HZ):  # under 50 ms: too little to tell
        return None
    return max(MIN_LEVEL_DBFS, level_dbfs(audio[a:b]))


def measure(audio: bytes, audio_start_s: float, words: Sequence[Word]) -> Loudness | None:
    """The loudness around ``words`` in ``audio`` (16 kHz int16), whose first sample lies at
    ``audio_start_s`` on the words' clock; None without word times or audio after the last word.

    >>> quiet, loud = bytes(3200), b"\\x00\\x10" * 1600  # 100 ms each
    >>> measure(quiet + loud * 3 + quiet * 4, 0.0, [Word("줘", 1.0, 0.1, 0.4)])
    Loudness(words_db=-18.1, after_db=-70.0, floor_db=-70.0)
    """
    if not words or words[-1].end_s <= words[0].start_s:
        return None
    first, last = words[0].start_s - audio_start_s, words[-1].end_s - audio_start_s
    spoken = _level(audio, first, last)
    after = _level(audio, last + AFTER_GAP_S, last + AFTER_GAP_S + AFTER_SPAN_S)
    if spoken is None or after is None:
        return None
    window = 2 * int(FLOOR_WINDOW_S * RATE_HZ)
    floor = min(
        (
            max(MIN_LEVEL_DBFS, level_dbfs(audio[i : i + window]))
            for i in range(0, len(audio) - window + 1, window // 2)
        ),
        default=after,
    )
    return Loudness(round(spoken, 1), round(after, 1), round(min(floor, after, spoken), 1))

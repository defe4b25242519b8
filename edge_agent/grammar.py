"""The recogniser's grammar: the phrase set, plus fillers from the model's own vocabulary. Pure.

Vosk turns a runtime grammar into a *bigram* language model over its words (with back-off), so
speech that is none of the phrases still has to come out as some sequence of grammar words. With
the phrases alone, everyday talk is forced into them ("도와줄게" → "도와줘"). Fillers give that
speech somewhere else to go:

* Korean: single-syllable words of the vocabulary, the syllables that occur in the most words of
  the vocabulary first (leaving out the single-syllable phrase words such as 줘, which stay phrase
  words), so that sounds that are not a phrase are heard as syllables. Leaving out every syllable
  of the phrases as well was measured and lost half the recall for no fewer false alarms;
* other languages: the vocabulary's short words (up to three letters), those that begin the most
  words first, leaving out the phrase words.

The recogniser reports any filler as ``[unk]``, and the spotter never matches across one, so a
run of fillers ("살" "려" "줘") never spells a phrase.
``phrase_weight`` repeats each phrase in the grammar, raising its bigram counts against the
fillers: higher means more recall and more false alarms (``bench/speech.py`` measures both).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from firmware_config.phrases import PhraseSet


def _is_hangul_syllable(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def filler_words(
    vocabulary: Iterable[str], phrase_words: set[str], count: int, language: str
) -> tuple[str, ...]:
    """Up to ``count`` vocabulary words to compete with the phrases (rules in the module doc)."""
    words = list(vocabulary)
    if count <= 0:
        return ()
    if language == "ko":
        singles = {w for w in words if len(w) == 1 and _is_hangul_syllable(w)}
        occurrences = Counter(ch for w in words for ch in set(w) if ch in singles)
        ranked = sorted(singles - phrase_words, key=lambda s: (-occurrences[s], s))
    else:
        short = {w for w in words if 1 <= len(w) <= 3 and w.isalpha() and w.islower()}
        starts = Counter(w[:n] for w in words for n in (1, 2, 3) if len(w) >= n)
        ranked = sorted(short - phrase_words, key=lambda s: (-starts[s], s))
    return tuple(ranked[:count])


def competitor_words(
    vocabulary: Iterable[str], phrases: PhraseSet, max_extra_syllables: int = 2
) -> tuple[str, ...]:
    """Korean vocabulary words that begin with an SOS phrase word of two or more syllables and
    are at most ``max_extra_syllables`` longer (살려고, 도와주려, 구급차가, 불러서), competing
    with the phrases where near-misses are heard and fillers are too far off. Words that spell
    a phrase (살려줘) or part of one (살려주, of 살려주세요) are left out. Other languages: none."""
    if phrases.language != "ko":
        return ()
    from edge_agent.spotter import normalise

    sos_words = {w for p in phrases.sos for w in p.lower().split()}
    heads = {w for w in sos_words if len(w) >= 2 and all(map(_is_hangul_syllable, w))}
    spelled = {normalise(p, "ko") for p in phrases.all_phrases()}
    spoken = {"".join(p.split()) for p in phrases.sos}
    words = phrases.words()
    found = {
        w
        for w in vocabulary
        if w not in words
        and any(w.startswith(h) and len(w) <= len(h) + max_extra_syllables for h in heads)
        and normalise(w, "ko") not in spelled
        and not any(w in joined for joined in spoken)
    }
    return tuple(sorted(found))


def build_grammar(phrases: PhraseSet, fillers: Iterable[str], phrase_weight: int = 1) -> list[str]:
    """Vosk grammar lines: each phrase ``phrase_weight`` times, then each filler once."""
    lines = [p.lower() for p in phrases.all_phrases()] * max(1, phrase_weight)
    return lines + list(fillers)

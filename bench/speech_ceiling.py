"""The most any rule on the recogniser's output could detect: a ceiling for voice SOS.

Reads what ``bench/speech.py --save FILE`` kept (every transcript the recogniser returned for
each labelled utterance) and asks, for each utterance, the loosest question a spotter could ask
of it: does an SOS phrase appear *anywhere* in what the recogniser reported — its best
hypothesis, any of its alternatives, or the words of its partial results — with Korean spacing
ignored, polite endings folded as the spotter folds them and ``[unk]`` removed (so a phrase may
even span a filler)? No spotter or decision rule built on these transcripts can detect an SOS
utterance this says no to; it would also raise an SOS for every distractor this says yes to.

    python bench/speech.py --filler-count 0 --alternatives 8 --alternative-margin 1000 \\
        --loop-hours 0 --save run.pkl      # the most permissive decoding the bench offers
    python bench/speech_ceiling.py run.pkl

The last line printed is one JSON object: per condition, SOS utterances and how many reached
the ceiling, distractors and how many would be an SOS at it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speech import load_saved
from edge_agent.spotter import normalise
from edge_agent.transcript import Transcript
from firmware_config.phrases import load_phrase_set


def texts(t: Transcript) -> list[str]:
    """Everything the recogniser reported for one utterance, as texts."""
    out = [t.text, *(a.text for a in t.alternatives)]
    if t.also_heard:
        out.append(" ".join(t.also_heard))
    return out


def heard_sos(outcome: Any, sos: list[str], language: str) -> bool:
    for transcript in outcome.transcripts:
        for text in texts(transcript):
            folded = normalise(text, language)
            if any(p in folded for p in sos):
                return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved", type=Path, help="a file written by bench/speech.py --save")
    parser.add_argument("--language", default="ko")
    args = parser.parse_args(argv)
    saved = load_saved(args.saved)
    phrases = load_phrase_set(args.language)
    sos = [normalise(p, args.language) for p in phrases.sos]
    by_cond: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item, outcome in saved["outcomes"]:
        if item.cls not in ("sos", "none"):
            continue
        row = by_cond[item.cond]
        row[f"n_{item.cls}"] += 1
        if heard_sos(outcome, sos, args.language):
            row["sos_ceiling" if item.cls == "sos" else "none_as_sos_at_ceiling"] += 1
    result: dict[str, Any] = {"by_cond": {}}
    for cond, row in by_cond.items():
        n_sos, n_none = row["n_sos"], row["n_none"]
        result["by_cond"][cond] = {
            "n_sos": n_sos,
            "sos_ceiling": row["sos_ceiling"],
            "sos_ceiling_rate": round(row["sos_ceiling"] / n_sos, 3) if n_sos else None,
            "n_none": n_none,
            "none_as_sos_at_ceiling": row["none_as_sos_at_ceiling"],
        }
    result["saved"] = str(args.saved)
    result["meaning"] = (
        "an SOS phrase anywhere in the best hypothesis, an alternative or the partial results; "
        "[unk] removed; no rule on these transcripts detects more"
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

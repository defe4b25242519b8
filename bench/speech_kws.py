"""Voice SOS by a keyword classifier on Google's speech embedding (openWakeWord's design), measured.

The classifier does not depend on Vosk hearing the words: it is a small head (logistic regression
or one hidden layer, numpy) on 16 consecutive 96-number embeddings (``edge_agent.speech_embedding``,
one every 80 ms; 16 of them span about 2 s), trained **only on dev material**: the SOS phrases
spoken by the dev voices (ko, ko+f3, ko+m3) at more speeds and pitches than the bench uses, clean
and with pink / brown / babble noise at 20, 10 and 0 dB (babble of dev sentences), against the
dev (even-numbered) distractor sentences, the cancel, wake and yes phrases and noise alone, all in
dev voices. Every embedding is made as the agent makes it, by the stream (``stream_embed``): a
batch ``embed()`` of a whole clip differs from it (in silence, and by a few frames' alignment).

Hard negatives are mined: each head is trained, scores a stretch of continuous dev talk (two or
three dev sentences in a row, any condition, ``--mine-hours``), and is trained again with the talk
windows it scored highest added as weighted negatives (``--mine-rounds`` times). A fold's head
mines only the other folds' talk. Thresholds are chosen on the bench's dev split and that talk,
scored out of fold (each dev item by a head trained without its voice, or its sentence); figures
are reported on the **test** split (voices ko+f2, ko+f4; odd sentences) and on the continuous loop
of test sentences.

    python bench/speech.py --save run.pkl          # the Vosk path's outcomes (and the loop's)
    python bench/speech_kws.py --vosk run.pkl      # classifier alone, AND, OR, on the same items
    python bench/speech_kws.py --quick             # a small set, no Vosk (~3 min)
    python bench/speech_kws.py --target wake       # a head for the wake word 안부야 instead

With ``--target wake`` the wake word is the positive and the SOS, cancel and yes phrases are
negatives; its false hits (in sentences and the loop) are false wakes.

Progress goes to stderr; the last line is one JSON object with the figures and their conditions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speech import Item, Outcome, build_set, load_saved, loop_stream, none_split
from bench.speech_corpus import (
    CANCEL_TEXTS,
    CONDITIONS,
    NOISES,
    NONE_TEXTS,
    SOS_TEXTS,
    VOICES,
    WAKE_TEXTS,
    YES_TEXTS,
    Synth,
    mix,
    pad,
)
from edge_agent.kws import CONTEXT, KeywordHead, stack
from edge_agent.speech_embedding import (
    EMBEDDING_DIM,
    FIRST_END_S,
    RATE_HZ,
    STEP_S,
    EmbeddingStream,
    SpeechEmbedding,
    stream_embed,
)
from edge_agent.voice_sos import Action

Floats = npt.NDArray[np.float32]
DEV_VOICES = [v for i, v in enumerate(VOICES) if i % 2 == 0]  # ko, ko+f3, ko+m3 (bench's dev)
SPEEDS = (120, 140, 160, 180)
PITCHES = (30, 50, 70)
MERGE_S = 3.0
"""Detections closer than this are one event (one SOS per call for help)."""


def embedding_ends(n: int) -> npt.NDArray[np.float64]:
    """Audio times at which the stream's first ``n`` embeddings end."""
    return np.asarray(FIRST_END_S + np.arange(n) * STEP_S, np.float64)


# --- the head -----------------------------------------------------------------------------------


def fit(
    x: Floats,
    y: npt.NDArray[np.float32],
    hidden: int,
    l2: float,
    steps: int,
    seed: int,
    weight: npt.NDArray[np.float32] | None = None,
) -> KeywordHead:
    """Full-batch Adam on class-balanced log loss with L2 (``weight``: per window, within its
    class)."""
    rng = np.random.default_rng(seed)
    mean, std = x.mean(0), x.std(0) + 1e-3
    z = ((x - mean) / std).astype(np.float32)
    w = np.ones(len(y), np.float32) if weight is None else weight
    wpos = 0.5 / max(1.0, float(w[y > 0].sum()))
    wneg = 0.5 / max(1.0, float(w[y == 0].sum()))
    sw = (w * np.where(y > 0, wpos, wneg)).astype(np.float32)
    d = z.shape[1]
    params = {
        "w1": (rng.normal(0, 1 / np.sqrt(d), (d, hidden)) if hidden else np.zeros((d, 0))),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0, 1 / np.sqrt(max(hidden, d)), hidden or d) * (1 if hidden else 0),
        "b2": np.zeros(1),
    }
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p32.items()}
    v2 = {k: np.zeros_like(v) for k, v in p32.items()}
    lr = 3e-3
    for t in range(1, steps + 1):
        if hidden:
            a = z @ p32["w1"] + p32["b1"]
            h = np.maximum(a, 0)
        else:
            h = z
        logit = h @ p32["w2"] + p32["b2"][0]
        p = 1 / (1 + np.exp(-logit))
        g = (p - y) * sw  # d loss / d logit
        grads = {"w2": h.T @ g + l2 * p32["w2"], "b2": np.array([g.sum()], np.float32)}
        if hidden:
            gh = np.outer(g, p32["w2"]) * (a > 0)
            grads["w1"] = z.T @ gh + l2 * p32["w1"]
            grads["b1"] = gh.sum(0)
        for k, gk in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * gk
            v2[k] = 0.999 * v2[k] + 0.001 * gk * gk
            p32[k] -= lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(v2[k] / (1 - 0.999**t)) + 1e-8)
    return KeywordHead(mean, std, p32["w1"], p32["b1"], p32["w2"], float(p32["b2"][0]))


# --- dev training material ----------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    audio: bytes
    positive: bool
    speech_start_s: float
    speech_end_s: float
    fold: int
    """Which of the three dev folds holds it out (its dev voice; a sentence's index)."""


TARGETS = {"sos": SOS_TEXTS, "wake": WAKE_TEXTS}
"""What a head can be trained to spot: the SOS phrases, or the wake word."""


def training_clips(
    synth: Synth,
    prosodies: int,
    seed: int = 5,
    target: str = "sos",
    extra_conds: tuple[str, ...] = (),
) -> Iterator[Clip]:
    """Dev voices only, dev (even) sentences only; never a test voice or an odd sentence. The
    ``target`` phrases are the positives, the other phrases (SOS, cancel, wake, yes) negatives.
    Each phrase utterance is mixed once per condition, and once more for each of ``extra_conds``
    (another noise, another seed): positives and phrase negatives alike, so that noise itself
    does not become a sign of the target. The extra mixes draw from the same random stream, so
    the noises and prosodies after them are not those of a run without them."""
    rng = random.Random(seed)
    grid = list(itertools.product(SPEEDS, PITCHES))
    dev_sentences = [(i, t) for i, t in enumerate(NONE_TEXTS) if none_split(i) == "dev"]
    babble_pool = [
        pad(synth.speak(t, *DEV_VOICES[i % 3])) for i, (_, t) in enumerate(dev_sentences)
    ]

    def noisy(speech: bytes, conds: Iterable[str]) -> Iterator[bytes]:
        padded = pad(speech)
        for cond in conds:
            noise = rng.choice(NOISES)
            babble = rng.sample(babble_pool, 3) if noise == "babble" else None
            yield mix(padded, cond, noise, synth, rng.randrange(1 << 30), babble)

    others = tuple(
        t for t in SOS_TEXTS + CANCEL_TEXTS + WAKE_TEXTS + YES_TEXTS if t not in TARGETS[target]
    )
    phrase_sets = [(TARGETS[target], True), (others, False)]
    for texts, positive in phrase_sets:
        for text in texts:
            for fold, (voice, _, _) in enumerate(DEV_VOICES):
                for speed, pitch in rng.sample(grid, prosodies):
                    speech = synth.speak(text, voice, speed, pitch)
                    end = 1.0 + len(speech) / (2 * RATE_HZ)
                    for audio in noisy(speech, CONDITIONS + extra_conds):
                        yield Clip(audio, positive, 1.0, end, fold)
    for k, (i, text) in enumerate(dev_sentences):
        for voice, _, _ in DEV_VOICES:
            speed, pitch = rng.choice(grid)
            speech = synth.speak(text, voice, speed, pitch)
            end = 1.0 + len(speech) / (2 * RATE_HZ)
            for audio in noisy(speech, rng.sample(CONDITIONS, 2)):
                yield Clip(audio, False, 1.0, end, (i // 2) % 3)
        if k % 20 == 0:
            print(f"  training material: sentence {k} of {len(dev_sentences)}", file=sys.stderr)
    for k in range(12):
        kind = NOISES[k % 3]
        silence = bytes(2 * RATE_HZ * 6)
        babble = rng.sample(babble_pool, 3) if kind == "babble" else None
        # noise alone: the 0 dB level of a typical sentence
        ref = pad(synth.speak(dev_sentences[k][1], *DEV_VOICES[k % 3]), 0, 0)
        audio = mix(ref + silence, "0dB", kind, synth, 900 + k, babble)[len(ref) :]
        yield Clip(audio, False, 0.0, 0.0, k % 3)


def talk_clips(synth: Synth, hours: float, seed: int = 7) -> Iterator[Clip]:
    """Continuous talk to mine false alarms from: two or three dev sentences in a row, 0.3-2 s
    apart, in one dev voice at a random speed and pitch, in any condition (0 dB too), until
    ``hours`` of audio. Its fold is that of the clip's first sentence; the other sentences are
    of the same fold, so a fold's head never trains on what it is scored on."""
    rng = random.Random(seed)
    grid = list(itertools.product(SPEEDS, PITCHES))
    by_fold: list[list[str]] = [[], [], []]
    for i, t in enumerate(NONE_TEXTS):
        if none_split(i) == "dev":
            by_fold[(i // 2) % 3].append(t)
    everyone = [t for texts in by_fold for t in texts]
    babble_pool = [pad(synth.speak(t, *DEV_VOICES[i % 3])) for i, t in enumerate(everyone)]
    total, n = 0.0, 0
    while total < hours * 3600:
        fold = n % 3
        voice = DEV_VOICES[rng.randrange(3)][0]
        speed, pitch = rng.choice(grid)
        parts = [
            synth.speak(t, voice, speed, pitch) + bytes(2 * int(RATE_HZ * rng.uniform(0.3, 2.0)))
            for t in rng.sample(by_fold[fold], rng.choice((2, 3)))
        ]
        cond = rng.choice(("clean", "clean", *CONDITIONS[1:]))
        noise = rng.choice(NOISES)
        babble = rng.sample(babble_pool, 3) if noise == "babble" else None
        seed_n = rng.randrange(1 << 30)
        audio = mix(pad(b"".join(parts), 0.5, 0.0), cond, noise, synth, seed_n, babble)
        total += len(audio) / (2 * RATE_HZ)
        n += 1
        if n % 100 == 0:
            print(f"  talk to mine: {total / 3600:.2f} of {hours:g} h", file=sys.stderr)
        yield Clip(audio, False, 0.0, 0.0, fold)


def talk_windows(
    emb: SpeechEmbedding, clips: Iterable[Clip]
) -> tuple[Floats, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every window of each clip, its fold and the clip's number (for counting events)."""
    xs, fs, cs = [], [], []
    for n, c in enumerate(clips):
        xs.append(stack(stream_embed(emb, c.audio)))
        fs.append(np.full(len(xs[-1]), c.fold))
        cs.append(np.full(len(xs[-1]), n))
    return np.concatenate(xs), np.concatenate(fs), np.concatenate(cs)


def train_mined(
    x: Floats,
    y: npt.NDArray[np.float32],
    tx: Floats,
    args: argparse.Namespace,
    seed: int,
) -> KeywordHead:
    """A head trained on ``x``, then ``args.mine_rounds`` times again with the windows of the
    talk ``tx`` it scored highest added as negatives (weighted ``args.mine_weight``)."""
    head = fit(x, y, args.hidden, args.l2, args.steps, seed)
    hard = np.zeros(len(tx), bool)
    for _ in range(args.mine_rounds):
        scores = head.score(tx)
        hard |= scores >= args.mine_above
        top = np.argsort(scores)[-args.mine_top :]
        hard[top[scores[top] > 0.01]] = True
        xa = np.concatenate([x, tx[hard]])
        ya = np.concatenate([y, np.zeros(int(hard.sum()), np.float32)])
        wa = np.concatenate(
            [np.ones(len(y), np.float32), np.full(int(hard.sum()), args.mine_weight, np.float32)]
        )
        head = fit(xa, ya, args.hidden, args.l2, args.steps, seed, wa)
    return head


def windows(
    emb: SpeechEmbedding, clips: Iterable[Clip]
) -> tuple[Floats, npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Classifier inputs (streamed embeddings, stacked), labels and folds: an SOS clip gives
    positives at the windows ending up to 0.1 s before and 0.6 s after its speech (and negatives
    before its speech starts); a negative clip gives every other window."""
    xs, ys, fs = [], [], []
    for c in clips:
        x = stack(stream_embed(emb, c.audio))
        ends = embedding_ends(len(x))
        if c.positive:
            pos = (ends >= c.speech_end_s - 0.1) & (ends <= c.speech_end_s + 0.6)
            neg = ends <= c.speech_start_s + 0.15
            keep = pos | neg
            xs.append(x[keep])
            ys.append(pos[keep].astype(np.float32))
        else:
            x = x[::2]
            xs.append(x)
            ys.append(np.zeros(len(x), np.float32))
        fs.append(np.full(len(xs[-1]), c.fold))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(fs)


# --- scoring the bench's items and loop ---------------------------------------------------------


def item_fold(item: Item) -> int:
    """The dev fold that holds ``item`` out: its voice for phrases, its sentence for the rest."""
    _, text, voice, _, _ = item.label.split(":", 4)
    if item.cls == "none":
        return (NONE_TEXTS.index(text) // 2) % 3
    return [v[0] for v in DEV_VOICES].index(voice)


def item_score(heads: list[KeywordHead], x: Floats, item: Item) -> float:
    """The highest score in the item (for an SOS, before the resident's 네 could count)."""
    ends = embedding_ends(len(x))
    if item.answer_at_s is not None:
        x = x[ends <= item.answer_at_s + 0.2]
    return float(max(float(h.score(x).max()) for h in heads)) if len(x) else 0.0


def score_before(head: KeywordHead, x: Floats, at_s: float | None, window_s: float = 3.0) -> float:
    """What the agent's verifier knows when the recogniser's SOS comes at ``at_s``: the highest
    score of the ``window_s`` before it (no look-ahead)."""
    if at_s is None or len(x) == 0:
        return 0.0
    ends = embedding_ends(len(x))
    sel = x[(ends <= at_s) & (ends >= at_s - window_s)]
    return float(head.score(sel).max()) if len(sel) else 0.0


def events(times: npt.NDArray[np.float64], scores: Floats, threshold: float) -> list[float]:
    """Times the score first reaches ``threshold``, one per ``MERGE_S``."""
    out: list[float] = []
    for t, s in zip(times, scores, strict=True):
        if s >= threshold and (not out or t - out[-1] > MERGE_S):
            out.append(float(t))
    return out


def merged(a: Iterable[float], b: Iterable[float]) -> list[float]:
    out: list[float] = []
    for t in sorted([*a, *b]):
        if not out or t - out[-1] > MERGE_S:
            out.append(t)
    return out


def zero_false_threshold(neg_scores: Iterable[float]) -> float:
    """Just above the highest negative score (no dev false SOS)."""
    top = max(neg_scores, default=0.5)
    return float(min(0.999999, top + (1 - top) * 0.1))


def rate_threshold(neg_scores: list[float], rate: float) -> float:
    """The threshold at which ``rate`` of the negatives score at or above it."""
    s = sorted(neg_scores, reverse=True)
    k = int(rate * len(s))
    return float(s[k]) + 1e-6 if k < len(s) else 0.0


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vosk", type=Path, help="bench/speech.py --save pickle (items + outcomes)")
    p.add_argument("--quick", action="store_true", help="small set, fewer prosodies, no Vosk")
    p.add_argument(
        "--target",
        choices=sorted(TARGETS),
        default="sos",
        help="what the head spots: the SOS phrases, or the wake word (false hits: false wakes)",
    )
    p.add_argument(
        "--prosodies",
        type=int,
        default=None,
        help="speed/pitch pairs per phrase+voice (default 6; 12 for the one wake phrase)",
    )
    p.add_argument("--hidden", type=int, default=32, help="hidden units (0: logistic regression)")
    p.add_argument("--l2", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--loop-hours", type=float, default=None, help="default: the pickle's loop")
    p.add_argument("--mine-hours", type=float, default=2.0, help="dev talk to mine false SOS from")
    p.add_argument("--mine-rounds", type=int, default=2)
    p.add_argument("--mine-top", type=int, default=3000, help="windows added per round (at most)")
    p.add_argument("--mine-above", type=float, default=0.5, help="and all scoring this or more")
    p.add_argument("--mine-weight", type=float, default=4.0)
    p.add_argument(
        "--talk-rate",
        type=float,
        default=1.0,
        help="the detect threshold lets this many dev talk clips per hour of it score at or "
        "above it (out of fold); when that is under one clip in the talk (whose windows cover "
        "a little less than --mine-hours) it is the zero-talk-false threshold",
    )
    p.add_argument(
        "--extra-conds",
        default="",
        help="comma-separated conditions (e.g. 0dB,0dB) in which each phrase utterance is "
        "mixed once more each, beyond one mix per condition (default: none)",
    )
    p.add_argument("--save-head", type=Path, help="write the final head here (.npz, for the agent)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "anbu-speech")
    args = p.parse_args(argv)
    target = args.target
    extra_conds = tuple(c for c in args.extra_conds.split(",") if c)
    if unknown := [c for c in extra_conds if c not in CONDITIONS]:
        p.error(f"--extra-conds: unknown condition(s) {unknown}; known: {list(CONDITIONS)}")
    if args.prosodies is None:
        args.prosodies = 6 if target == "sos" else len(SPEEDS) * len(PITCHES)
    if target != "sos" and args.vosk:
        p.error("--vosk compares with the recogniser's SOS: it needs --target sos")
    wall0 = time.monotonic()
    synth = Synth(args.cache)

    outcomes: list[tuple[Item, Outcome | None]]
    vosk_loop: Outcome | None = None
    if args.vosk:
        saved = load_saved(args.vosk)
        outcomes = list(saved["outcomes"])
        vosk_loop = saved["loop"]
    else:
        n_none = 40 if args.quick else len(NONE_TEXTS)
        outcomes = [(i, None) for i in build_set(synth, 5, CONDITIONS, NOISES, n_none)]
    if args.quick:
        args.prosodies = min(args.prosodies, 2)
        args.mine_hours = min(args.mine_hours, 0.25)
    loop_h = args.loop_hours
    if loop_h is None:
        loop_h = 1.0 if vosk_loop is not None else (0.05 if args.quick else 1.0)
    print(f"{len(outcomes)} labelled utterances", file=sys.stderr)

    rss0 = _rss_mib()
    t0 = time.monotonic()
    emb = SpeechEmbedding.from_openwakeword()
    load_s = time.monotonic() - t0
    rss_models = _rss_mib() - rss0

    t0 = time.monotonic()
    x, y, folds = windows(
        emb, training_clips(synth, args.prosodies, target=target, extra_conds=extra_conds)
    )
    print(
        f"training windows: {len(y)} ({int(y.sum())} positive), {time.monotonic() - t0:.0f} s",
        file=sys.stderr,
    )
    t0 = time.monotonic()
    tx, tfold, tclip = talk_windows(emb, talk_clips(synth, args.mine_hours))
    talk_h = len(tx) * STEP_S / 3600
    print(f"talk to mine: {len(tx)} windows, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    t0 = time.monotonic()
    fold_heads = [
        train_mined(x[folds != k], y[folds != k], tx[tfold != k], args, seed=k) for k in range(3)
    ]
    final = train_mined(x, y, tx, args, seed=3)
    train_s = time.monotonic() - t0
    print(f"4 heads trained in {train_s:.0f} s", file=sys.stderr)
    del x
    # the talk, each fold's part scored by the head that did not train on it
    talk_scores = np.zeros(len(tx), np.float32)
    for k in range(3):
        talk_scores[tfold == k] = fold_heads[k].score(tx[tfold == k])
    talk_max = [float(talk_scores[tclip == c].max()) for c in np.unique(tclip)]
    del tx

    # every labelled item: dev items scored out of fold, test items by the final head
    cpu0 = time.process_time()
    audio_s = 0.0
    scored: list[tuple[Item, Outcome | None, float]] = []
    at_vosk: list[float] = []
    """Per item: the head's score in the 3 s before the Vosk path's first SOS decision."""
    for n, (item, outcome) in enumerate(outcomes):
        feats = stack(stream_embed(emb, item.audio))
        audio_s += len(item.audio) / (2 * RATE_HZ)
        head = fold_heads[item_fold(item)] if item.split == "dev" else final
        scored.append((item, outcome, item_score([head], feats, item)))
        first = outcome.first_sos_at() if outcome is not None else None
        at_vosk.append(score_before(head, feats, first))
        if n % 200 == 0:
            print(f"  scored {n} of {len(outcomes)}", file=sys.stderr)
    batch_cpu_pct = 100 * (time.process_time() - cpu0) / audio_s

    dev = [(i, s) for i, _, s in scored if i.split == "dev"]
    dev_neg = [s for i, s in dev if i.cls != target]
    talk_key = f"dev_talk_{args.talk_rate:g}_per_h"
    verify_key = f"verify_dev_{target}_95pct"
    thresholds = {
        "zero_dev_false": zero_false_threshold(dev_neg + talk_max),
        "dev_false_1pct": rate_threshold(dev_neg, 0.01),
        # --talk-rate talk clips per hour of dev talk scoring at or above it (out of fold)
        talk_key: rate_threshold(talk_max, args.talk_rate * talk_h / max(1, len(talk_max))),
        # the verifier: keeps 95 % of the dev positives (out of fold)
        verify_key: float(np.quantile([s for i, s in dev if i.cls == target], 0.05)),
    }
    # a hit asks first; it must be rare in dev talk as well as among dev sentences
    thresholds["detect"] = max(thresholds["dev_false_1pct"], thresholds[talk_key])
    print(json.dumps(thresholds), file=sys.stderr)
    if args.save_head:
        final.threshold = thresholds[verify_key]
        final.detect_threshold = thresholds["detect"]
        final.strong_threshold = max(thresholds["zero_dev_false"], final.detect_threshold)
        final.save(args.save_head)

    def vosk_sos(item: Item, outcome: Outcome | None) -> bool | None:
        return None if outcome is None else outcome.sos_before(item.answer_at_s)

    designs: dict[str, Any] = {
        "classifier alone (zero dev false)": lambda v, s: s >= thresholds["zero_dev_false"],
        "classifier alone (1 % dev false)": lambda v, s: s >= thresholds["dev_false_1pct"],
        f"classifier alone ({args.talk_rate:g} per hour of dev talk)": lambda v, s: (
            s >= thresholds[talk_key]
        ),
        "classifier alone (detect: the saved head's)": lambda v, s: s >= thresholds["detect"],
    }
    if vosk_loop is not None:
        designs |= {
            "Vosk path (agent today)": lambda v, s: v,
            # s is here the score in the 3 s before the Vosk decision (see table())
            "Vosk AND classifier (verifier)": lambda v, s: v and s >= thresholds[verify_key],
            "Vosk OR classifier-strong": lambda v, s: v or s >= thresholds["zero_dev_false"],
        }

    def table(split: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, rule in designs.items():
            rows: dict[str, Any] = {}
            for cond in CONDITIONS:
                sel = [
                    (i, o, sv if "AND" in name else s)
                    for (i, o, s), sv in zip(scored, at_vosk, strict=True)
                    if i.split == split and i.cond == cond
                ]
                hit = {
                    c: [rule(vosk_sos(i, o), s) for i, o, s in sel if i.cls == c]
                    for c in ("sos", "none", "cancel", "wake")
                }
                t = hit[target]
                rows[cond] = {
                    f"{target}_detected": f"{sum(t)}/{len(t)}",
                    f"{target}_detected_rate": round(sum(t) / max(1, len(t)), 3),
                    f"false_{target}_sentences": f"{sum(hit['none'])}/{len(hit['none'])}",
                } | {
                    f"{c}_as_{target}": f"{sum(hit[c])}/{len(hit[c])}"
                    for c in ("sos", "cancel", "wake")
                    if c != target
                }
            out[name] = rows
        return out

    test_table, dev_table = table("test"), table("dev")
    print(json.dumps(test_table, ensure_ascii=False), file=sys.stderr)

    # the continuous loop of test sentences, embedded as a device would (block by block)
    # scored a unit at a time, with the 15 embeddings before it as context (= stack() of the
    # whole stream, without holding a long loop's inputs in memory)
    stream = EmbeddingStream(emb)
    context = np.zeros((0, EMBEDDING_DIM), np.float32)
    chunks: list[Floats] = []
    n_emb = 0
    cpu0, t0 = time.process_time(), time.monotonic()
    total_s, shown = 0.0, 0.0
    for unit in loop_stream(synth, loop_h):
        new = [stream.accept(unit[i : i + 3200]) for i in range(0, len(unit), 3200)]  # 100 ms
        e = np.concatenate(new)
        if len(e):
            chunks.append(final.score(stack(np.concatenate([context, e]))[len(context) :]))
            context = np.concatenate([context, e])[-(CONTEXT - 1) :]
            n_emb += len(e)
        total_s += len(unit) / (2 * RATE_HZ)
        if total_s - shown >= 600:
            shown = total_s
            print(
                f"  loop: {shown / 3600:.2f} of {loop_h:g} h, {time.monotonic() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    stream_cpu_pct = 100 * (time.process_time() - cpu0) / total_s
    loop_scores = np.concatenate(chunks)
    loop_times = embedding_ends(n_emb)
    loop_h_measured = total_s / 3600
    loop: dict[str, Any] = {"audio_h": round(loop_h_measured, 3), "sentences": "test split"}
    for name, key in (
        ("zero dev false", "zero_dev_false"),
        ("1 % dev false", "dev_false_1pct"),
        (f"{args.talk_rate:g} per hour of dev talk", talk_key),
        ("detect: the saved head's", "detect"),
    ):
        ev = events(loop_times, loop_scores, thresholds[key])
        loop[f"classifier alone ({name})"] = {
            f"false_{target}": len(ev),
            f"false_{target}_per_hour": round(len(ev) / loop_h_measured, 2),
        }
    if vosk_loop is not None:
        sent = [t for d, t in vosk_loop.decisions if d.action is Action.SEND]
        near = [
            float(loop_scores[(loop_times >= t - 3.0) & (loop_times <= t)].max(initial=0))
            for t in sent
        ]
        verified = [t for t, s in zip(sent, near, strict=True) if s >= thresholds[verify_key]]
        strong = events(loop_times, loop_scores, thresholds["zero_dev_false"])
        for name, ev in (
            ("Vosk path (agent today)", sent),
            ("Vosk AND classifier (verifier)", verified),
            ("Vosk OR classifier-strong", merged(sent, strong)),
        ):
            loop[name] = {
                "false_sos": len(ev),
                "false_sos_per_hour": round(len(ev) / loop_h_measured, 2),
            }
        loop["classifier score at the Vosk path's false SOS"] = [round(s, 3) for s in near]
    print(json.dumps(loop, ensure_ascii=False), file=sys.stderr)

    out = {
        "bench": "speech_kws",
        "speech": "espeak-ng synthetic Korean; trained on dev voices/sentences, reported on test",
        "target": target,
        "goals": (
            {"sos_clean": 0.95, "sos_10dB": 0.90, "sos_0dB": 0.70, "false_sos_per_hour": 0.1}
            if target == "sos"
            else {"wake": 0.90}
        ),
        "test_split": test_table,
        "dev_split_out_of_fold": dev_table,
        "continuous": loop,
        "thresholds": {k: round(v, 6) for k, v in thresholds.items()},
        "cost": {
            "embedding_cpu_pct_of_one_core_streaming_100ms_blocks": round(stream_cpu_pct, 2),
            "embedding_cpu_pct_of_one_core_batch": round(batch_cpu_pct, 2),
            "models_rss_mib": round(rss_models, 1),
            "models_load_s": round(load_s, 2),
            "head_parameters": int(final.w1.size + final.b1.size + final.w2.size + 1),
            "peak_rss_mib": round(_rss_mib(), 1),
        },
        "conditions": {
            "embedding": "openwakeword 0.5.1 melspectrogram.onnx + embedding_model.onnx, "
            "onnxruntime CPU, 1 thread",
            "head": f"{CONTEXT} embeddings, hidden {args.hidden}, l2 {args.l2}, "
            f"{args.steps} Adam steps",
            "training": f"dev voices {[v[0] for v in DEV_VOICES]}, "
            f"{args.prosodies} speed/pitch pairs "
            f"of {SPEEDS}×{PITCHES} per phrase, clean+20/10/0 dB"
            f"{' + ' + '+'.join(extra_conds) if extra_conds else ''}; dev sentences; "
            f"{len(y)} windows ({int(y.sum())} positive)",
            "vosk_outcomes": str(args.vosk) if args.vosk else None,
            "utterances": len(outcomes),
            "merge_s": MERGE_S,
            "train_s": round(train_s, 1),
            "wall_s": round(time.monotonic() - wall0, 1),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
            "load": os.getloadavg(),
        },
    }
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

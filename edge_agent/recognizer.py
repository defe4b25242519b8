"""Offline speech recognition: the ``Recognizer`` protocol and its Vosk adapter.

The Vosk model is a directory of files copied onto the device. Before it is loaded it is checked:

* it matches its checksum manifest (``anbu-manifest.json``: ``{"model", "created_at", "files":
  {relative path: sha256}}``), so a truncated copy or a swapped model is caught at start-up
  rather than by a resident whose call for help is never recognised;
* it has a *dynamic* graph (``graph/HCLr.fst`` + ``graph/Gr.fst``, no ``graph/HCLG.fst``), because
  only such models honour a runtime grammar — big models with a static graph ignore it;
* every word of the phrase set is in its vocabulary (``graph/words.txt``, or the output symbol
  table of ``graph/Gr.fst`` when there is no words.txt: see :mod:`edge_agent.vocabulary`); Vosk
  silently drops grammar words it does not know;
* the model's language is the phrase set's: the language the manifest declares (recorded by
  ``anbu agent write-manifest``) and the script most of its words are written in must both match.

The model is only ever loaded from a path (``vosk.Model(path)``): ``vosk.Model(lang=...)`` would
try to download one.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from edge_agent.grammar import build_grammar, competitor_words, filler_words
from edge_agent.loudness import measure as measure_loudness
from edge_agent.transcript import UNKNOWN, Transcript, Word
from edge_agent.vocabulary import VocabularyError, infer_language, read_model_vocabulary
from firmware_config.phrases import PhraseSet

log = logging.getLogger("anbu.agent.recognizer")

MANIFEST_NAME = "anbu-manifest.json"
"""Default manifest file name, inside the model directory."""

DYNAMIC_GRAPH = ("graph/HCLr.fst", "graph/Gr.fst")
STATIC_GRAPH = "graph/HCLG.fst"
ACOUSTIC_MODEL = "am/final.mdl"
SAMPLE_RATE_HZ = 16000

_WRITE_MANIFEST_HINT = (
    "If this model is the one you mean to use (copied from a trusted source), record its "
    "checksums with `anbu agent write-manifest`; otherwise copy the model onto the device again."
)


class ModelError(RuntimeError):
    """The speech model is missing, damaged or unsuitable; the message says what to do."""


class Recognizer(Protocol):
    """Turns 16 kHz mono int16 audio into transcripts."""

    def accept(self, block: bytes) -> Transcript | str | None:
        """Feed audio; returns a final transcript when the recogniser detects an endpoint."""
        ...

    def flush(self) -> Transcript | str | None:
        """The segment is over: the transcript of whatever is left, and start afresh."""
        ...

    def reset(self) -> None:
        """Drop any partial utterance."""
        ...


# --- manifest -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    model: str
    created_at: str
    files: dict[str, str]
    """Relative POSIX path → SHA-256 hex digest."""
    language: str | None = None
    """The language the model recognises, as declared when the manifest was written."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(model_dir: Path, manifest_path: Path) -> Iterator[str]:
    skip = manifest_path.resolve()
    for root, dirs, files in os.walk(model_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            if path.resolve() != skip:
                yield path.relative_to(model_dir).as_posix()


def default_manifest_path(model_dir: Path) -> Path:
    return Path(model_dir) / MANIFEST_NAME


def write_manifest(
    model_dir: Path,
    manifest_path: Path | None = None,
    now: datetime | None = None,
    language: str | None = None,
) -> Manifest:
    """Record the SHA-256 of every file under ``model_dir`` (except the manifest itself) and the
    model's language (``language``, else what its vocabulary is written in)."""
    model_dir = Path(model_dir)
    manifest_path = Path(manifest_path or default_manifest_path(model_dir))
    if not model_dir.is_dir():
        raise ModelError(f"speech model directory {model_dir} does not exist")
    files = {rel: _sha256(model_dir / rel) for rel in _model_files(model_dir, manifest_path)}
    if not files:
        raise ModelError(f"speech model directory {model_dir} is empty")
    if language is None:
        try:
            language = infer_language(read_model_vocabulary(model_dir)[0])
        except VocabularyError:
            language = None
    manifest = Manifest(
        model=model_dir.name,
        created_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        files=files,
        language=language,
    )
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_name(manifest_path.name + ".tmp")
    tmp.write_text(
        json.dumps(
            {
                "model": manifest.model,
                "language": manifest.language,
                "created_at": manifest.created_at,
                "files": files,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    tmp.replace(manifest_path)
    return manifest


def read_manifest(manifest_path: Path) -> Manifest:
    try:
        data = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(
            f"speech model manifest {manifest_path} does not exist. {_WRITE_MANIFEST_HINT}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"speech model manifest {manifest_path} is unreadable ({exc}). {_WRITE_MANIFEST_HINT}"
        ) from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ModelError(
            f'speech model manifest {manifest_path} has no valid "files" table. '
            f"{_WRITE_MANIFEST_HINT}"
        )
    language = data.get("language")
    return Manifest(
        str(data.get("model", "")),
        str(data.get("created_at", "")),
        dict(files),
        language if isinstance(language, str) and language else None,
    )


@dataclass(frozen=True, slots=True)
class ManifestProblems:
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.changed)

    def describe(self, limit: int = 5) -> str:
        parts = []
        for what, names in (
            ("missing", self.missing),
            ("not in the manifest", self.extra),
            ("changed", self.changed),
        ):
            if names:
                shown = ", ".join(names[:limit]) + (
                    f" and {len(names) - limit} more" if len(names) > limit else ""
                )
                parts.append(f"{len(names)} file(s) {what}: {shown}")
        return "; ".join(parts)


def compare_manifest(model_dir: Path, manifest: Manifest, manifest_path: Path) -> ManifestProblems:
    present = set(_model_files(Path(model_dir), Path(manifest_path)))
    expected = set(manifest.files)
    changed = tuple(
        rel
        for rel in sorted(present & expected)
        if _sha256(Path(model_dir) / rel) != manifest.files[rel].lower()
    )
    return ManifestProblems(
        missing=tuple(sorted(expected - present)),
        extra=tuple(sorted(present - expected)),
        changed=changed,
    )


def verify_manifest(model_dir: Path, manifest_path: Path | None = None) -> Manifest:
    """Raise :class:`ModelError` unless ``model_dir`` holds exactly the files of its manifest."""
    model_dir = Path(model_dir)
    manifest_path = Path(manifest_path or default_manifest_path(model_dir))
    if not model_dir.is_dir():
        raise ModelError(
            f"speech model directory {model_dir} does not exist; copy the model there (or fix "
            "voice.model_path in the agent configuration)"
        )
    manifest = read_manifest(manifest_path)
    problems = compare_manifest(model_dir, manifest, manifest_path)
    if problems:
        raise ModelError(
            f"speech model {model_dir} does not match its manifest {manifest_path}: "
            f"{problems.describe()}. {_WRITE_MANIFEST_HINT}"
        )
    return manifest


# --- suitability --------------------------------------------------------------------------------


def has_dynamic_graph(model_dir: Path) -> bool:
    """True when Vosk will use ``HCLr.fst`` + ``Gr.fst`` (and so honour a runtime grammar)."""
    model_dir = Path(model_dir)
    return (
        all((model_dir / p).is_file() for p in DYNAMIC_GRAPH)
        and not (model_dir / STATIC_GRAPH).exists()
    )


def check_dynamic_graph(model_dir: Path) -> None:
    model_dir = Path(model_dir)
    if not (model_dir / ACOUSTIC_MODEL).is_file():
        raise ModelError(
            f"{model_dir} is not a Vosk model directory (no {ACOUSTIC_MODEL}); "
            "unpack a vosk-model-small-* archive there"
        )
    if not has_dynamic_graph(model_dir):
        found = STATIC_GRAPH if (model_dir / STATIC_GRAPH).exists() else "no graph/HCLr.fst+Gr.fst"
        raise ModelError(
            f"grammar mode needs a small model: {model_dir} has {found}, so Vosk would ignore "
            "the phrase grammar. Use a vosk-model-small-* model (with graph/HCLr.fst and "
            "graph/Gr.fst)"
        )


def read_vocabulary(model_dir: Path) -> frozenset[str]:
    """The model's words (``graph/words.txt``, else the symbol table of ``graph/Gr.fst``)."""
    try:
        return read_model_vocabulary(Path(model_dir))[0]
    except VocabularyError as exc:
        raise ModelError(f"cannot read the words of the speech model: {exc}") from exc


def missing_words(phrases: PhraseSet, vocabulary: frozenset[str] | set[str]) -> tuple[str, ...]:
    return tuple(sorted(w for w in phrases.words() if w not in vocabulary))


@dataclass(frozen=True, slots=True)
class ModelReport:
    """Everything a technician needs to know about a model directory, without loading it."""

    model_dir: Path
    manifest_path: Path
    manifest_error: str | None
    """None when the model matches its manifest."""
    graph_error: str | None
    """None when the model has a dynamic graph (grammar mode works)."""
    vocabulary_size: int | None
    """Words the model knows; None when they could not be read (see ``vocabulary_error``)."""
    missing_words: tuple[str, ...]
    phrase_words: int
    vocabulary_source: str | None = None
    """``graph/words.txt`` or ``graph/Gr.fst``."""
    vocabulary_error: str | None = None
    declared_language: str | None = None
    """What the manifest says the model speaks (None: not recorded)."""
    vocabulary_language: str | None = None
    """What the model's words are written in."""
    language_error: str | None = None
    phrase_language: str = ""
    vocabulary: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return (
            self.manifest_error is None
            and self.graph_error is None
            and self.vocabulary_error is None
            and self.language_error is None
            and not self.missing_words
        )

    @property
    def loadable(self) -> bool:
        """Safe to hand to Vosk: intact and grammar-capable (the other checks may still fail)."""
        return self.manifest_error is None and self.graph_error is None

    def problems(self) -> list[str]:
        """Every reason the agent must not listen with this model and phrase set."""
        found = [
            e
            for e in (
                self.manifest_error,
                self.graph_error,
                self.vocabulary_error,
                self.language_error,
            )
            if e is not None
        ]
        if self.missing_words:
            found.append(
                f"{len(self.missing_words)} of {self.phrase_words} phrase words are not in the "
                f"model's vocabulary and would never be heard: {', '.join(self.missing_words)}; "
                "change the phrase set or the model"
            )
        return found


def _language_error(
    phrases: PhraseSet, declared: str | None, written: str | None, manifest_path: Path
) -> str | None:
    wanted = phrases.language
    if declared is not None and declared != wanted:
        return (
            f"the phrase set is {wanted!r} but the manifest {manifest_path} declares a "
            f"{declared!r} model; use a {wanted!r} model or the {declared!r} phrase set"
        )
    if written is not None and written != wanted:
        return (
            f"the phrase set is {wanted!r} but the model's words are {written!r}; use a "
            f"{wanted!r} model or the {written!r} phrase set"
        )
    if declared is None and written is None:
        return (
            "the model's language is unknown: neither its manifest nor its words say; record it "
            f"with `anbu agent write-manifest --language {wanted}`"
        )
    return None


def check_model_dir(
    model_dir: Path, phrases: PhraseSet, manifest_path: Path | None = None
) -> ModelReport:
    """Check manifest, graph, vocabulary and language; never raises for a bad model, reports it."""
    model_dir = Path(model_dir)
    manifest_path = Path(manifest_path or default_manifest_path(model_dir))
    manifest_error = graph_error = vocabulary_error = language_error = None
    declared = None
    try:
        declared = verify_manifest(model_dir, manifest_path).language
    except ModelError as exc:
        manifest_error = str(exc)
    vocabulary: frozenset[str] | None = None
    source = written = None
    if model_dir.is_dir():
        try:
            check_dynamic_graph(model_dir)
        except ModelError as exc:
            graph_error = str(exc)
        try:
            vocabulary, source = read_model_vocabulary(model_dir)
        except VocabularyError as exc:
            vocabulary_error = (
                f"cannot read the model's words, so the phrases cannot be checked: {exc}"
            )
        else:
            written = infer_language(vocabulary)
        if manifest_error is None:
            language_error = _language_error(phrases, declared, written, manifest_path)
    else:
        graph_error = f"speech model directory {model_dir} does not exist"
    return ModelReport(
        model_dir=model_dir,
        manifest_path=manifest_path,
        manifest_error=manifest_error,
        graph_error=graph_error,
        vocabulary_size=None if vocabulary is None else len(vocabulary),
        missing_words=() if vocabulary is None else missing_words(phrases, vocabulary),
        phrase_words=len(phrases.words()),
        vocabulary_source=source,
        vocabulary_error=vocabulary_error,
        declared_language=declared,
        vocabulary_language=written,
        language_error=language_error,
        phrase_language=phrases.language,
        vocabulary=vocabulary or frozenset(),
    )


# --- the adapter --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecognizerSettings:
    """How the grammar competes with other speech (measured in ``bench/speech.py``)."""

    filler_count: int = 30
    """Filler words from the model's vocabulary in the grammar (0: phrases only)."""
    phrase_weight: int = 1
    """Times each phrase is repeated in the grammar (its weight against the fillers)."""
    min_word_confidence: float = 0.0
    """Phrase words Vosk is less sure of than this are reported as ``[unk]``."""
    alternatives: int = 0
    """Hypotheses Vosk lists per utterance (``SetMaxAlternatives``; 0: the best one only, with
    Vosk's per-word confidences)."""
    alternative_margin: float = 1.0
    """Alternatives whose score is within this of the best (natural-log likelihood units) are
    passed on with the transcript; the spotter may take an SOS from one of them."""
    dither_seed: int | None = 0
    """Seed for Kaldi's dither at the start of every segment (None: leave it unseeded)."""
    competitors: bool = False
    """Add :func:`edge_agent.grammar.competitor_words` (words that begin like a phrase word) to
    the fillers."""
    track_partials: bool = True
    """Read Vosk's partial result after every block and pass on the phrase words it reported
    but dropped from the final one (``Transcript.also_heard``): a cancel heard on the way vetoes
    an SOS."""
    measure_loudness: bool = True
    """Keep the current utterance's audio and give each transcript its
    :class:`~edge_agent.transcript.Loudness` (whether the speaker went on after the last word)."""


MAX_UTTERANCE_AUDIO_S = 30.0
"""Audio kept for :func:`edge_agent.loudness.measure`; Vosk ends an utterance well before this."""


def seed_dither(seed: int) -> bool:
    """Make Kaldi's dither repeatable: reseed the C library's ``rand()``, which it draws from.

    Kaldi adds Gaussian noise ("dither", ``--dither=1`` by default; the model's ``mfcc.conf``
    keeps the default) to every frame before computing features, seeding each frame's generator
    from the process-wide ``rand()``. Unseeded, the same WAV gives other words and confidences
    from one run to the next (vosk-api issues 868 and 895), which made the CI floor hear 2 or 3
    of 7 phrases. Reseeding at each segment start keeps the model's own front end and makes a
    segment's transcript depend on its audio alone. Returns False where there is no C ``srand``.
    """
    try:
        libc = ctypes.CDLL(None)
        srand = libc.srand
    except (OSError, AttributeError):
        return False
    srand.argtypes = [ctypes.c_uint]
    srand.restype = None
    srand(seed)
    return True


def load_vosk_model(model_path: Path) -> Any:
    """Load the model itself (3-4 s, ~550 MiB for the small Korean one); share it between
    recognisers. Only from a path: ``vosk.Model(lang=...)`` would try to download one."""
    import vosk

    vosk.SetLogLevel(-1)  # Kaldi warnings only
    try:
        return vosk.Model(str(model_path))
    except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
        raise ModelError(f"Vosk could not load the model in {model_path} ({exc})") from exc


def _words(
    words: list[dict[str, Any]], keep: frozenset[str], floor: float, default: float
) -> tuple[Word, ...]:
    heard = []
    for w in words:
        text, confidence = str(w.get("word", "")), float(w.get("conf", default))
        if text not in keep or confidence < floor:
            text = UNKNOWN
        heard.append(Word(text, confidence, float(w.get("start", 0.0)), float(w.get("end", 0.0))))
    return tuple(heard)


def _nbest(
    alternatives: list[dict[str, Any]], keep: frozenset[str], floor: float, margin: float
) -> Transcript | None:
    """The best hypothesis, carrying those within ``margin`` of its score as alternatives.

    With alternatives Vosk gives no per-word confidence; each word gets its hypothesis' share of
    the n-best list instead (softmax of the scores), so a clear winner is near 1 and two
    hypotheses as likely as each other are near 0.5 each."""
    scored = [
        (float(a.get("confidence", 0.0)), a.get("result") or [])
        for a in alternatives
        if a.get("result")
    ]
    if not scored:
        return None
    top = max(score for score, _ in scored)
    weights = [math.exp(score - top) for score, _ in scored]
    total = sum(weights)
    hyps = [
        Transcript(_words(words, keep, floor, weight / total))
        for (score, words), weight in zip(scored, weights, strict=True)
        if top - score <= margin
    ]
    best, rest = hyps[0], tuple(h for h in hyps[1:] if h.words != hyps[0].words)
    return Transcript(best.words, rest)


def _transcript(
    result_json: str, keep: frozenset[str], min_confidence: float, margin: float = 0.0
) -> Transcript | None:
    """The result as a transcript. Phrase words the recogniser reported but that did not make it
    into the transcript (below ``min_confidence``, or in an alternative beyond ``margin``) are
    kept in ``also_heard``, so that a cancel among them still vetoes an SOS."""
    result = json.loads(result_json)
    if "alternatives" in result:
        alternatives = list(result["alternatives"])
        raw = [w for a in alternatives for w in a.get("result") or []]
        heard = _nbest(alternatives, keep, min_confidence, margin)
    else:
        raw = result.get("result")
        if raw is None:  # no word timings: only the text (an empty utterance)
            text = str(result.get("text", "")).strip()
            return Transcript.of(text) if text else None
        words = _words(raw, keep, min_confidence, 1.0)
        heard = Transcript(words) if words else None
    reported = [str(w.get("word", "")) for w in raw if str(w.get("word", "")) in keep]
    return with_partial_words(heard, reported)


def with_partial_words(heard: Transcript | None, partial: Iterable[str]) -> Transcript | None:
    """``heard``, with the words of its partial results that no hypothesis of it kept as
    ``also_heard`` (in the order given)."""
    if heard is None:
        return None
    final = {w.text for w in heard.words}
    for alternative in heard.alternatives:
        final.update(w.text for w in alternative.words)
    dropped = tuple(dict.fromkeys(w for w in partial if w not in final))
    if not dropped:
        return heard
    return replace(heard, also_heard=tuple(dict.fromkeys(heard.also_heard + dropped)))


class VoskRecognizer:
    """Vosk in grammar mode: phrases and fillers can come out; fillers come out as ``[unk]``.

    Every check of :func:`check_model_dir` must pass, or it raises :class:`ModelError` naming
    what is wrong (missing phrase words, a model of another language, a damaged copy).

    >>> rec = VoskRecognizer(Path("/opt/anbu/model"), load_phrase_set("ko"))  # doctest: +SKIP
    >>> rec.accept(block)  # doctest: +SKIP
    """

    def __init__(
        self,
        model_path: Path,
        phrases: PhraseSet,
        manifest_path: Path | None = None,
        settings: RecognizerSettings | None = None,
        *,
        report: ModelReport | None = None,
        vosk_model: Any = None,
    ) -> None:
        self.settings = settings or RecognizerSettings()
        self.report = report or check_model_dir(model_path, phrases, manifest_path)
        problems = self.report.problems()
        if problems:
            raise ModelError(f"speech model {model_path} cannot be used: " + "; ".join(problems))
        phrase_words = phrases.words()
        self.fillers = filler_words(
            self.report.vocabulary, phrase_words, self.settings.filler_count, phrases.language
        )
        if self.settings.competitors:
            extra = competitor_words(self.report.vocabulary, phrases)
            self.fillers = self.fillers + tuple(w for w in extra if w not in self.fillers)
        self.grammar = build_grammar(phrases, self.fillers, self.settings.phrase_weight)
        self._keep = frozenset(phrase_words)
        self._model: Any = vosk_model if vosk_model is not None else load_vosk_model(model_path)
        import vosk

        self._rec: Any = vosk.KaldiRecognizer(
            self._model, SAMPLE_RATE_HZ, json.dumps(self.grammar, ensure_ascii=False)
        )
        self._rec.SetWords(True)
        self._partial_words: dict[str, None] = {}
        """Phrase words in this utterance's partial results so far, in the order first seen."""
        self._fed_s = 0.0
        """Audio given to Vosk since it was created: its word times are on this clock (a reset or
        a final result does not restart it)."""
        self._utterance = bytearray()
        """The current utterance's audio (when measuring loudness); it began at ``_utterance_s``."""
        self._utterance_s = 0.0
        if self.settings.alternatives > 0:
            self._rec.SetMaxAlternatives(self.settings.alternatives)
        self._seed()
        log.info(
            "recogniser ready",
            extra={
                "model": str(model_path),
                "phrases": len(phrases.all_phrases()),
                "fillers": len(self.fillers),
            },
        )

    def _seed(self) -> None:
        if self.settings.dither_seed is not None:
            seed_dither(self.settings.dither_seed)

    def _heard(self, result_json: str) -> Transcript | None:
        heard = _transcript(
            result_json,
            self._keep,
            self.settings.min_word_confidence,
            self.settings.alternative_margin,
        )
        if heard is not None and self.settings.measure_loudness:
            loudness = measure_loudness(bytes(self._utterance), self._utterance_s, heard.words)
            heard = replace(heard, loudness=loudness)
        self._utterance.clear()
        self._utterance_s = self._fed_s
        partial, self._partial_words = self._partial_words, {}
        return with_partial_words(heard, partial)

    def _feed(self, block: bytes) -> None:
        self._fed_s += len(block) / (2 * SAMPLE_RATE_HZ)
        if not self.settings.measure_loudness:
            return
        self._utterance += block
        excess = len(self._utterance) - int(MAX_UTTERANCE_AUDIO_S * SAMPLE_RATE_HZ) * 2
        if excess > 0:
            del self._utterance[:excess]
            self._utterance_s += excess / (2 * SAMPLE_RATE_HZ)

    def _note_partial(self) -> None:
        text = json.loads(self._rec.PartialResult()).get("partial", "")
        for word in str(text).split():
            if word in self._keep:
                self._partial_words.setdefault(word, None)

    def accept(self, block: bytes) -> Transcript | None:
        self._feed(block)
        if self._rec.AcceptWaveform(block):
            return self._heard(self._rec.Result())
        if self.settings.track_partials:
            self._note_partial()
        return None

    def flush(self) -> Transcript | None:
        heard = self._heard(self._rec.FinalResult())  # FinalResult also starts a fresh utterance
        self._seed()
        return heard

    def reset(self) -> None:
        """Drop any partial utterance; the next audio is decoded as if the recogniser were new."""
        self._rec.Reset()
        self._partial_words = {}
        self._utterance.clear()
        self._utterance_s = self._fed_s
        self._seed()

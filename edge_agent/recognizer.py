"""Offline speech recognition: the ``Recognizer`` protocol and its Vosk adapter.

The Vosk model is a directory of files copied onto the device. Before it is loaded it is checked:

* it matches its checksum manifest (``anbu-manifest.json``: ``{"model", "created_at", "files":
  {relative path: sha256}}``), so a truncated copy or a swapped model is caught at start-up
  rather than by a resident whose call for help is never recognised;
* it has a *dynamic* graph (``graph/HCLr.fst`` + ``graph/Gr.fst``, no ``graph/HCLG.fst``), because
  only such models honour a runtime grammar — big models with a static graph ignore it;
* every word of the phrase set is in its vocabulary (``graph/words.txt``, a Kaldi symbol table:
  ``word id`` per line); Vosk silently drops grammar words it does not know.

The model is only ever loaded from a path (``vosk.Model(path)``): ``vosk.Model(lang=...)`` would
try to download one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from firmware_config.phrases import PhraseSet

log = logging.getLogger("anbu.agent.recognizer")

MANIFEST_NAME = "anbu-manifest.json"
"""Default manifest file name, inside the model directory."""

DYNAMIC_GRAPH = ("graph/HCLr.fst", "graph/Gr.fst")
STATIC_GRAPH = "graph/HCLG.fst"
WORDS = "graph/words.txt"
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

    def accept(self, block: bytes) -> str | None:
        """Feed audio; returns a final transcript when the recogniser detects an endpoint."""
        ...

    def flush(self) -> str | None:
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
    model_dir: Path, manifest_path: Path | None = None, now: datetime | None = None
) -> Manifest:
    """Record the SHA-256 of every file under ``model_dir`` (except the manifest itself)."""
    model_dir = Path(model_dir)
    manifest_path = Path(manifest_path or default_manifest_path(model_dir))
    if not model_dir.is_dir():
        raise ModelError(f"speech model directory {model_dir} does not exist")
    files = {rel: _sha256(model_dir / rel) for rel in _model_files(model_dir, manifest_path)}
    if not files:
        raise ModelError(f"speech model directory {model_dir} is empty")
    manifest = Manifest(
        model=model_dir.name,
        created_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        files=files,
    )
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_name(manifest_path.name + ".tmp")
    tmp.write_text(
        json.dumps(
            {"model": manifest.model, "created_at": manifest.created_at, "files": files},
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
    return Manifest(str(data.get("model", "")), str(data.get("created_at", "")), dict(files))


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


def read_vocabulary(model_dir: Path) -> set[str] | None:
    """Words of ``graph/words.txt``, or None when the model does not ship one."""
    path = Path(model_dir) / WORDS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def missing_words(phrases: PhraseSet, vocabulary: set[str]) -> tuple[str, ...]:
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
    """Words in ``graph/words.txt``; None when the file is absent (the check could not run)."""
    missing_words: tuple[str, ...]
    phrase_words: int

    @property
    def ok(self) -> bool:
        return self.manifest_error is None and self.graph_error is None and not self.missing_words

    @property
    def loadable(self) -> bool:
        """Safe to hand to Vosk: intact and grammar-capable (missing words only warn)."""
        return self.manifest_error is None and self.graph_error is None


def check_model_dir(
    model_dir: Path, phrases: PhraseSet, manifest_path: Path | None = None
) -> ModelReport:
    """Check manifest, graph and vocabulary; never raises for a bad model, reports it."""
    model_dir = Path(model_dir)
    manifest_path = Path(manifest_path or default_manifest_path(model_dir))
    manifest_error = graph_error = None
    try:
        verify_manifest(model_dir, manifest_path)
    except ModelError as exc:
        manifest_error = str(exc)
    vocabulary = None
    if model_dir.is_dir():
        try:
            check_dynamic_graph(model_dir)
        except ModelError as exc:
            graph_error = str(exc)
        vocabulary = read_vocabulary(model_dir)
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
    )


# --- the adapter --------------------------------------------------------------------------------


def _text(result_json: str) -> str | None:
    text = str(json.loads(result_json).get("text", "")).strip()
    return text or None


class VoskRecognizer:
    """Vosk in grammar mode: only the phrase set's phrases (and ``[unk]``) can come out.

    >>> rec = VoskRecognizer(Path("/opt/anbu/model"), load_phrase_set("ko"))  # doctest: +SKIP
    >>> rec.accept(block)  # doctest: +SKIP
    """

    def __init__(
        self, model_path: Path, phrases: PhraseSet, manifest_path: Path | None = None
    ) -> None:
        self.report = check_model_dir(model_path, phrases, manifest_path)
        if self.report.manifest_error is not None:
            raise ModelError(self.report.manifest_error)
        if self.report.graph_error is not None:
            raise ModelError(self.report.graph_error)
        if self.report.vocabulary_size is None:
            log.warning("model %s has no %s; cannot check the phrase words", model_path, WORDS)
        elif self.report.missing_words:
            log.warning(
                "phrase words missing from the model vocabulary will never be recognised: %s "
                "(model %s); change the phrase set or the model",
                ", ".join(self.report.missing_words),
                model_path,
            )
        import vosk

        vosk.SetLogLevel(-1)  # Kaldi warnings only
        try:
            self._model: Any = vosk.Model(str(model_path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise ModelError(f"Vosk could not load the model in {model_path} ({exc})") from exc
        self._rec: Any = vosk.KaldiRecognizer(self._model, SAMPLE_RATE_HZ, phrases.grammar_json())

    def accept(self, block: bytes) -> str | None:
        if self._rec.AcceptWaveform(block):
            return _text(self._rec.Result())
        return None

    def flush(self) -> str | None:
        return _text(self._rec.FinalResult())  # FinalResult also starts a fresh utterance

    def reset(self) -> None:
        self._rec.Reset()

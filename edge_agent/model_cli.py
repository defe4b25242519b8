"""What ``anbu agent check-model`` and ``anbu agent write-manifest`` do, for the agent CLI to call.

Both print a report a technician can read on the device and return an exit status (0 = fine).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from edge_agent.audio import SAMPLE_RATE_HZ, AudioError, read_wav_16k
from edge_agent.recognizer import (
    ModelError,
    ModelReport,
    Recognizer,
    VoskRecognizer,
    check_model_dir,
    compare_manifest,
    default_manifest_path,
    read_manifest,
    write_manifest,
)
from edge_agent.spotter import Kind
from edge_agent.transcript import Transcript, Word
from firmware_config.phrases import PhraseSet

_VOICES = {"ko": "ko", "en": "en-us"}
_BLOCK_BYTES = SAMPLE_RATE_HZ // 10 * 2


def _report_lines(report: ModelReport) -> list[str]:
    lines = [f"model        {report.model_dir}"]
    if report.manifest_error is None:
        lines.append(f"manifest     OK ({report.manifest_path})")
    else:
        lines.append(f"manifest     PROBLEM: {report.manifest_error}")
    if report.graph_error is None:
        lines.append("graph        OK: dynamic (graph/HCLr.fst + graph/Gr.fst), grammar mode works")
    else:
        lines.append(f"graph        PROBLEM: {report.graph_error}")
    if report.vocabulary_error is not None:
        lines.append(f"vocabulary   PROBLEM: {report.vocabulary_error}")
    elif report.vocabulary_size is None:
        lines.append("vocabulary   SKIPPED: no model directory")
    elif report.missing_words:
        lines.append(
            f"vocabulary   PROBLEM: {len(report.missing_words)} of {report.phrase_words} phrase "
            f"words are not among the model's {report.vocabulary_size} words "
            f"({report.vocabulary_source}) and would never be heard: "
            f"{', '.join(report.missing_words)}; change the phrase set or the model"
        )
    else:
        lines.append(
            f"vocabulary   OK: all {report.phrase_words} phrase words among the model's "
            f"{report.vocabulary_size} words ({report.vocabulary_source})"
        )
    if report.language_error is not None:
        lines.append(f"language     PROBLEM: {report.language_error}")
    elif report.manifest_error is None and report.vocabulary_size is not None:
        declared = report.declared_language or "not recorded"
        lines.append(
            f"language     OK: phrases {report.phrase_language!r}; manifest {declared}; "
            f"words written in {report.vocabulary_language or 'no telling script'}"
        )
    return lines


def synthesise(text: str, language: str, directory: Path) -> bytes:
    """``text`` spoken by espeak-ng, as 16 kHz mono int16 bytes."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise AudioError("espeak-ng is not installed (`apt-get install espeak-ng`)")
    wav = directory / "phrase.wav"
    subprocess.run(  # noqa: S603 - fixed binary; text is a phrase from our own phrase set
        [espeak, "-v", _VOICES.get(language, language), "-w", str(wav), text],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return read_wav_16k(wav)


def recognise(recognizer: Recognizer, audio: bytes) -> Transcript:
    """Everything the recogniser makes of ``audio`` framed by silence, as one transcript."""
    silence = bytes(_BLOCK_BYTES * 3)
    padded = silence + audio + silence * 3
    words: list[Word] = []

    def add(heard: Transcript | str | None) -> None:
        if heard:
            words.extend((Transcript.of(heard) if isinstance(heard, str) else heard).words)

    for i in range(0, len(padded), _BLOCK_BYTES):
        add(recognizer.accept(padded[i : i + _BLOCK_BYTES]))
    add(recognizer.flush())
    return Transcript(tuple(words))


def _recognition_line(
    model_path: Path, manifest_path: Path | None, phrases: PhraseSet
) -> tuple[str, bool]:
    """The report line, and whether it shows a problem with the model (not with espeak-ng)."""
    try:
        recognizer = VoskRecognizer(model_path, phrases, manifest_path)
    except ModelError as exc:
        return f"recognition  PROBLEM: {exc}", True
    from edge_agent.runtime import make_spotter  # the agent's own rule for an SOS

    spotter = make_spotter(phrases)
    spotted: list[str] = []
    heard: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="anbu-check-") as tmp:
            for phrase in phrases.sos:
                transcript = recognise(recognizer, synthesise(phrase, phrases.language, Path(tmp)))
                heard[phrase] = transcript.text
                detection = spotter.hear(transcript, now=0.0)
                if detection is not None and detection.kind is Kind.SOS:
                    spotted.append(phrase)
    except (AudioError, OSError, subprocess.SubprocessError) as exc:
        return f"recognition  SKIPPED: cannot make test speech ({exc})", False
    missed = ", ".join(f"{p!r} heard as {heard[p]!r}" for p in phrases.sos if p not in spotted)
    return (
        f"recognition  espeak-ng said the {len(phrases.sos)} SOS phrases; {len(spotted)} spotted "
        f"as SOS{'; ' + missed if missed else ''} (synthetic speech is a rough test: try saying "
        "them yourself)",
        False,
    )


def check_model(
    model_path: Path,
    manifest_path: Path | None,
    phrases: PhraseSet,
    out: TextIO | None = None,
) -> int:
    """Print a technician's report on the model; 0 when it is fit for grammar-mode spotting."""
    out = out or sys.stdout
    report = check_model_dir(Path(model_path), phrases, manifest_path)
    for line in _report_lines(report):
        print(line, file=out)
    ok = report.ok
    if report.ok:
        line, problem = _recognition_line(Path(model_path), manifest_path, phrases)
        ok = ok and not problem
        print(line, file=out)
    else:
        print("recognition  SKIPPED: fix the problems above first", file=out)
    print("result       OK" if ok else "result       PROBLEMS FOUND", file=out)
    return 0 if ok else 1


def write_manifest_cmd(
    model_path: Path,
    manifest_path: Path | None = None,
    out: TextIO | None = None,
    language: str | None = None,
) -> int:
    """Record the model's checksums and language; says what an existing manifest disagreed with."""
    out = out or sys.stdout
    model_path = Path(model_path)
    manifest_path = Path(manifest_path or default_manifest_path(model_path))
    try:
        if manifest_path.exists() and model_path.is_dir():
            try:
                problems = compare_manifest(model_path, read_manifest(manifest_path), manifest_path)
            except ModelError:
                problems = None
            if problems:
                print(
                    f"replacing {manifest_path}, which disagreed: {problems.describe()}", file=out
                )
        manifest = write_manifest(model_path, manifest_path, language=language)
    except (ModelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote checksums of {len(manifest.files)} files of model {manifest.model!r} "
        f"(language {manifest.language or 'unknown'}) to {manifest_path}",
        file=out,
    )
    return 0

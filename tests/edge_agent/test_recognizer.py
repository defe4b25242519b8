"""Model checks on fake model trees (no model can be downloaded here), the vosk wheel itself,
the technician's report, and — only with ``ANBU_VOSK_MODEL_DIR`` set — a real model."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.model_cli import check_model, recognise, synthesise, write_manifest_cmd
from edge_agent.recognizer import (
    ModelError,
    VoskRecognizer,
    check_model_dir,
    read_vocabulary,
    verify_manifest,
    write_manifest,
)
from edge_agent.spotter import Kind, Spotter
from firmware_config.phrases import PhraseSet, load_phrase_set

KO = load_phrase_set("ko")


def fake_model(
    root: Path, words: set[str] | None = None, dynamic: bool = True, with_words: bool = True
) -> Path:
    """A directory laid out like vosk-model-small-*; the files hold placeholders, not models."""
    files = {
        "am/final.mdl": "acoustic model",
        "conf/model.conf": "--min-active=200\n",
        "conf/mfcc.conf": "--sample-frequency=16000\n",
        "graph/disambig_tid.int": "1\n",
        "graph/phones/word_boundary.int": "1 nonword\n",
        "ivector/final.ie": "ivector extractor",
        "README": "fake model for tests",
    }
    if dynamic:
        files |= {"graph/HCLr.fst": "HCLr", "graph/Gr.fst": "Gr"}
    else:
        files |= {"graph/HCLG.fst": "HCLG"}
    if with_words:
        vocabulary = sorted(KO.words() if words is None else words)
        table = ["<eps> 0", "[unk] 1", *(f"{w} {i}" for i, w in enumerate(vocabulary, start=2))]
        files["graph/words.txt"] = "\n".join(table) + "\n"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = fake_model(tmp_path / "vosk-model-small-ko-0.22")
    write_manifest(path)
    return path


# --- manifest -----------------------------------------------------------------------------------


def test_manifest_lists_every_file_but_itself(model: Path) -> None:
    data = json.loads((model / "anbu-manifest.json").read_text())
    assert data["model"] == "vosk-model-small-ko-0.22" and data["created_at"]
    assert "am/final.mdl" in data["files"] and "anbu-manifest.json" not in data["files"]
    assert all(len(h) == 64 for h in data["files"].values())
    assert verify_manifest(model).files == data["files"]


def test_missing_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nowhere does not exist.*model_path"):
        verify_manifest(tmp_path / "nowhere")


def test_missing_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m")
    with pytest.raises(ModelError, match=r"anbu-manifest.json does not exist.*write-manifest"):
        verify_manifest(path)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda m: (m / "am/final.mdl").write_text("tampered"), r"1 file\(s\) changed: am/final"),
        (lambda m: (m / "graph/Gr.fst").unlink(), r"1 file\(s\) missing: graph/Gr.fst"),
        (lambda m: (m / "extra.bin").write_text("?"), r"1 file\(s\) not in the manifest: extra"),
    ],
    ids=["changed", "missing", "extra"],
)
def test_damaged_model_is_named_file_by_file(
    model: Path, damage: Callable[[Path], object], expected: str
) -> None:
    damage(model)
    with pytest.raises(ModelError, match=expected) as caught:
        verify_manifest(model)
    assert str(model) in str(caught.value) and "write-manifest" in str(caught.value)


def test_manifest_may_live_outside_the_model(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m")
    manifest = tmp_path / "etc" / "model.json"
    write_manifest(path, manifest)
    assert verify_manifest(path, manifest).model == "m"
    with pytest.raises(ModelError, match=r"no valid \"files\" table"):
        manifest.write_text('{"files": []}')
        verify_manifest(path, manifest)


# --- suitability --------------------------------------------------------------------------------


def test_static_graph_model_is_refused_for_grammar_mode(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "big", dynamic=False)
    write_manifest(path)
    report = check_model_dir(path, KO)
    assert report.manifest_error is None
    assert (
        report.graph_error is not None and "grammar mode needs a small model" in report.graph_error
    )
    with pytest.raises(ModelError, match="grammar mode needs a small model"):
        VoskRecognizer(path, KO)


def test_a_directory_without_an_acoustic_model_is_not_a_model(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m")
    (path / "am/final.mdl").unlink()
    write_manifest(path)
    assert "not a Vosk model directory" in str(check_model_dir(path, KO).graph_error)


def test_phrase_words_missing_from_the_vocabulary_are_reported(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m", words=KO.words() - {"119", "불러줘"})
    write_manifest(path)
    report = check_model_dir(path, KO)
    assert report.missing_words == ("119", "불러줘")
    assert report.loadable and not report.ok
    assert read_vocabulary(path) is not None and "살려줘" in (read_vocabulary(path) or set())


def test_without_words_txt_the_vocabulary_is_unknown_not_wrong(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m", with_words=False)
    write_manifest(path)
    report = check_model_dir(path, KO)
    assert report.vocabulary_size is None and report.missing_words == ()


def test_a_model_vosk_cannot_load_is_a_model_error_with_a_warning_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The vosk wheel is real: it refuses the placeholder files cleanly (no crash)."""
    path = fake_model(tmp_path / "m", words=KO.words() - {"구급차"})
    write_manifest(path)
    with caplog.at_level(logging.WARNING), pytest.raises(ModelError, match="Vosk could not load"):
        VoskRecognizer(path, KO)
    assert "구급차" in caplog.text


def test_nothing_is_loaded_from_a_model_that_fails_its_manifest(model: Path) -> None:
    (model / "am/final.mdl").write_text("swapped")
    with pytest.raises(ModelError, match="does not match its manifest"):
        VoskRecognizer(model, KO)


# --- the technician's commands ------------------------------------------------------------------


def test_check_model_reports_each_finding(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m", words=KO.words() - {"119"})
    write_manifest(path)
    out = io.StringIO()
    assert check_model(path, None, KO, out=out) == 1
    text = out.getvalue()
    assert "manifest     OK" in text
    assert "graph        OK" in text
    assert "vocabulary   PROBLEM" in text and "119" in text
    assert "recognition" in text and "result       PROBLEMS FOUND" in text


def test_check_model_on_a_missing_directory(tmp_path: Path) -> None:
    out = io.StringIO()
    assert check_model(tmp_path / "none", None, KO, out=out) == 1
    assert "does not exist" in out.getvalue() and "SKIPPED" in out.getvalue()


def test_write_manifest_cmd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = fake_model(tmp_path / "m")
    out = io.StringIO()
    assert write_manifest_cmd(path, None, out=out) == 0
    assert "wrote checksums of 10 files" in out.getvalue()
    (path / "README").write_text("edited")
    out = io.StringIO()
    assert write_manifest_cmd(path, None, out=out) == 0
    assert "replacing" in out.getvalue() and "changed: README" in out.getvalue()
    assert write_manifest_cmd(tmp_path / "none", None, out=io.StringIO()) == 1
    assert "does not exist" in capsys.readouterr().err


# --- a real model, when one is provided -----------------------------------------------------------

MODEL_DIR = os.environ.get("ANBU_VOSK_MODEL_DIR")
real_model = pytest.mark.skipif(
    not MODEL_DIR, reason="no Vosk model: set ANBU_VOSK_MODEL_DIR to an unpacked small model"
)


def phrases_for(model_dir: Path) -> PhraseSet:
    name = model_dir.name.lower()
    return load_phrase_set("en" if "-en-" in name else "ko")


@pytest.mark.vosk_model
@real_model
def test_real_model_passes_its_checks(tmp_path: Path) -> None:
    model_dir = Path(str(MODEL_DIR))
    manifest = tmp_path / "manifest.json"
    write_manifest(model_dir, manifest)
    report = check_model_dir(model_dir, phrases_for(model_dir), manifest)
    assert report.manifest_error is None and report.graph_error is None
    assert report.vocabulary_size and report.vocabulary_size > 100


@pytest.mark.vosk_model
@real_model
def test_real_model_hears_silence_as_nothing_and_runs_on_speech(tmp_path: Path) -> None:
    model_dir = Path(str(MODEL_DIR))
    phrases = phrases_for(model_dir)
    manifest = tmp_path / "manifest.json"
    write_manifest(model_dir, manifest)
    rec = VoskRecognizer(model_dir, phrases, manifest)
    assert recognise(rec, bytes(32000)) in ("", "[unk]")
    heard = recognise(rec, synthesise(phrases.sos[0], phrases.language, tmp_path))
    detection = Spotter(phrases).hear(heard, now=0.0)
    # synthetic speech is not always understood; when it is, it must be the SOS
    assert detection is None or detection.kind is Kind.SOS

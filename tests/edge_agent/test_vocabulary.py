"""The model's words read from ``graph/words.txt`` or from the symbol table of an OpenFst binary
``Gr.fst``, built here byte by byte as OpenFst lays it out; and the language they are written in."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edge_agent.vocabulary import (
    FST_MAGIC,
    SYMBOL_TABLE_MAGIC,
    VocabularyError,
    infer_language,
    read_fst_output_symbols,
    read_model_vocabulary,
)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<i", len(raw)) + raw


def _table(name: str, symbols: list[str]) -> bytes:
    out = struct.pack("<i", SYMBOL_TABLE_MAGIC) + _string(name)
    out += struct.pack("<qq", len(symbols), len(symbols))
    for key, symbol in enumerate(symbols):
        out += _string(symbol) + struct.pack("<q", key)
    return out


def build_fst(
    inputs: list[str] | None, outputs: list[str] | None, fst_type: str = "vector"
) -> bytes:
    """An OpenFst binary header, its symbol tables and a stand-in body."""
    flags = (1 if inputs is not None else 0) | (2 if outputs is not None else 0)
    out = struct.pack("<i", FST_MAGIC) + _string(fst_type) + _string("standard")
    out += struct.pack("<iiQqqq", 2, flags, 0x3, 0, 2, 1)
    if inputs is not None:
        out += _table("in.txt", inputs)
    if outputs is not None:
        out += _table("out.txt", outputs)
    return out + b"\x00" * 64  # states and arcs follow; never read


WORDS = ["<eps>", "#0", "<s>", "</s>", "<UNK>", "살려", "줘", "도와줘", "일일", "구"]


def test_output_symbols_of_a_small_fst(tmp_path: Path) -> None:
    path = tmp_path / "Gr.fst"
    path.write_bytes(build_fst(["<eps>", "in-only"], WORDS, fst_type="ngram"))
    assert read_fst_output_symbols(path) == WORDS


def test_an_acceptor_with_input_symbols_only(tmp_path: Path) -> None:
    path = tmp_path / "Gr.fst"
    path.write_bytes(build_fst(WORDS, None))
    assert read_fst_output_symbols(path) == WORDS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"PK\x03\x04 a zip file, not an fst", "not an OpenFst binary file"),
        (build_fst(None, WORDS)[:60], "ends inside"),
        (build_fst(None, None), "no symbol table"),
        (build_fst(None, WORDS).replace(struct.pack("<i", SYMBOL_TABLE_MAGIC), b"XXXX"), "magic"),
    ],
    ids=["empty", "not-fst", "truncated", "no-table", "bad-table"],
)
def test_damaged_fst_files_are_named(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "Gr.fst"
    path.write_bytes(data)
    with pytest.raises(VocabularyError, match=message) as caught:
        read_fst_output_symbols(path)
    assert str(path) in str(caught.value)


def test_words_txt_is_preferred_and_bookkeeping_symbols_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "graph").mkdir()
    (tmp_path / "graph/Gr.fst").write_bytes(build_fst(None, ["<eps>", "from-fst"]))
    assert read_model_vocabulary(tmp_path) == (frozenset({"from-fst"}), "graph/Gr.fst")
    (tmp_path / "graph/words.txt").write_text("<eps> 0\n살려 1\n줘 2\n#0 3\n", encoding="utf-8")
    assert read_model_vocabulary(tmp_path) == (frozenset({"살려", "줘"}), "graph/words.txt")


def test_a_model_without_either_file(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match=r"neither graph/words\.txt nor graph/Gr\.fst"):
        read_model_vocabulary(tmp_path)


@pytest.mark.parametrize(
    ("words", "language"),
    [
        (["살려", "줘", "구", "ABC", "CEO", "[9]"], "ko"),
        (["help", "me", "ambulance", "살려"], "en"),
        (["ABC", "CEO", "123"], None),
        ([], None),
    ],
)
def test_language_from_the_script_of_the_words(words: list[str], language: str | None) -> None:
    assert infer_language(words) == language

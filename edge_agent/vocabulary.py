"""The words a Vosk model can recognise, read from where the model keeps them, and its language.

A Vosk model lists its words either in ``graph/words.txt`` (a Kaldi symbol table, ``word id`` per
line) or, when that file is absent (as in the small Korean model), only as the *output symbol
table* of the grammar FST ``graph/Gr.fst``. That file is OpenFst's binary format, read here
without OpenFst:

* header: ``int32`` magic ``2125659606``, the FST type and arc type as strings (``int32`` length +
  UTF-8 bytes), ``int32`` version, ``int32`` flags, ``uint64`` properties, ``int64`` start state,
  ``int64`` number of states, ``int64`` number of arcs; all little-endian;
* then, if ``flags & 1``, the input symbol table, and if ``flags & 2``, the output symbol table,
  each: ``int32`` magic ``2125658996``, its name (string), ``int64`` available key, ``int64``
  count, then ``count`` times a symbol (string) and its ``int64`` key.

The FST body after the tables is never read. Vosk drops grammar words missing from this table with
only a log line, which is why the agent checks its phrases against it before it starts.
"""

from __future__ import annotations

import mmap
import struct
import unicodedata
from collections.abc import Iterable
from pathlib import Path

FST_MAGIC = 2125659606
SYMBOL_TABLE_MAGIC = 2125658996
HAS_INPUT_SYMBOLS = 0x1
HAS_OUTPUT_SYMBOLS = 0x2

WORDS_TXT = "graph/words.txt"
GRAMMAR_FST = "graph/Gr.fst"

# Kaldi/OpenFst bookkeeping symbols that are not words anyone says.
_NOT_WORDS = frozenset({"<eps>", "#0", "<s>", "</s>", "!SIL"})


class VocabularyError(ValueError):
    """The model's word list cannot be read; the message names the file and what is wrong."""


class _Reader:
    def __init__(self, data: mmap.mmap | bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.offset = 0

    def _take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise VocabularyError(f"{self.path} ends inside its header (truncated copy?)")
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return int(value)

    def int32(self) -> int:
        return self._take("<i")

    def int64(self) -> int:
        return self._take("<q")

    def uint64(self) -> int:
        return self._take("<Q")

    def raw_string(self) -> bytes:
        n = self.int32()
        if n < 0 or self.offset + n > len(self.data):
            raise VocabularyError(
                f"{self.path} has a string of impossible length {n} at byte "
                f"{self.offset - 4} (truncated or not an OpenFst file)"
            )
        value = bytes(self.data[self.offset : self.offset + n])
        self.offset += n
        return value

    def string(self) -> str:
        raw = self.raw_string()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VocabularyError(f"{self.path}: a symbol is not UTF-8 ({exc})") from exc

    def symbol_table(self, keep: bool) -> list[str]:
        if self.int32() != SYMBOL_TABLE_MAGIC:
            raise VocabularyError(f"{self.path}: symbol table has a bad magic number")
        self.string()  # the table's name (the words.txt it was made from)
        self.int64()  # available key
        count = self.int64()
        if count < 0 or count > len(self.data):
            raise VocabularyError(f"{self.path}: symbol table claims {count} symbols")
        symbols: list[str] = []
        for _ in range(count):
            raw = self.raw_string()
            self.offset += 8  # the symbol's key
            if keep:
                symbols.append(raw.decode("utf-8", errors="strict"))
        if self.offset > len(self.data):
            raise VocabularyError(f"{self.path} ends inside its symbol table (truncated copy?)")
        return symbols


def read_fst_output_symbols(path: Path) -> list[str]:
    """The output symbols of an OpenFst binary file (the input ones for an acceptor without)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            if path.stat().st_size == 0:
                raise VocabularyError(f"{path} is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _read_symbols(_Reader(data, path))
    except FileNotFoundError as exc:
        raise VocabularyError(f"{path} does not exist") from exc
    except OSError as exc:
        raise VocabularyError(f"{path} cannot be read ({exc})") from exc


def _read_symbols(r: _Reader) -> list[str]:
    if r.int32() != FST_MAGIC:
        raise VocabularyError(f"{r.path} is not an OpenFst binary file (bad magic number)")
    r.string()  # FST type, e.g. "ngram", "vector", "const"
    r.string()  # arc type, e.g. "standard"
    r.int32()  # version
    flags = r.int32()
    r.uint64()  # properties
    r.int64()  # start state
    r.int64()  # number of states
    r.int64()  # number of arcs
    has_in, has_out = bool(flags & HAS_INPUT_SYMBOLS), bool(flags & HAS_OUTPUT_SYMBOLS)
    if not (has_in or has_out):
        raise VocabularyError(f"{r.path} carries no symbol table, so its words cannot be read")
    inputs = r.symbol_table(keep=not has_out) if has_in else []
    return r.symbol_table(keep=True) if has_out else inputs


def read_words_txt(path: Path) -> list[str]:
    """The symbols of a Kaldi ``words.txt`` (``word id`` per line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise VocabularyError(f"{path} is not UTF-8 ({exc})") from exc
    except OSError as exc:
        raise VocabularyError(f"{path} cannot be read ({exc})") from exc
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def read_model_vocabulary(model_dir: Path) -> tuple[frozenset[str], str]:
    """The model's words and the file they came from (``graph/words.txt``, else ``Gr.fst``)."""
    model_dir = Path(model_dir)
    words_txt = model_dir / WORDS_TXT
    if words_txt.is_file():
        symbols, source = read_words_txt(words_txt), WORDS_TXT
    elif (model_dir / GRAMMAR_FST).is_file():
        symbols, source = read_fst_output_symbols(model_dir / GRAMMAR_FST), GRAMMAR_FST
    else:
        raise VocabularyError(
            f"{model_dir} has neither {WORDS_TXT} nor {GRAMMAR_FST}: its words cannot be read"
        )
    return frozenset(s for s in symbols if s not in _NOT_WORDS), source


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


def infer_language(words: Iterable[str]) -> str | None:
    """``"ko"`` when most lettered words are Hangul, ``"en"`` when most are lower-case Latin.

    Kaldi English models spell words in lower case; the Korean model also lists some upper-case
    Latin acronyms, which count for neither. None when the words do not say.
    """
    hangul = latin = total = 0
    for word in words:
        first = next((ch for ch in word if unicodedata.category(ch).startswith("L")), None)
        if first is None:
            continue
        total += 1
        if _is_hangul(first):
            hangul += 1
        elif "a" <= first <= "z":
            latin += 1
    if total == 0:
        return None
    if hangul / total > 0.5:
        return "ko"
    if latin / total > 0.5:
        return "en"
    return None

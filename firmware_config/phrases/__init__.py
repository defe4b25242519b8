"""Phrase sets per language: wake word, SOS, cancel and check-in phrases, and spoken prompts."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from firmware_config.errors import ContractError

LANGUAGES = ("ko", "en")


@dataclass(frozen=True, slots=True)
class PhraseSet:
    """The phrases one language's agent listens for."""

    language: str
    wake: tuple[str, ...]
    sos: tuple[str, ...]
    cancel: tuple[str, ...]
    checkin: tuple[str, ...] = ()
    yes: tuple[str, ...] = ()
    """Answers that confirm "shall I ask for help?" (prompt ``sos_ask``)."""
    no: tuple[str, ...] = ()
    """Answers that decline it (a cancel phrase declines too)."""
    request: tuple[str, ...] = ()
    """Asking for a call from the welfare office (after the wake word): not an SOS."""
    cancel_words: tuple[str, ...] = ()
    """Words of the cancel phrases that, heard anywhere in an utterance (in any hypothesis or
    partial result), veto an SOS from it. Each is a word of a cancel phrase and of no SOS phrase."""
    prompts: dict[str, str] = field(default_factory=dict)

    def all_phrases(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for p in (
            *self.wake,
            *self.sos,
            *self.cancel,
            *self.checkin,
            *self.yes,
            *self.no,
            *self.request,
        ):
            seen.setdefault(p, None)
        return tuple(seen)

    def words(self) -> set[str]:
        """Every word the recogniser grammar uses (split on spaces)."""
        return {w for p in self.all_phrases() for w in p.lower().split()}

    def grammar_json(self) -> str:
        """Every phrase as a Vosk runtime grammar (the agent adds fillers from the model's own
        vocabulary: see :mod:`edge_agent.grammar`)."""
        return json.dumps([p.lower() for p in self.all_phrases()], ensure_ascii=False)


def _parse(text: str, source: str) -> PhraseSet:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"phrase set {source} is not valid TOML: {exc}") from exc
    language = data.get("language")
    if language not in LANGUAGES:
        raise ContractError(
            f"phrase set {source}: language={language!r} must be one of {LANGUAGES}"
        )
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("wake", "sos", "cancel", "checkin", "yes", "no", "request"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ContractError(f"phrase set {source}: {key}={value!r} must be a list of phrases")
        lists[key] = tuple(v.strip() for v in value)
    if not lists["sos"]:
        raise ContractError(f"phrase set {source}: sos must list at least one phrase")
    words = data.get("cancel_words", [])
    if not isinstance(words, list) or not all(isinstance(v, str) and v.strip() for v in words):
        raise ContractError(f"phrase set {source}: cancel_words={words!r} must be a list of words")
    cancel_vocabulary = {w for p in lists["cancel"] for w in p.lower().split()}
    sos_vocabulary = {w for p in lists["sos"] for w in p.lower().split()}
    for word in words:
        if word.lower() not in cancel_vocabulary or word.lower() in sos_vocabulary:
            raise ContractError(
                f"phrase set {source}: cancel_words: {word!r} must be a word of a cancel phrase "
                "and of no SOS phrase"
            )
    lists["cancel_words"] = tuple(w.strip() for w in words)
    prompts = data.get("prompts", {})
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ContractError(f"phrase set {source}: [prompts] must map names to text")
    return PhraseSet(language=language, prompts=dict(prompts), **lists)


def load_phrase_set(language: str = "ko", path: Path | None = None) -> PhraseSet:
    """The built-in phrase set for ``language``, or the TOML file at ``path``."""
    if path is not None:
        try:
            return _parse(Path(path).read_text(encoding="utf-8"), str(path))
        except FileNotFoundError as exc:
            raise ContractError(f"phrase set {path} does not exist") from exc
    if language not in LANGUAGES:
        raise ContractError(f"language={language!r} must be one of {LANGUAGES}")
    text = resources.files(__package__).joinpath(f"{language}.toml").read_text(encoding="utf-8")
    return _parse(text, f"built-in {language}.toml")

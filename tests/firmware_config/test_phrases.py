import json
from pathlib import Path

import pytest

from firmware_config import ContractError
from firmware_config.phrases import load_phrase_set


@pytest.mark.parametrize("language", ["ko", "en"])
def test_built_in_sets_have_wake_sos_and_cancel(language: str) -> None:
    phrases = load_phrase_set(language)
    assert phrases.wake and phrases.sos and phrases.cancel
    assert phrases.yes and phrases.no and "sos_ask" in phrases.prompts
    grammar = json.loads(phrases.grammar_json())
    assert set(grammar) == {p.lower() for p in phrases.all_phrases()}
    assert "[unk]" not in grammar  # the recogniser adds fillers the model really has


def test_korean_set_has_the_issue_phrases() -> None:
    ko = load_phrase_set("ko")
    joined = {p.replace(" ", "") for p in ko.sos}
    assert {"살려줘", "살려주세요", "도와줘", "도와주세요", "일일구불러줘"} <= joined
    assert {"취소", "괜찮아"} <= set(ko.cancel)


def test_custom_file_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('language = "en"\nsos = ["mayday"]\n', encoding="utf-8")
    assert load_phrase_set(path=path).sos == ("mayday",)
    path.write_text('language = "en"\nsos = []\n', encoding="utf-8")
    with pytest.raises(ContractError, match="at least one"):
        load_phrase_set(path=path)
    path.write_text('language = "fr"\nsos = ["aidez-moi"]\n', encoding="utf-8")
    with pytest.raises(ContractError, match="language='fr'"):
        load_phrase_set(path=path)
    with pytest.raises(ContractError, match="does not exist"):
        load_phrase_set(path=tmp_path / "missing.toml")

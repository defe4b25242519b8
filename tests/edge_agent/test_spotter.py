import pytest

from edge_agent.spotter import Kind, Spotter, normalise
from edge_agent.transcript import Transcript, Word
from firmware_config.phrases import load_phrase_set


@pytest.fixture
def ko() -> Spotter:
    return Spotter(load_phrase_set("ko"), wake_window_s=8)


@pytest.fixture
def en() -> Spotter:
    return Spotter(load_phrase_set("en"), wake_window_s=8)


@pytest.mark.parametrize(
    "heard",
    [
        "살려줘",
        "살려 줘",
        "살려주세요",
        "살려 주세요",
        "살려줘요",
        "[unk] 살려 줘",
        "아 살려줘!",
    ],
)
def test_korean_sos_tolerates_spacing_and_polite_endings(ko: Spotter, heard: str) -> None:
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.SOS
    assert detection.phrase in ("살려 줘", "살려 주세요")


@pytest.mark.parametrize(
    ("heard", "phrase"),
    [
        ("도와 주세요", "도와줘"),
        ("도와주 세요", "도와줘"),
        ("일일구 불러 줘", "일일 구 불러 줘"),
        ("일일 구 불러 줘", "일일 구 불러 줘"),
        ("119 불러주세요", "일일 구 불러 줘"),
        ("구급차 불러 주세요", "구급차 불러 줘"),
    ],
)
def test_other_korean_sos_phrases(ko: Spotter, heard: str, phrase: str) -> None:
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.SOS and detection.phrase == phrase


def test_sos_needs_no_wake_word(ko: Spotter) -> None:
    detection = ko.hear("[unk] 도와줘", now=0)
    assert detection is not None and detection.kind is Kind.SOS


@pytest.mark.parametrize("heard", ["취소 아니 살려줘", "괜찮아 도와줘", "살려 줘 괜찮아"])
def test_cancel_is_decided_before_sos(ko: Spotter, heard: str) -> None:
    """Where both match, the cancel wins: a cancel phrase never raises an SOS."""
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.CANCEL


@pytest.mark.parametrize(
    "heard",
    [
        "살려줘서",  # one word that only begins like the phrase
        "살려 [unk] 줘",  # a filler between the words
        "도와 [unk] 주세요",
        "[unk] [unk] 도와줘",  # a longer sentence that happens to contain it
    ],
)
def test_sos_must_be_whole_words_in_a_short_utterance(ko: Spotter, heard: str) -> None:
    assert ko.hear(heard, now=0) is None


def test_confidence_is_the_weakest_word_of_the_phrase(ko: Spotter) -> None:
    heard = Transcript((Word("[unk]", 0.3), Word("살려", 0.95), Word("줘", 0.6)))
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.SOS
    assert detection.confidence == 0.6


def test_yes_and_no_only_while_an_answer_is_expected(ko: Spotter) -> None:
    assert ko.hear("응", now=0) is None
    yes = ko.hear("응", now=0, answering=True)
    no = ko.hear("아니요", now=0, answering=True)
    assert yes is not None and yes.kind is Kind.YES
    assert no is not None and no.kind is Kind.NO
    cancel = ko.hear("괜찮아", now=0, answering=True)
    assert cancel is not None and cancel.kind is Kind.CANCEL


@pytest.mark.parametrize("heard", ["취소", "취소해 줘", "괜찮아", "괜찮아요"])
def test_korean_cancel(ko: Spotter, heard: str) -> None:
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.CANCEL


@pytest.mark.parametrize("heard", ["", "   ", "[unk]", "[unk] [unk]", "오늘 날씨 좋네", "살려"])
def test_nothing_for_other_speech(ko: Spotter, heard: str) -> None:
    assert ko.hear(heard, now=0) is None


def test_checkin_needs_the_wake_word_within_its_window(ko: Spotter) -> None:
    assert ko.hear("네", now=0) is None
    wake = ko.hear("안부야", now=10)
    assert wake is not None and wake.kind is Kind.WAKE
    answer = ko.hear("네", now=17)
    assert answer is not None and answer.kind is Kind.CHECKIN
    assert ko.hear("네", now=18) is None  # the window closes after one answer
    ko.hear("안부야", now=20)
    assert ko.hear("네", now=28.5) is None  # too late


@pytest.mark.parametrize(
    ("heard", "kind", "phrase"),
    [
        ("help me", Kind.SOS, "help me"),
        ("HELP ME PLEASE", Kind.SOS, "help me"),
        ("please help", Kind.SOS, "help"),
        ("call an ambulance", Kind.SOS, "call an ambulance"),
        ("i'm fine", Kind.CANCEL, "i'm fine"),
        ("im fine", Kind.CANCEL, "i'm fine"),
        ("hey anbu", Kind.WAKE, "hey anbu"),
        ("hey anbu yes", Kind.CHECKIN, "yes"),
    ],
)
def test_english(en: Spotter, heard: str, kind: Kind, phrase: str) -> None:
    detection = en.hear(heard, now=0)
    assert detection is not None and (detection.kind, detection.phrase) == (kind, phrase)


@pytest.mark.parametrize("heard", ["helpful", "the helper", "cancellation", "yes"])
def test_english_matches_whole_words_only(en: Spotter, heard: str) -> None:
    assert en.hear(heard, now=0) is None


def test_normalise_is_idempotent() -> None:
    for text, lang in [("살려 주세요", "ko"), ("Help Me!", "en")]:
        once = normalise(text, lang)
        assert normalise(once, lang) == once


def _hyp(text: str, confidence: float = 0.4) -> Transcript:
    return Transcript.of(text, confidence)


def test_an_sos_in_a_close_alternative_is_an_sos_with_its_confidence(ko: Spotter) -> None:
    heard = Transcript(_hyp("[unk] 예 [unk] 세요").words, (_hyp("[unk] 살려 주세요", 0.3),))
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.SOS
    assert (detection.phrase, detection.confidence) == ("살려 줘", 0.3)  # 주세요 folds to 줘


def test_an_alternative_with_a_cancel_phrase_vetoes_an_sos_from_the_alternatives(
    ko: Spotter,
) -> None:
    heard = Transcript(_hyp("[unk] 예").words, (_hyp("도와줘"), _hyp("괜찮아")))
    assert ko.hear(heard, now=0) is None


def test_the_best_hypothesis_still_decides_a_cancel(ko: Spotter) -> None:
    heard = Transcript(_hyp("괜찮아").words, (_hyp("살려 줘"),))
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.CANCEL


def test_alternatives_give_no_wake_word_or_checkin(ko: Spotter) -> None:
    assert ko.hear(Transcript(_hyp("[unk]").words, (_hyp("안부 야"), _hyp("네"))), now=0) is None


def test_a_long_alternative_is_no_sos(ko: Spotter) -> None:
    heard = Transcript(_hyp("[unk]").words, (_hyp("[unk] [unk] 살려 줘 [unk]"),))
    assert ko.hear(heard, now=0) is None

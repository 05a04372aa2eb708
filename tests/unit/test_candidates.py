import difflib

import pytest

from platograph import ontology
from services.similarity.domain.candidates import classify, pair, reversal, same_wording, suggest_edge, threshold_for
from services.similarity.domain.models import MINILM

ONT = ontology.load()


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("Aspirin promotes bleeding.", "Aspirin counteracts bleeding.", "antonyms"),
        ("Vitamin D reduces fracture risk.", "Vitamin D does not reduce fracture risk.", "negation"),
        ("Exercise increases insulin sensitivity.", "Exercise decreases insulin sensitivity.", "antonyms"),
    ],
)
def test_reversed_pairs_are_never_duplicates(a: str, b: str, why: str) -> None:
    verdict = classify(a, b, 0.98, duplicate_threshold=0.93)
    assert verdict.kind == "link" and verdict.opposite and why in verdict.reason
    assert reversal(a, b) is not None


def test_word_swapped_pairs_are_not_duplicates() -> None:
    assert not same_wording("John bought a car from Mary.", "Mary bought a car from John.")
    assert classify("John bought a car from Mary.", "Mary bought a car from John.", 0.98, 0.93).kind == "link"


def test_same_wording_above_the_threshold_is_a_duplicate() -> None:
    verdict = classify("Deep networks prefer simple fits.", "Deep networks prefer simple fits", 0.99, 0.93)
    assert verdict.kind == "duplicate" and "0.990" in verdict.reason


def test_below_the_duplicate_threshold_is_a_link() -> None:
    assert classify("a b c", "a b c", 0.8, 0.93).kind == "link"


def test_suggested_edge_comes_from_the_ontology() -> None:
    assert suggest_edge(ONT, "claim", "claim", opposite=True) == "contradicts"
    assert suggest_edge(ONT, "finding", "hypothesis", opposite=False) == "supports"
    assert suggest_edge(ONT, "concept", "concept", opposite=True) == "refines"  # contradicts is not allowed there


def test_pairs_and_thresholds_ignore_order() -> None:
    assert pair("quote:b", "claim:a") == ("claim:a", "quote:b")
    assert threshold_for("paper", "claim", 0.5, {"claim|paper": 0.4}) == 0.4
    assert threshold_for("claim", "claim", 0.5, {"claim|paper": 0.4}) == 0.5


def test_papers_embed_as_title_and_abstract() -> None:
    assert MINILM.text_of({"type": "paper", "name": "T", "text": "Abstract."}) == "T. Abstract."
    text = MINILM.text_of({"type": "claim", "name": "N", "text": "Full text", "description": "D"})
    assert text == "N. Full text. D"
    assert MINILM.key == "all-minilm-l6-v2-int8-v1"


def test_papers_are_also_embedded_sentence_by_sentence() -> None:
    paper = {"type": "paper", "name": "Title", "text": "First finding here. Second finding (n=3). 3 more."}
    assert MINILM.parts_of(paper) == ["Title", "First finding here.", "Second finding (n=3).", "3 more."]
    assert MINILM.parts_of({"type": "paper", "name": "T", "text": "One sentence only."}) == []
    assert MINILM.parts_of({"type": "claim", "name": "T", "text": "A long claim. With two sentences."}) == []


def test_long_texts_compare_word_order_without_the_quadratic_matcher(monkeypatch: pytest.MonkeyPatch) -> None:
    sentences = [f"Gene{i} inhibits protein{i} in the cell." for i in range(300)]
    swapped = [f"Protein{i} inhibits gene{i} in the cell." for i in range(300)]  # who acts on whom, turned round
    text = " ".join(sentences)
    one_change = " ".join(swapped[:1] + sentences[1:])

    def quadratic(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("difflib compared two long texts (quadratic on few distinct words)")

    monkeypatch.setattr(difflib, "SequenceMatcher", quadratic)
    assert same_wording(text, one_change)  # one sentence of 300 turned round: the same wording
    assert not same_wording(text, " ".join(swapped))  # the same words, every sentence turned round
    assert not same_wording(text, " ".join(reversed(text.split())))

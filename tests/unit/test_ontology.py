from pathlib import Path

import pytest

from platograph import ontology
from platograph.ontology import OntologyError

ONT = ontology.load()


def test_types_follow_the_seed_page_order() -> None:
    assert list(ONT.entity_types)[:6] == ["paper", "concept", "hypothesis", "claim", "finding", "question"]
    assert ONT.entity_types["hypothesis"] == "Hypotheses"


@pytest.mark.parametrize(
    "edge",
    [
        "introduces",
        "associated_with",
        "supports",
        "gates",
        "extracted_from",
        "cites",
        "contradicts",
        "refines",
        "evidence_for",
        "mentions",
    ],
)
def test_the_seed_and_obvious_edge_types_exist(edge: str) -> None:
    assert edge in ONT.edge_types


def test_type_is_read_from_the_id() -> None:
    assert ONT.type_of("hypothesis:capacity-hypothesis") == "hypothesis"


@pytest.mark.parametrize(
    ("entity_id", "message"),
    [
        ("capacity", "<type>:<slug>"),
        ("widget:x", "unknown entity type"),
        ("claim:Bad Slug", "slug"),
        ("claim:", "<type>"),
    ],
)
def test_malformed_ids_are_refused(entity_id: str, message: str) -> None:
    with pytest.raises(OntologyError, match=message) as info:
        ONT.type_of(entity_id)
    assert info.value.field == "id"


def test_edges_are_checked_against_allowed_pairs() -> None:
    ONT.check_edge("paper:a", "quote:b", "introduces")
    ONT.check_edge("question:q", "quote:b", "gates")
    with pytest.raises(OntologyError, match="not allowed from concept to quote") as info:
        ONT.check_edge("concept:a", "quote:b", "introduces")
    assert info.value.field == "type"
    with pytest.raises(OntologyError, match="unknown edge type") as info:
        ONT.check_edge("paper:a", "quote:b", "likes")
    assert info.value.field == "type"
    with pytest.raises(OntologyError) as info:
        ONT.check_edge("paper:a", "widget:b", "mentions")
    assert info.value.field == "target"
    with pytest.raises(OntologyError, match="itself"):
        ONT.check_edge("paper:a", "paper:a", "cites")


def test_allowed_edge_types_for_a_pair() -> None:
    allowed = ONT.allowed_edge_types("finding", "hypothesis")
    assert {"evidence_for", "contradicts", "supports", "associated_with"} <= set(allowed)
    assert "introduces" not in allowed and "cites" not in allowed


def test_users_can_extend_the_ontology(tmp_path: Path) -> None:
    extended = ontology.DEFAULT_PATH.read_text() + (
        "  replicates:\n    description: A finding replicates another.\n    pairs: [[finding, finding]]\n"
    )
    path = tmp_path / "ontology.yaml"
    path.write_text(extended)
    mine = ontology.load(path)
    mine.check_edge("finding:a", "finding:b", "replicates")
    with pytest.raises(OntologyError):
        mine.check_edge("claim:a", "finding:b", "replicates")


def test_pairs_naming_unknown_types_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown entity type"):
        ontology.parse({"entity_types": {"paper": {}}, "edge_types": {"x": {"pairs": [["paper", "blog"]]}}})

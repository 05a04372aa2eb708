"""Which close pairs become candidates, of which kind, and which edge type they would become. Pure.

Cosine cannot tell "X promotes Y" from "X counteracts Y" (SciFact's negated twins sit at a median 0.97),
so a pair is called a duplicate only when it is very close *and* its wording shows no reversal: no
negation on one side only, no antonym pair split across the two texts, no content word or number on one
side only (SciFact twins differ by one verb or figure: "increases" / "reduces", "10%" / "90%"), and the
same words in much the same order (PAWS's word-swapped pairs share every word). A reversed pair stays a
candidate, suggested as `contradicts` where the ontology allows it.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass

from platograph.ontology import Ontology

#: The producer name on the candidate events this service appends.
PRODUCER = "similarity"

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
NEGATIONS = frozenset(
    "not no never none nor neither without cannot can't don't doesn't didn't isn't aren't wasn't weren't won't "
    "lack lacks lacking absence absent fail fails failed unable".split()
)
ANTONYMS = [
    ("increase", "decrease"), ("increases", "decreases"), ("increased", "decreased"), ("increasing", "decreasing"),
    ("higher", "lower"), ("high", "low"), ("more", "less"), ("greater", "smaller"), ("larger", "smaller"),
    ("promote", "inhibit"), ("promotes", "inhibits"), ("promotes", "counteracts"), ("promotes", "prevents"),
    ("promote", "prevent"), ("activates", "inhibits"), ("activate", "inhibit"), ("activates", "suppresses"),
    ("enhances", "impairs"), ("enhance", "impair"), ("enhances", "reduces"), ("improves", "worsens"),
    ("induces", "prevents"), ("induce", "prevent"), ("up", "down"), ("upregulates", "downregulates"),
    ("positive", "negative"), ("positively", "negatively"), ("benefit", "harm"), ("beneficial", "harmful"),
    ("protects", "exacerbates"), ("raises", "lowers"), ("rise", "fall"), ("gain", "loss"), ("before", "after"),
    ("accelerates", "slows"), ("stimulates", "inhibits"), ("strengthens", "weakens"), ("safe", "unsafe"),
    ("effective", "ineffective"), ("associated", "unassociated"), ("correlated", "uncorrelated"),
    ("sufficient", "insufficient"), ("necessary", "unnecessary"), ("likely", "unlikely"), ("common", "rare"),
]  # fmt: skip
ANTONYM_OF = {
    w: {b for a, b in ANTONYMS if a == w} | {a for a, b in ANTONYMS if b == w} for pair in ANTONYMS for w in pair
}
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or as is are was were be been being that this these those it its "
    "which who whom whose than then there their they them he she his her we our you your i".split()
)
SHORT = 200  # words a side up to which word order is compared run by run
SUGGESTION_ORDER = ("supports", "evidence_for", "refines", "associated_with", "mentions")


@dataclass(frozen=True)
class Verdict:
    kind: str  # "link" | "duplicate"
    reason: str
    opposite: bool = False


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def reversal(a: str, b: str) -> str | None:
    """Why two texts say opposite things, or None when their wording shows no reversal."""
    wa, wb = set(words(a)), set(words(b))
    only_a, only_b = wa - wb, wb - wa
    negated = (only_a | only_b) & NEGATIONS
    if negated:
        return f"negation on one side only ({', '.join(sorted(negated))})"
    for word in only_a:
        opposite = ANTONYM_OF.get(word, set()) & only_b
        if opposite:
            return f"antonyms across the pair ({word} / {sorted(opposite)[0]})"
    return None


def changed_words(a: str, b: str) -> set[str]:
    """Content words (and numbers) found in one text only."""
    wa, wb = set(words(a)) - STOPWORDS, set(words(b)) - STOPWORDS
    return wa ^ wb


def same_wording(a: str, b: str, min_ratio: float = 0.9) -> bool:
    """Same words in much the same order (word-swapped pairs share every word but not the order).

    Up to SHORT words a side, the share of words in matching runs (difflib, as tuned on the evaluation
    pairs: claims and sentences); past it, the share of word bigrams in common, which is linear where
    difflib is quadratic on long texts of few distinct words (two 20,000-character texts: seconds)."""
    wa, wb = words(a), words(b)
    if max(len(wa), len(wb)) <= SHORT:
        return difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).ratio() >= min_ratio
    return bigram_overlap(wa, wb) >= min_ratio


def bigram_overlap(wa: list[str], wb: list[str]) -> float:
    """Dice coefficient of the two texts' word-bigram multisets (1.0: the same bigrams as often)."""
    ba, bb = Counter(zip(wa, wa[1:], strict=False)), Counter(zip(wb, wb[1:], strict=False))
    total = sum(ba.values()) + sum(bb.values())
    return 2 * sum((ba & bb).values()) / total if total else 1.0


def classify(text_a: str, text_b: str, score: float, duplicate_threshold: float) -> Verdict:
    """Link or duplicate, with the evidence."""
    if score < duplicate_threshold:
        return Verdict("link", f"cosine {score:.3f}")
    why = reversal(text_a, text_b)
    if why is not None:
        return Verdict("link", f"cosine {score:.3f} but {why}: likely contradicting, not a duplicate", opposite=True)
    changed = changed_words(text_a, text_b)
    if changed:
        shown = ", ".join(sorted(changed)[:4])
        return Verdict("link", f"cosine {score:.3f} but words differ ({shown}): a different statement, not a copy")
    if not same_wording(text_a, text_b):
        return Verdict("link", f"cosine {score:.3f} but the same words in a different order")
    return Verdict("duplicate", f"cosine {score:.3f}, same wording and no negation or antonym across the pair")


def suggest_edge(ontology: Ontology, type_a: str, type_b: str, opposite: bool) -> str | None:
    """The edge type the candidate would most plausibly become, among those the ontology allows."""
    allowed = set(ontology.allowed_edge_types(type_a, type_b))
    if opposite and "contradicts" in allowed:
        return "contradicts"
    return next((t for t in SUGGESTION_ORDER if t in allowed), None)


def pair(x: str, y: str) -> tuple[str, str]:
    """The canonical (sorted) name of an unordered pair."""
    return (x, y) if x < y else (y, x)


def threshold_for(type_a: str, type_b: str, default: float, per_pair: dict[str, float]) -> float:
    """The threshold for a type pair: `a|b` keys in either order, else the default."""
    return per_pair.get(f"{type_a}|{type_b}", per_pair.get(f"{type_b}|{type_a}", default))

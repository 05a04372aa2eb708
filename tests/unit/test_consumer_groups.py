"""How the similarity consumer cuts a read into groups embedded ahead of their handling."""

from __future__ import annotations

from typing import Any

from services.similarity.entrypoints.consumer import EMBED_AHEAD, _groups


def entries(*sizes: int) -> list[tuple[str, list[Any]]]:
    return [(f"{n}-0", [{}] * size) for n, size in enumerate(sizes)]


def sizes(groups: list[list[tuple[str, list[Any]]]]) -> list[list[int]]:
    return [[len(events) for _, events in group] for group in groups]


def test_entries_fill_groups_up_to_the_embedding_size_and_the_last_entry_stands_alone() -> None:
    half = EMBED_AHEAD // 2
    assert sizes(_groups(entries(half, half, half, half))) == [[half, half], [half], [half]]


def test_an_entry_larger_than_a_group_is_kept_whole_and_order_is_kept() -> None:
    read = entries(3 * EMBED_AHEAD, 5, 7)
    groups = _groups(read)
    assert sizes(groups) == [[3 * EMBED_AHEAD], [5], [7]]
    assert [entry for group in groups for entry in group] == read


def test_a_single_entry_is_one_group_and_nothing_is_no_group() -> None:
    assert sizes(_groups(entries(4))) == [[4]]
    assert _groups([]) == []

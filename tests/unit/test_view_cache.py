"""The gateway's kept views (gateway/adapters/view_cache.py) and which views a batch of events changes
(services/graph/domain/view_changes.py)."""

from __future__ import annotations

from gateway.adapters import view_cache
from gateway.adapters.view_cache import ViewCache
from platograph.contracts import (
    CandidateProposed,
    EdgeAdded,
    EntityMerged,
    EntityUpserted,
    Frozen,
    ViewsChanged,
    new_envelope,
)
from services.graph.domain import view_changes
from services.graph.domain.projection import PositionedEvent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def following(max_bytes: int = 1 << 20, ttl_s: float = 60.0, clock: Clock | None = None) -> ViewCache:
    cache = ViewCache(max_bytes, ttl_s, clock or Clock())
    cache.start_following()
    return cache


def test_a_view_is_kept_and_found_under_its_request() -> None:
    cache = following()
    assert cache.keep(cache.ticket(), "claim:a", "/a?limit=50", b"{a}")
    assert cache.get("/a?limit=50") == b"{a}"
    assert cache.get("/a?limit=10") is None  # another page of the same entity is another view


def test_nothing_is_kept_until_the_announcements_are_followed() -> None:
    cache = ViewCache(1 << 20, 60.0)
    assert cache.ticket() is None
    assert not cache.keep(cache.ticket(), "claim:a", "/a", b"{a}")
    cache.start_following()
    assert cache.keep(cache.ticket(), "claim:a", "/a", b"{a}")
    cache.stop_following()
    assert cache.get("/a") is None and cache.ticket() is None


def test_a_view_read_while_its_entity_was_announced_changed_is_not_kept() -> None:
    cache = following()
    ticket = cache.ticket()
    cache.changed(ViewsChanged(ids=("claim:a", "claim:b")))
    cache.changed(ViewsChanged(ids=("claim:c",)))
    assert not cache.keep(ticket, "claim:a", "/a", b"{old}")
    assert cache.get("/a") is None
    assert cache.keep(ticket, "claim:d", "/d", b"{d}")  # announcements about other entities do not matter
    assert cache.keep(cache.ticket(), "claim:a", "/a", b"{new}")


def test_a_read_that_outlasted_the_announcements_remembered_or_everything_is_not_kept() -> None:
    cache = following()
    ticket = cache.ticket()
    for n in range(view_cache.RECENT + 1):
        cache.changed(ViewsChanged(ids=(f"claim:{n}",)))
    assert not cache.keep(ticket, "claim:zzz", "/zzz", b"{}")  # about claim:zzz or not: no longer known
    ticket = cache.ticket()
    cache.changed(ViewsChanged(everything=True))
    assert not cache.keep(ticket, "claim:zzz", "/zzz", b"{}")
    ticket = cache.ticket()
    cache.stop_following()
    cache.start_following()
    assert not cache.keep(ticket, "claim:zzz", "/zzz", b"{}")  # announcements may have been missed meanwhile


def test_an_announcement_drops_every_view_of_the_entities_it_names_and_only_those() -> None:
    cache = following()
    for key, entity in [("/a?limit=50", "claim:a"), ("/a?limit=10", "claim:a"), ("/b", "claim:b"), ("/c", "claim:c")]:
        assert cache.keep(cache.ticket(), entity, key, b"{}")
    cache.changed(ViewsChanged(ids=("claim:a", "claim:b")))
    assert [cache.get(k) for k in ("/a?limit=50", "/a?limit=10", "/b", "/c")] == [None, None, None, b"{}"]
    dropped = {why: view_cache.DROPPED.labels(why)._value.get() for why in ("everything", "restarted")}
    cache.changed(ViewsChanged(everything=True))
    assert len(cache) == 0 and cache.bytes == 0
    assert view_cache.DROPPED.labels("everything")._value.get() == dropped["everything"] + 1  # "/c"
    assert cache.keep(cache.ticket(), "claim:c", "/c", b"{}")
    cache.stop_following()  # a follower that may have missed announcements is counted apart
    assert view_cache.DROPPED.labels("restarted")._value.get() == dropped["restarted"] + 1
    assert view_cache.DROPPED.labels("everything")._value.get() == dropped["everything"] + 1


def test_the_least_recently_used_go_first_within_the_byte_budget() -> None:
    view = b"x" * 1000
    cache = following(max_bytes=8 * 1300)
    for n in range(8):
        assert cache.keep(cache.ticket(), f"claim:{n}", f"/{n}", view)
    assert cache.get("/0") == view  # used: /1 is now the least recently used
    evicted = view_cache.DROPPED.labels("evicted")._value.get()
    assert cache.keep(cache.ticket(), "claim:8", "/8", view)
    assert view_cache.DROPPED.labels("evicted")._value.get() == evicted + 1
    assert cache.get("/1") is None and cache.get("/0") == view
    assert cache.bytes <= cache.max_bytes
    # The evicted view's entity is forgotten too: an announcement naming it finds nothing to drop.
    cache.changed(ViewsChanged(ids=("claim:1",)))
    assert len(cache) == 8


def test_a_view_bigger_than_an_eighth_of_the_budget_is_not_kept() -> None:
    cache = following(max_bytes=8000)
    assert not cache.keep(cache.ticket(), "claim:a", "/a", b"x" * 1000)
    assert cache.keep(cache.ticket(), "claim:a", "/a", b"x" * 500)


def test_a_view_is_kept_no_longer_than_its_time() -> None:
    clock = Clock()
    cache = following(ttl_s=60.0, clock=clock)
    cache.keep(cache.ticket(), "claim:a", "/a", b"{a}")
    clock.now = 59.9
    assert cache.get("/a") == b"{a}"
    clock.now = 60.0
    assert cache.get("/a") is None and len(cache) == 0


def test_keeping_a_view_again_replaces_it_and_counts_its_bytes_once() -> None:
    cache = following()
    cache.keep(cache.ticket(), "claim:a", "/a", b"x" * 100)
    size = cache.bytes
    cache.keep(cache.ticket(), "claim:a", "/a", b"y" * 100)
    assert cache.bytes == size and cache.get("/a") == b"y" * 100


def events(*payloads: Frozen) -> list[PositionedEvent]:
    return [PositionedEvent(n + 1, f"{n + 1}-0", new_envelope(p, producer="test"), p) for n, p in enumerate(payloads)]


def test_edges_and_candidates_change_their_ends_views_and_entities_every_view_showing_them() -> None:
    touched = view_changes.touched(
        events(
            EntityUpserted(id="claim:a", type="claim", name="A"),
            EdgeAdded(source="claim:b", target="paper:p", type="extracted_from"),
            CandidateProposed(a="claim:c", b="finding:f", score=0.8, kind="link", model="m"),
        )
    )
    assert touched.shown == {"claim:a"}
    assert touched.views == {"claim:b", "paper:p", "claim:c", "finding:f"}
    assert not touched.everything


def test_a_merge_or_a_bulk_batch_changes_everything() -> None:
    assert view_changes.touched(events(EntityMerged(id="claim:a", into="claim:b"))).everything
    many = [EntityUpserted(id=f"claim:{n}", type="claim", name="N") for n in range(view_changes.SHOWN_AT_MOST + 1)]
    assert view_changes.touched(events(*many)).everything
    assert not view_changes.touched(events(*many[:-1])).everything

"""The neighbourhood view read from `adjacency` (kept by triggers as edges and entities change) is the view
computed from the edges: same groups, counts, order and pages, for random graphs projected in any order and
by concurrent projectors; merges fall back to the exact statement."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from platograph.contracts import (
    EdgeAdded,
    EdgeRemoved,
    EntityMerged,
    EntityRetracted,
    EntityUnmerged,
    EntityUpserted,
    Frozen,
    new_envelope,
)
from platograph.ontology import load as load_ontology
from platograph.settings import libpq_url
from services.graph.adapters import neighborhood_sql, projection_store
from services.graph.domain.projection import PositionedEvent
from tests import servers

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = ("claim", "concept", "paper", "hypothesis")
EDGE_TYPES = ("supports", "mentions", "associated_with", "extracted_from", "cites")
ONTOLOGY = load_ontology()


def _event(payload: Frozen, position: int) -> PositionedEvent:
    envelope = new_envelope(payload, producer="test", at=T0 + timedelta(seconds=position))
    return PositionedEvent(position=position, stream_id=f"{position}-0", envelope=envelope)


def random_events(rng: random.Random, entities: int, edges: int, merges: bool) -> list[Frozen]:
    ids = [f"{rng.choice(TYPES)}:e{i}" for i in range(entities)]
    hub = ids[0]
    payloads: list[Frozen] = []
    for i in ids:
        if rng.random() < 0.9:  # some stay dangling endpoints
            payloads.append(EntityUpserted(id=i, type=i.partition(":")[0], name=rng.choice("ABCDE") + i))
    for _ in range(edges):
        source = hub if rng.random() < 0.3 else rng.choice(ids)
        target = rng.choice(ids)  # self-loops included: never neighbours
        edge_type = rng.choice(EDGE_TYPES)
        if rng.random() < 0.15:
            payloads.append(EdgeRemoved(source=source, target=target, type=edge_type))
        else:
            payloads.append(EdgeAdded(source=source, target=target, type=edge_type))
    for _ in range(entities // 5):  # renames (ties on edge count are ordered by name) and retractions
        i = rng.choice(ids)
        payloads.append(EntityUpserted(id=i, type=i.partition(":")[0], name=rng.choice("ABCDE") + i + "'"))
        if rng.random() < 0.2:
            payloads.append(EntityRetracted(id=rng.choice(ids)))
    if merges:
        for _ in range(3):
            a, b = rng.sample(ids[1:], 2)
            payloads.append(EntityMerged(id=a, into=b))
            if rng.random() < 0.4:
                payloads.append(EntityUnmerged(id=a, into=b))
    rng.shuffle(payloads[len(ids) :])  # edges before, between and after their entities
    return payloads


def project(engine: Engine, payloads: list[Frozen], batch: int, first_position: int = 1) -> None:
    events = [_event(p, first_position + n) for n, p in enumerate(payloads)]
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        projection_store.project(engine, chunk, "test", chunk[-1].stream_id)


def view(conn: psycopg.Connection[Any], sql: str, entity_id: str, **kwargs: Any) -> tuple[bool, Any]:
    _, _, params = neighborhood_sql.statement_and_params(ONTOLOGY, entity_id, **kwargs)
    row = conn.execute(sql.encode(), params).fetchone()
    return (False, None) if row is None else (bool(row[0]), orjson.loads(row[1]))


def pages(conn: psycopg.Connection[Any], sql: str, entity_id: str, limit: int) -> Iterator[Any]:
    """The first page, then every next page of every group, following the statement's own cursors (EXACT's
    count ranks, the others' are keys): yielded with whether there was a next cursor, not the cursor."""
    _, first = view(conn, sql, entity_id, limit=limit, group=None, cursor=None)
    if first is None:
        yield None
        return
    cursors = {group["type"]: group["next_cursor"] for group in first["neighborhood"]}
    yield without_cursors(first)
    for group, cursor in cursors.items():
        while cursor:
            _, page = view(conn, sql, entity_id, limit=limit, group=group, cursor=cursor)
            cursor = page["neighborhood"][0]["next_cursor"] if page["neighborhood"] else None
            yield without_cursors(page)


def without_cursors(document: dict[str, Any]) -> dict[str, Any]:
    for group in document["neighborhood"]:
        group["next_cursor"] = bool(group["next_cursor"])
    return document


def ids(database_url: str) -> tuple[list[str], set[str]]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        every = [r[0] for r in conn.execute("SELECT id FROM entities WHERE version > 0 ORDER BY id")]
        merged = {r[0] for r in conn.execute("SELECT id FROM entities WHERE merged_into IS NOT NULL")}
        merged |= {r[0] for r in conn.execute("SELECT merged_into FROM entities WHERE merged_into IS NOT NULL")}
    return every, merged


def assert_fast_equals_exact(database_url: str, limit: int) -> int:
    """Compare both statements on every entity; returns how many took the fast path."""
    every, merged = ids(database_url)
    fast_count = 0
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        for entity_id in every:
            fast, _ = view(conn, neighborhood_sql.FAST[False], entity_id, limit=limit, group=None, cursor=None)
            exact = list(pages(conn, neighborhood_sql.EXACT[False], entity_id, limit))
            # MERGED answers every view too: what the reader runs when FAST says merges are involved
            assert list(pages(conn, neighborhood_sql.MERGED[False], entity_id, limit)) == exact, entity_id
            if fast:
                fast_count += 1
                assert list(pages(conn, neighborhood_sql.FAST[False], entity_id, limit)) == exact, entity_id
            else:
                assert involved(conn, entity_id), entity_id
    return fast_count


def involved(conn: psycopg.Connection[Any], entity_id: str) -> bool:
    """Whether merges move edges in this entity's view (FAST hands those to MERGED)."""
    row = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM entities WHERE merged_into = %(id)s)
                  OR EXISTS (SELECT 1 FROM edges e JOIN entities n ON n.merged_into IS NOT NULL
                              AND n.id = CASE WHEN e.source = %(id)s THEN e.target ELSE e.source END
                             WHERE (e.source = %(id)s OR e.target = %(id)s) AND NOT e.removed
                               AND e.source <> e.target)""",
        {"id": entity_id},
    ).fetchone()
    return bool(row and row[0])


def assert_adjacency_is_recomputed(engine: Engine) -> None:
    """What the triggers kept equals what the migration computes from scratch."""
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT x, n, edge_keys, edge_count, n_type, n_name, n_visible, n_merged "
                                 "FROM adjacency ORDER BY x, n")).all()  # fmt: skip
        groups = conn.execute(
            text("SELECT x, n_type, count FROM adjacency_groups WHERE count <> 0 ORDER BY 1, 2")
        ).all()
        keys = """SELECT source AS x, target AS n, 'o:' || type AS k FROM edges
                   WHERE NOT removed AND source <> target AND type <> 'extracted_from'
                  UNION ALL SELECT source, target, 'e:' || type FROM edges
                   WHERE NOT removed AND source <> target AND type = 'extracted_from'
                  UNION ALL SELECT target, source, 'i:' || type FROM edges WHERE NOT removed AND source <> target"""
        scratch = conn.execute(
            text(f"""
            SELECT k.x, k.n, array_agg(k.k ORDER BY k.k), (count(*) FILTER (WHERE k.k NOT LIKE 'e:%'))::int,
                   coalesce(min(e.type), ''), coalesce(min(e.name), ''), coalesce(bool_or(e.version > 0), false),
                   coalesce(bool_or(e.merged_into IS NOT NULL), false)
              FROM ({keys}) k LEFT JOIN entities e ON e.id = k.n GROUP BY k.x, k.n ORDER BY k.x, k.n""")
        ).all()
        scratch_groups = conn.execute(
            text(f"""
            SELECT k.x, e.type, count(DISTINCT k.n) FROM ({keys}) k JOIN entities e ON e.id = k.n AND e.version > 0
             WHERE k.k NOT LIKE 'e:%' GROUP BY k.x, e.type ORDER BY 1, 2""")
        ).all()
    assert [tuple(r) for r in kept] == [tuple(r) for r in scratch]
    assert [tuple(r) for r in groups] == [tuple(r) for r in scratch_groups]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_view_from_adjacency_equals_the_view_from_the_edges(
    backend: servers.Servers, engine: Engine, seed: int
) -> None:
    rng = random.Random(seed)
    project(engine, random_events(rng, entities=40, edges=400, merges=seed != 1), batch=rng.choice([1, 7, 50]))
    assert_adjacency_is_recomputed(engine)
    assert assert_fast_equals_exact(backend.database_url, limit=3) > 10  # most take the fast path


def test_concurrent_projectors_keep_adjacency_exact(backend: servers.Servers, engine: Engine) -> None:
    """Entities and their first edges projected at the same moment by different transactions: each copy
    of a neighbour's name and visibility is current once all have committed."""
    rng = random.Random(7)
    streams = [random_events(random.Random(rng.random()), entities=30, edges=200, merges=False) for _ in range(4)]
    failures: list[BaseException] = []

    def run(n: int, payloads: list[Frozen]) -> None:
        try:
            for start in range(0, len(payloads), 10):
                chunk = [_event(p, 1_000_000 * (n + 1) + start + k) for k, p in enumerate(payloads[start : start + 10])]
                for _ in range(20):  # a deadlock between projectors is retried, as the projector's backoff does
                    try:
                        projection_store.project(engine, chunk, f"test-{n}", chunk[-1].stream_id)
                        break
                    except OperationalError:
                        continue
                else:
                    raise AssertionError("a batch kept failing")
        except BaseException as exc:  # noqa: BLE001  # reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in enumerate(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert_adjacency_is_recomputed(engine)
    assert_fast_equals_exact(backend.database_url, limit=4)


def test_the_migration_fills_adjacency_from_the_edges_already_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database projected before migration 0008: upgrading fills adjacency as the triggers would have."""
    from alembic import command

    from ops import migrate
    from platograph import migrating
    from platograph.database import make_engine
    from services.graph.adapters import migrations as graph_migrations

    with servers.external() as fresh:
        config = migrating.config(graph_migrations.SCRIPTS, fresh.database_url, graph_migrations.VERSION_TABLE)
        command.upgrade(config, "0007")
        # The projector of that time: its journal was one table, unique by event id (0009 partitioned it).
        monkeypatch.setattr(projection_store, "INSERT_JOURNAL", f"""INSERT INTO journal
            ({", ".join(projection_store.JOURNAL_COLUMNS)}) SELECT {", ".join(projection_store.JOURNAL_COLUMNS)}
            FROM stage_journal ON CONFLICT DO NOTHING RETURNING position""")  # fmt: skip
        engine = make_engine(fresh.database_url)
        try:
            project(engine, random_events(random.Random(11), entities=30, edges=250, merges=True), batch=25)
            monkeypatch.undo()
            migrate.upgrade_all(fresh.database_url)
            assert_adjacency_is_recomputed(engine)
            assert assert_fast_equals_exact(fresh.database_url, limit=3) > 5
        finally:
            engine.dispose()

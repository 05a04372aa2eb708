"""The neighborhood view's statement and the per-request settings of the apps (no I/O)."""

from __future__ import annotations

import gc

import pytest
from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

from platograph.cursors import encode_cursor
from platograph.observability import fastapi_telemetry
from platograph.runtime import GC_THRESHOLDS, tune_gc
from services.graph.adapters.neighborhood_sql import (
    ENTITY,
    EXACT,
    EXACT_GROUPS,
    FAST,
    RELATED,
    TAIL,
    compact,
    parse_group_cursor,
)


def test_the_view_statement_stays_short_enough_for_psycopg_to_cache_its_parse() -> None:
    written = ENTITY + EXACT_GROUPS + TAIL.replace("{related}", RELATED)
    assert len(written.encode()) > MAX_CACHED_STATEMENT_LENGTH  # as written it would not be cached
    for statement in (*FAST.values(), *EXACT.values()):  # MERGED, for merges only, is longer
        assert len(statement.encode()) <= MAX_CACHED_STATEMENT_LENGTH


def test_compact_drops_comments_and_blank_runs_but_keeps_the_statement() -> None:
    sql = "SELECT a,  -- the first\n       b\n\n  FROM t -- end\n WHERE x = 'y'"
    assert compact(sql) == "SELECT a, b FROM t WHERE x = 'y'"
    assert "--" not in FAST[True]
    assert "'related_by_similarity'" in FAST[True] and "'related_by_similarity'" not in FAST[False]


def test_group_cursor_is_ours_or_refused() -> None:
    assert parse_group_cursor(None) == (0, None)
    assert parse_group_cursor("r50") == (50, None)  # the rank cursors earlier versions handed out
    assert parse_group_cursor(encode_cursor([3, "Hub", "concept:hub"])) == (0, (3, "Hub", "concept:hub"))
    for bad in ("50", "r", "rx1", "r-1", encode_cursor([True, "a", "b"]), encode_cursor({"a": 1}), "!!"):
        with pytest.raises(ValueError):
            parse_group_cursor(bad)


def test_fastapi_telemetry_is_off_unless_asked_for_and_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLATOGRAPH_OPENTELEMETRY", raising=False)
    assert fastapi_telemetry() == {"tracing": False, "metrics": False, "logs": False}
    monkeypatch.setenv("PLATOGRAPH_OPENTELEMETRY", "TRUE")
    assert fastapi_telemetry() == {}
    monkeypatch.setenv("PLATOGRAPH_OPENTELEMETRY", "yes please")
    with pytest.raises(ValueError, match="PLATOGRAPH_OPENTELEMETRY"):
        fastapi_telemetry()


def test_tune_gc_freezes_start_up_objects_and_collects_less_often() -> None:
    before = gc.get_threshold()  # an app started earlier in this process may have tuned it already
    try:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)  # CPython's defaults
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] > 700
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

"""The guard against text Postgres cannot store: where it finds it, and what it lets through untouched."""

from __future__ import annotations

import pytest

from platograph.text_guard import Refusal, find, in_body, in_url, problem


def test_problem_names_nul_and_lone_surrogates_only() -> None:
    assert problem("fine \u00e9 \U0001f600") is None
    assert "NUL" in (problem("a\x00b") or "")
    assert "surrogate" in (problem("a\ud800") or "")


def test_find_locates_the_first_bad_string_in_keys_and_values() -> None:
    assert find({"a": [1, "ok", {"b": "x\x00"}]}, ["body"]) == Refusal(["body", "a", 2, "b"], problem("\x00") or "")
    loc, why, _ = find({"bad\x00key": 1}, ["body"]) or ([], "", "")
    assert loc == ["body", "bad\\x00key"] and why.startswith("key: text contains a NUL")
    assert find({"a": ["b", 1.5, None, True]}, ["body"]) is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b'{"name": "a\\u0000"}', ["body", "name"]),
        (b'[{"x": "\\udc00"}]', ["body", 0, "x"]),
        (b'{"kind": "entity"}\n{"name": "\\u0000"}', ["body", "line 2", "name"]),
        (b'{"name": "emoji \\ud83d\\ude00"}', None),  # a surrogate pair is one valid character
        (b'{"name": "a literal \\\\u0000"}', None),  # an escaped backslash, then "u0000"
        (b'{"name": "a\x00"}', None),  # not JSON at all (raw control character): the app answers 400
        (b"no suspect here", None),
    ],
)
def test_in_body(body: bytes, loc: list[object] | None) -> None:
    found = in_body(body)
    assert (found[0] if found else None) == loc


@pytest.mark.parametrize("depth", [600, 5_000, 100_000])
def test_a_body_nested_too_deeply_is_refused_not_a_crash(depth: int) -> None:
    # Walking it (or json's own parser) would hit the recursion limit: that was a 500.
    found = in_body(b"[" * depth + b'"\\u0000"' + b"]" * depth)
    assert found is not None and found.loc == ["body"] and found.type == "too_deep"
    assert in_body(b"[" * 400 + b'"\\u0000"' + b"]" * 400) == (
        ["body"] + [0] * 400,
        problem("\x00"),
        "string_unstorable",
    )


def test_in_url_checks_the_decoded_path_and_every_query_parameter() -> None:
    assert in_url({"path": "/v1/entities/a\x00b", "query_string": b""}) == Refusal(["path"], problem("\x00") or "")
    assert in_url({"path": "/v1/candidates", "query_string": b"limit=5&entity=a%00b"}) == Refusal(
        ["query", "entity"], problem("\x00") or ""
    )
    assert in_url({"path": "/v1/search", "query_string": b"q=caf%C3%A9"}) is None

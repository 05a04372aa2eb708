"""Access control at the gateway: every public operation declares a scope and enforces it, keys are made,
listed and revoked through the API, and a revoked key stops working within seconds."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from gateway import openapi
from gateway.authorization import bearer
from platograph import cursors, ontology
from tests.helpers import eventually
from tests.integration.test_gateway import system

pytestmark = pytest.mark.integration
SCOPES = ("read", "write", "review", "webhooks", "admin")
NONE = {"Authorization": ""}  # the client's admin key, blanked
FORM = {"content-type": "application/x-www-form-urlencoded"}
# A value for each path parameter that its route's pattern takes.
SAMPLES = {"id": "claim:x", "a": "claim:x", "b": "paper:y", "job": "0123456789ab", "delivery_id": "d1",
           "record_id": "1-0"}  # fmt: skip
OPEN = {"/openapi.json", "/docs", "/healthz", "/readyz", "/sign-in"}


@pytest.fixture
def api(env: dict[str, str], engine: Any, tmp_path: Path) -> Iterator[TestClient]:
    yield from system(tmp_path / "index")


def declared_scope(route: APIRoute) -> str | None:
    """The scope a route's dependencies demand (gateway.authorization.authorize), if any."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        found = getattr(dependency.call, "scope", None)
        if found is not None:
            return str(found)
        pending.extend(dependency.dependencies)
    return None


def make_key(api: TestClient, *scopes: str) -> str:
    made = api.post("/v1/keys", json={"name": f"holder of {'+'.join(scopes)}", "scopes": list(scopes)})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def bearer_of(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (FastAPI keeps those as nodes of their own)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif getattr(route, "original_router", None) is not None:
            yield from api_routes(route.original_router.routes)


def operations(api: TestClient) -> list[tuple[str, str, str]]:
    """(method, concrete path, scope) of every route the gateway serves, documented or not (pages)."""
    out = []
    for route in api_routes(api.app.routes):  # type: ignore[attr-defined]
        if route.path in OPEN:
            continue
        scope = declared_scope(route)
        assert scope in SCOPES, f"{route.path} declares no scope: add dependencies=scope(...) to its router"
        path = re.sub(r"\{(\w+)[^}]*\}", lambda m: SAMPLES.get(m.group(1), "concept:x"), route.path)
        out += [(method, path, scope) for method in sorted(route.methods - {"HEAD"})]
    return out


def test_every_operation_wants_a_key_with_its_scope(api: TestClient) -> None:
    ops = operations(api)
    assert len(ops) > 30
    others = {scope: make_key(api, *[s for s in SCOPES if s not in (scope, "admin")]) for scope in SCOPES}
    right = {scope: make_key(api, scope) for scope in SCOPES}
    documented = api.get("/openapi.json").json()["paths"]
    for method, path, scope in ops:
        anonymous = api.request(method, path, headers=NONE, follow_redirects=False)
        unknown = api.request(method, path, headers=bearer_of("plg_" + "x" * 43), follow_redirects=False)
        if path.startswith("/v1/") or path == "/metrics":
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert anonymous.headers["www-authenticate"].startswith("Bearer"), (method, path)
            assert unknown.status_code == 401 and "invalid_token" in unknown.headers["www-authenticate"], (method, path)
        else:  # a page: a person is sent to sign in, and back
            for refused in (anonymous, unknown):
                assert refused.status_code == 303, (method, path, refused.status_code)
                assert refused.headers["location"].startswith("/sign-in?next=/"), (method, path)
        lacking = api.request(method, path, headers=bearer_of(others[scope]))
        assert lacking.status_code == 403, (method, path, lacking.text)
        assert repr(scope) in lacking.json()["detail"][0]["msg"], (method, path)
        allowed = api.request(method, path, headers=bearer_of(right[scope]))
        assert allowed.status_code not in (401, 403), (method, path, allowed.text)
        template = next((t for t in documented if re.fullmatch(re.sub(r"\{[^}]+\}", ".+", t), path)), None)
        if template is not None and method.lower() in documented[template]:
            codes = documented[template][method.lower()]["responses"]
            assert {"401", "403"} <= set(codes), (method, template)
            assert str(allowed.status_code) in codes, (method, path, allowed.status_code, sorted(codes))


def test_admin_has_every_scope_and_the_docs_say_how_to_authenticate(api: TestClient) -> None:
    assert api.post("/v1/entities", json=[{"id": "concept:x", "name": "X"}]).status_code == 202  # admin writes
    schemes = api.get("/openapi.json", headers=NONE).json()["components"]["securitySchemes"]
    assert schemes[bearer.scheme_name]["scheme"] == "bearer"


def test_keys_are_made_listed_and_revoked_and_a_revoked_key_stops_within_5_s(api: TestClient) -> None:
    made = api.post("/v1/keys", json={"name": "reader", "scopes": ["read"]}).json()
    key = made["key"]
    assert key.startswith("plg_") and len(key) >= 4 + 22  # at least 128 bits after the prefix
    assert made["scopes"] == ["read"] and made["owner"] == "reader"
    assert api.get("/v1/status", headers=bearer_of(key)).status_code == 200
    listed = api.get("/v1/keys", params={"limit": 500}).json()["items"]
    mine = next(k for k in listed if k["id"] == made["id"])
    assert "key" not in mine and "key_hash" not in mine and mine["revoked_at"] is None
    revoked = api.post(f"/v1/keys/{made['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    started = time.monotonic()
    while api.get("/v1/status", headers=bearer_of(key)).status_code == 200:
        assert time.monotonic() - started < 5.5, "a revoked key still works after 5 s"
        time.sleep(0.1)
    assert api.get("/v1/status", headers=bearer_of(key)).status_code == 401
    assert api.post("/v1/keys/key_nothing/revoke").status_code == 404


def test_keys_refuse_unknown_scopes_naming_the_field(api: TestClient) -> None:
    refused = api.post("/v1/keys", json={"name": "x", "scopes": ["everything"]})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][:2] == ["body", "scopes"]


def test_public_reads_open_reads_only(env: dict[str, str], engine: Any, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("PLATOGRAPH_PUBLIC_READS", "true")
    for api in system(tmp_path / "index"):
        assert api.get("/v1/status", headers=NONE).status_code == 200
        assert api.get("/v1/entities", headers=NONE).status_code == 200
        assert api.post("/v1/entities", json=[{"id": "concept:x", "name": "X"}], headers=NONE).status_code == 401
        assert api.get("/v1/keys", headers=NONE).status_code == 401


def test_every_answer_carries_the_security_headers_and_forms_cannot_post(api: TestClient) -> None:
    for path in ("/", "/docs", "/v1/status", "/v1/nothing-here", "/static/review.js"):
        answer = api.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in csp, path
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in api.get("/docs").text  # Swagger UI starts from a file
    assert api.get("/swagger/swagger-ui-bundle.js").status_code == 200
    form = api.post("/v1/entities", content=b'{"id": "concept:f", "name": "F"}', headers={"content-type": "text/plain"})
    assert form.status_code == 415 and form.json()["detail"][0]["loc"] == ["header", "content-type"]
    assert api.post("/v1/entities", json={"id": "concept:f", "name": "F"}).status_code == 202
    assert api.get("/v1/status", headers={"host": "evil.example"}).status_code == 400


def test_a_key_over_its_budget_gets_429_with_retry_after(api: TestClient) -> None:
    made = api.post("/v1/keys", json={"name": "slow", "scopes": ["read", "write"], "read_rate": "3/minute",
                                      "write_rate": "1/minute"}).json()  # fmt: skip
    slow = bearer_of(made["key"])
    assert [api.get("/v1/status", headers=slow).status_code for _ in range(3)] == [200, 200, 200]
    over = api.get("/v1/status", headers=slow)
    assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
    assert over.json()["detail"][0]["type"] == "rate_limited" and "3/minute" in over.json()["detail"][0]["msg"]
    # Reads and writes have budgets of their own; other keys are untouched.
    assert api.post("/v1/entities", json={"id": "concept:s", "name": "S"}, headers=slow).status_code == 202
    assert api.post("/v1/entities", json={"id": "concept:s", "name": "S"}, headers=slow).status_code == 429
    assert api.get("/v1/status").status_code == 200
    refused = api.post("/v1/keys", json={"name": "x", "scopes": ["read"], "read_rate": "lots"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "read_rate"]


def test_signing_in_gives_a_session_whose_writes_need_the_csrf_token(api: TestClient) -> None:
    made = api.post("/v1/keys", json={"name": "rev", "scopes": ["read", "review"]}).json()
    away = api.get("/entities/concept:x", headers=NONE, follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/sign-in?next=/entities/concept%3Ax"
    wrong = api.post("/sign-in", content=b"key=plg_wrong&next=/", headers=NONE | FORM)
    assert wrong.status_code == 401 and "unknown or revoked key" in wrong.text
    signed = api.post("/sign-in", content=f"key={made['key']}&next=/v1/status".encode(), headers=NONE | FORM,
                      follow_redirects=False)  # fmt: skip
    assert signed.status_code == 303 and signed.headers["location"] == "/v1/status"
    cookie = signed.headers["set-cookie"]
    assert (
        "plg_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie and made["key"] not in cookie
    )
    page = api.get("/", headers=NONE)
    assert page.status_code == 200 and "Sign out (rev)" in page.text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token is not None
    pair = "/v1/candidates/claim:none/claim:nothing/reject"
    forged = api.post(pair, json={}, headers=NONE)  # what a cross-site request would carry: the cookie alone
    assert forged.status_code == 403 and forged.json()["detail"][0]["loc"] == ["header", "X-CSRF-Token"]
    allowed = api.post(pair, json={}, headers=NONE | {"X-CSRF-Token": token.group(1)})
    assert allowed.status_code == 404  # through access control: there is no such candidate
    assert api.post("/v1/entities", json={"id": "concept:x", "name": "X"},
                    headers=NONE | {"X-CSRF-Token": token.group(1)}).status_code == 403  # no write scope  # fmt: skip
    api.post("/sign-out", headers=NONE | {"X-CSRF-Token": token.group(1)})
    assert api.get("/", headers=NONE, follow_redirects=False).status_code == 303
    assert api.get("/sign-in", params={"next": "//evil.example/x"}, headers=NONE).text.count("//evil.example") == 0


def test_review_buttons_show_only_for_a_key_that_may_review(api: TestClient) -> None:
    api.post("/v1/entities", json=[{"id": "claim:x", "name": "Sleep consolidates memory"},
                                   {"id": "finding:x", "name": "Sleep consolidates memories"}])  # fmt: skip
    reader = bearer_of(make_key(api, "read"))

    def reviewable() -> str | None:
        page = api.get("/entities/claim:x").text
        return page if 'class="review"' in page else None

    page = eventually(reviewable)
    assert 'class="review"' in page  # the admin client may review
    assert 'class="review"' not in api.get("/entities/claim:x", headers=reader).text


def test_a_method_a_path_does_not_take_is_405_naming_exactly_the_methods_its_document_lists(api: TestClient) -> None:
    # Generated from the OpenAPI document: a client built from it never meets an `Allow` that disagrees.
    spec = api.get("/openapi.json").json()["paths"]
    for template, operations in spec.items():
        path = re.sub(r"{(\w+)}", lambda m: SAMPLES[m.group(1)], template)
        documented = ", ".join(sorted(method.upper() for method in operations))
        for method in ("OPTIONS", "PUT") if "put" not in operations else ("OPTIONS",):
            answer = api.request(method, path)
            assert answer.status_code == 405, (method, path, answer.status_code)
            assert answer.headers["allow"] == documented, (method, path, answer.headers["allow"], documented)
    assert api.get("/v1/edges", params={"dangling": "false"}).status_code == 422
    assert api.get("/v1/projection", params={"position": "not-a-position"}).status_code == 422
    spec = api.get("/openapi.json").json()["paths"]
    (position,) = [p for p in spec["/v1/projection"]["get"]["parameters"] if p["name"] == "position"]
    assert position["schema"]["pattern"] == r"^\d{1,15}-\d{1,7}$"


def test_the_document_declares_what_the_server_accepts_and_the_server_refuses_the_rest(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    onto = ontology.load()

    def parameter(path: str, name: str) -> dict[str, Any]:
        (found,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name]
        return dict(found["schema"]["anyOf"][0] if "anyOf" in found["schema"] else found["schema"])

    assert parameter("/v1/entities", "type")["enum"] == list(onto.entity_types)
    assert parameter("/v1/entities", "cursor")["pattern"] == cursors.PATTERN
    assert parameter("/v1/candidates", "entity")["pattern"] == openapi.entity_id_pattern(onto)
    merge = spec["components"]["schemas"]["Merge"]
    assert merge["properties"]["into"]["pattern"] == openapi.entity_id_pattern(onto)
    assert merge["properties"]["by"]["pattern"] == openapi.NO_NUL and merge["additionalProperties"] is False
    assert re.match(openapi.entity_id_pattern(onto), "claim:key-limitation-of-prh")
    assert not re.match(openapi.entity_id_pattern(onto), "000")
    # …and what the document refuses, the server refuses with a 422 naming the field.
    for path, params, field in (
        ("/v1/entities", {"cursor": ""}, "cursor"),
        ("/v1/entities", {"cursor": "not base64!"}, "cursor"),
        ("/v1/webhooks", {"cursor": ""}, "cursor"),
        ("/v1/candidates", {"entity": "AAA"}, "entity"),
        ("/v1/audit", {"since": "0.5"}, "since"),
    ):
        answer = api.get(path, params=params)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == field, (path, answer.text)
    misspelt = api.post("/v1/webhooks", json={"url": "https://93.184.215.14/", "evnet_types": ["candidate.proposed"]})
    assert misspelt.status_code == 422 and misspelt.json()["detail"][0]["loc"] == ["body", "evnet_types"]

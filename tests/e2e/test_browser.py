"""The entity page in a real browser: Debian's headless Chromium driven by Playwright (no browser download).

One `platograph up` on embedded servers with the seeds serves every test here."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.up import platograph_up
from tests.integration.test_gateway import QUOTE, SEED_PAGE_COUNTS

pytestmark = pytest.mark.e2e
CHROMIUM = os.environ.get("PLATOGRAPH_TEST_CHROMIUM", "/usr/bin/chromium")
AUTH: dict[str, str] = {}  # the admin key of the module's `platograph up`, sent with every request
ARTIFACTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

try:
    import playwright.sync_api as playwright_sync
except ImportError:  # installed by `make install`: under CI its absence is a broken install, not a skip
    if os.environ.get("CI"):
        raise
    pytest.skip("playwright is not installed (make install)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        message = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with platograph_up(tmp_path_factory.mktemp("browser"), "browser") as up:
        AUTH.update(up.auth)
        yield up.url


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[object]:
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def candidates_ready(site: str, entity: str) -> list[dict[str, object]]:
    """Wait until the similarity service has proposed candidates for the entity (it embeds after seeding)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        page = httpx.get(
            f"{site}/v1/candidates", params={"entity": entity, "limit": 100}, timeout=10, headers=AUTH
        ).json()
        if page["items"]:
            return list(page["items"])
        time.sleep(0.5)
    raise AssertionError(f"no candidates for {entity}")


def test_the_seed_quote_page_shows_every_section_with_the_right_counts(site: str, browser: object) -> None:
    candidates_ready(site, QUOTE)
    page = browser.new_page(extra_http_headers=AUTH, viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{site}/entities/{QUOTE}")
    assert page.locator(".badge.type").first.inner_text() == "quote"
    assert page.locator(".badge.status-active").inner_text() == "active"
    assert QUOTE in page.locator(".id").inner_text()
    assert page.get_by_test_id("text").inner_text().startswith("Neural networks, trained with different objectives")
    assert "central thesis statement" in page.locator(".description").inner_text()
    source = page.locator("#source-paper").inner_text()
    assert "The Platonic Representation Hypothesis" in source and "extracted_from" in source
    assert "(2024)" in source and "Minyoung Huh" in source and "Phillip Isola" in source
    assert "Neighborhood — ranked by edge-count" in page.locator("#neighborhood h2").inner_text()
    headings = [h.split(" ")[0:2] for h in page.locator("#neighborhood h3").all_inner_texts()]
    assert [(h[0], int(h[1].strip("()"))) for h in headings] == SEED_PAGE_COUNTS
    assert page.locator(".group[data-type=question] li").first.locator(".edge").inner_text() == "gates"
    related = page.locator("#related h2").inner_text()
    assert related.startswith("Related by similarity (") and "cosine ≥ 0.50" in related and "no typed edge" in related
    assert page.locator("#related li[data-id]").count() >= 1
    assert page.locator("svg.picture circle").count() >= 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "seed-quote.png"), full_page=True)
    phone = browser.new_page(extra_http_headers=AUTH, viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    phone.goto(f"{site}/entities/{QUOTE}")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scroll


def test_accepting_a_candidate_by_clicking_moves_it_into_the_neighborhood(site: str, browser: object) -> None:
    items = candidates_ready(site, QUOTE)
    page = browser.new_page(extra_http_headers=AUTH)  # type: ignore[attr-defined]
    page.goto(f"{site}/entities/{QUOTE}")
    row = page.locator("#related li[data-id]").filter(has=page.locator("button.accept")).first
    other = row.get_attribute("data-id")
    assert other and other in {c["a"]["id"] for c in items} | {c["b"]["id"] for c in items}  # type: ignore[index]
    with page.expect_navigation():
        row.locator("button.accept").click()
    assert page.locator(f"#neighborhood li[data-id='{other}']").count() == 1
    assert page.locator(f"#related li[data-id='{other}']").count() == 0


def test_search_box_finds_names_and_texts(site: str, browser: object) -> None:
    page = browser.new_page(extra_http_headers=AUTH)  # type: ignore[attr-defined]
    page.goto(f"{site}/entities/{QUOTE}")
    page.fill("input[type=search]", "superposition")
    with page.expect_navigation():
        page.press("input[type=search]", "Enter")
    assert "hypothesis:superposition-hypothesis" in page.content()
    with page.expect_navigation():
        page.locator("a[href='/entities/hypothesis:superposition-hypothesis']").first.click()
    assert page.locator("h1").count() == 1 and "/entities/hypothesis:superposition-hypothesis" in page.url


def test_a_merged_id_redirects_to_the_survivor_and_unmerge_brings_it_back(site: str, browser: object) -> None:
    old, survivor = "claim:key-limitation-of-prh", "claim:key-limitation-of-the-prh-for-non-bijective-observations"
    merged = httpx.post(
        f"{site}/v1/entities/{old}/merge", json={"into": survivor, "by": "browser test"}, timeout=10, headers=AUTH
    )
    assert merged.status_code == 202, merged.text
    httpx.get(
        f"{site}/v1/projection",
        params={"position": merged.json()["position"], "wait_ms": 10_000},
        timeout=20,
        headers=AUTH,
    )
    page = browser.new_page(extra_http_headers=AUTH)  # type: ignore[attr-defined]
    page.goto(f"{site}/entities/{old}")
    assert page.url.endswith(f"/entities/{survivor}")
    assert page.locator(".id").inner_text() == survivor
    undone = httpx.post(f"{site}/v1/entities/{old}/unmerge", json={}, timeout=10, headers=AUTH)
    httpx.get(
        f"{site}/v1/projection",
        params={"position": undone.json()["position"], "wait_ms": 10_000},
        timeout=20,
        headers=AUTH,
    )
    page.goto(f"{site}/entities/{old}")
    assert page.url.endswith(f"/entities/{old}") and page.locator(".badge.status-active").count() == 1


def test_signing_in_with_the_printed_key_then_accepting_and_merging_from_the_page(site: str, browser: object) -> None:
    """A person with no header of their own: the page sends them to sign in, the session then carries their
    decisions, each with the page's CSRF token; the same request without it is refused."""
    candidates_ready(site, QUOTE)
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{site}/entities/{QUOTE}")
    assert "/sign-in" in page.url
    page.fill("input[name=key]", AUTH["Authorization"].removeprefix("Bearer "))
    with page.expect_navigation():
        page.click("button[type=submit]")
    response = page.goto(f"{site}/entities/{QUOTE}")
    assert "/entities/" in page.url and page.locator("[data-sign-out]").count() == 1
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    row = page.locator("#related li[data-id]").filter(has=page.locator("button.accept")).first
    other = row.get_attribute("data-id")
    with page.expect_navigation():
        row.locator("button.accept").click()
    assert page.locator(f"#neighborhood li[data-id='{other}']").count() == 1
    post = """([url, body, token]) => fetch(url, {method: "POST", body: JSON.stringify(body),
        headers: Object.assign({"content-type": "application/json"}, token ? {"x-csrf-token": token} : {})})
        .then(async (r) => [r.status, r.status < 300 ? (await r.json()).position : null])"""
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    merge = "/v1/entities/claim:key-limitation-of-prh/merge"
    into = {"into": "claim:key-limitation-of-the-prh-for-non-bijective-observations"}
    assert page.evaluate(post, [merge, into, None])[0] == 403  # the session cookie alone: refused
    status, position = page.evaluate(post, [merge, into, token])
    assert status == 202
    unmerge = merge.replace("/merge", f"/unmerge?after={position}")  # once the merge is projected
    assert page.evaluate(post, [unmerge, {}, token])[0] == 202
    context.close()

"""The console in a real browser against the live server: every change goes through the REST API."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer, TenantCtx, add_memories, list_all, make_cube, wait_enriched
from tests.console.conftest import sign_in

FACTS = ["Alice is allergic to peanuts", "Alice moved to Berlin in 2021", "Alice plays the cello on Sundays"]


def test_sign_in_create_a_cube_add_memories_and_run_the_search_lab(console: Page, tenant: TenantCtx) -> None:
    page = console
    sign_in(page, tenant.key)
    assert page.evaluate("Object.keys(sessionStorage)") == ["memcubed.key"]
    assert tenant.key not in page.url
    expect(page.locator("#who")).to_have_text("tenant key · admin · all cubes")
    page.get_by_label("Name", exact=True).fill("alice")
    page.get_by_role("button", name="Create cube").click()
    expect(page.locator("#flash")).to_have_text("Created cube alice.")
    [cube] = tenant.http.get("/v1/cubes").json()["cubes"]
    assert cube["name"] == "alice"

    page.get_by_role("link", name="alice").click()
    expect(page.get_by_role("heading", name="Memories")).to_be_visible()
    for n, fact in enumerate(FACTS, 1):
        page.get_by_label("Content").fill(fact)
        page.get_by_role("button", name="Add memory").click()
        expect(page.locator("#flash")).to_have_text("Memory added: admitted.")
        expect(page.locator("table tbody tr")).to_have_count(n)
    assert sorted(m["content"] for m in list_all(tenant, cube["id"])) == sorted(FACTS)
    expect(page.locator("table tbody tr")).to_have_count(3)

    page.get_by_role("link", name="Search lab").click()
    page.get_by_label("Query", exact=True).fill("what can't Alice eat?")
    page.get_by_label("Tier").select_option("fine")
    page.get_by_role("button", name="Run").click()
    hits = page.locator("ol.results li")
    expect(hits).to_have_count(3)
    expect(hits.first.locator("a")).to_have_text("Alice is allergic to peanuts")
    # Each hit's explain chart: a bar per channel that ranked it, plus the fused score.
    first_chart = hits.first.locator("svg.explain")
    channels = first_chart.locator("rect.bar:not(.fused):not(.graph)")
    expect(first_chart.locator("rect.bar.fused")).to_have_count(1)
    assert channels.count() >= 3
    assert all(float(w) > 0 for w in channels.evaluate_all("rs => rs.map(r => r.getAttribute('width'))"))
    expect(first_chart.locator("text").first).to_have_text("bm25_window")
    context = page.get_by_role("region", name="Agent context")
    expect(context.get_by_role("heading")).to_have_text(re.compile(r"Context the agent gets \(\d+ tokens\)"))
    expect(context.locator(".pill").first).to_have_text(re.compile(r"^retrieval: (low|mid|high)$"))

    page.get_by_label("Tier").select_option("budget:low")
    page.get_by_role("button", name="Run").click()
    results = page.get_by_role("region", name="Ranked results")
    expect(results.locator(".pill").first).to_have_text("retrieval: low")
    expect(results.locator("svg.explain")).to_have_count(0)  # a budget replaces explain
    expect(results.locator("ol.results li").first.locator("a")).to_have_text("Alice is allergic to peanuts")


def test_fork_snapshot_restore_and_download_a_cube(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "alice")
    add_memories(tenant, cube, *FACTS)
    sign_in(page, tenant.key)
    page.get_by_role("button", name="Manage alice").click()
    page.get_by_label("Snapshot label").fill("before")
    page.get_by_role("button", name="Take snapshot").click()
    expect(page.locator("#flash")).to_have_text("Snapshot of 3 memories taken.")
    expect(page.locator("table", has_text="Kind").locator("tbody tr td").first).to_have_text("before")
    add_memories(tenant, cube, "Alice learned to sail")
    page.get_by_role("button", name="Restore").click()
    expect(page.locator("#flash")).to_have_text("Restored: 0 changed, 0 recreated, 1 archived.")
    assert len(list_all(tenant, cube, status="active")) == 3
    with page.expect_download() as download:
        page.get_by_role("button", name="Download archive").click()
    assert download.value.suggested_filename == "cube-alice.tar"
    page.get_by_label("Fork name").fill("alice-copy")
    page.get_by_role("button", name="Fork cube").click()
    expect(page.locator("#flash")).to_have_text("Forked into alice-copy.")
    expect(page.get_by_role("heading", name="Manage alice-copy")).to_be_visible()
    cubes = {c["name"]: c["memory_count"] for c in tenant.http.get("/v1/cubes").json()["cubes"]}
    assert cubes == {"alice": 4, "alice-copy": 4}


def test_edit_a_memory_see_its_new_version_and_open_the_graph(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "alice")
    first, *_ = add_memories(tenant, cube, *({"content": f, "session_id": "s1"} for f in FACTS))
    wait_enriched(tenant, cube)
    sign_in(page, tenant.key)
    page.goto(f"/console#/memory/{first['id']}")
    expect(page.locator("#memory-content")).to_have_text(FACTS[0])
    page.get_by_label("Content").fill("Alice is allergic to peanuts and to cashews")
    page.get_by_label("Reason").fill("she told us about cashews")
    page.get_by_role("button", name="Save new version").click()
    expect(page.locator("#flash")).to_have_text("Saved version 2.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Memory (version 2, active)")
    expect(page.locator("#memory-content")).to_have_text("Alice is allergic to peanuts and to cashews")
    row = page.locator("table", has_text="Replaced because").locator("tbody tr").nth(1)
    expect(row.locator("td").nth(1)).to_have_text("she told us about cashews")
    expect(row.locator("ins")).to_have_text(" and to cashews")
    assert tenant.http.get(f"/v1/memories/{first['id']}").json()["content"].endswith("cashews")

    page.get_by_role("link", name="Graph neighbourhood").click()
    graph = page.get_by_role("group", name="Memory graph neighbourhood")
    expect(graph.locator("g.node")).to_have_count(3)
    expect(graph.locator("g.center")).to_have_count(1)
    links = tenant.http.get(f"/v1/memories/{first['id']}/links").json()["links"]
    types = {link["edge"]["type"] for link in links}
    assert "next_in_session" in types
    assert set(graph.locator("path.edge").evaluate_all("ps => ps.map(p => p.dataset.type)")) >= types
    # A node is keyboard reachable, and Enter centres the graph on it.
    other = graph.locator("g.node:not(.center)").first
    other_id = other.get_attribute("data-id")
    other.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"#/graph/{other_id}$"))
    expect(graph.locator(f"g.center[data-id='{other_id}']")).to_have_count(1)


def test_forget_a_detail_in_a_message_and_revert_it(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "bob")
    passport, other = add_memories(tenant, cube, "My passport number is X1234567", "I have a dog named Rex")
    sign_in(page, tenant.key)
    page.goto(f"/console#/memories/{cube}")
    page.get_by_label("Message").fill("Please forget my passport number")
    page.get_by_role("button", name="Add turn").click()
    expect(page.locator("#flash")).to_have_text(
        "Forget request applied: 1 memory(ies) forgotten. See Hygiene to revert.")
    assert tenant.http.get(f"/v1/memories/{passport['id']}").json()["status"] == "archived"

    page.get_by_role("link", name="Hygiene").click()
    requests = page.locator("table", has_text="Detector").locator("tbody tr")
    expect(requests).to_have_count(1)
    expect(requests.locator("td").nth(1)).to_have_text("passport number")
    expect(requests.locator("td").nth(4)).to_have_text("applied")
    expect(requests.locator("td").nth(5)).to_have_text(passport["id"][:8])
    page.get_by_role("button", name="Revert forget request about passport number").click()
    expect(page.locator("#flash")).to_have_text("Reverted: 1 memory(ies) restored.")
    expect(requests.locator("td").nth(4)).to_have_text("reverted")
    assert [tenant.http.get(f"/v1/memories/{m['id']}").json()["status"] for m in (passport, other)] == [
        "active", "active"]


def test_a_read_key_sees_no_edit_controls_and_its_attempt_is_refused(
        console: Page, live_server: LiveServer, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "shared")
    [memory] = add_memories(tenant, cube, "Alice is allergic to peanuts")
    made = tenant.http.post(f"/v1/tenants/{tenant.id}/keys", json={"cube_ids": [cube], "permission": "read"})
    sign_in(page, made.json()["api_key"])
    expect(page.locator("#who")).to_have_text("tenant key · read · 1 cube(s)")
    expect(page.get_by_role("link", name="shared")).to_be_visible()
    assert page.get_by_role("button", name="Create cube").count() == 0
    assert page.get_by_role("button", name="Manage shared").count() == 1
    page.get_by_role("button", name="Manage shared").click()
    expect(page.get_by_role("button", name="Download archive")).to_be_visible()
    for name in ("Fork cube", "Take snapshot", "Import JSONL", "Delete cube", "Save", "Rename cube"):
        assert page.get_by_role("button", name=name, exact=True).count() == 0, name

    page.goto(f"/console#/memories/{cube}")
    expect(page.locator("table tbody tr")).to_have_count(1)
    for name in ("Add memory", "Add turn"):
        assert page.get_by_role("button", name=name).count() == 0
    page.goto(f"/console#/memory/{memory['id']}")
    expect(page.locator("#memory-content")).to_have_text("Alice is allergic to peanuts")
    for name in ("Save new version", "Delete (restorable)", "Hard delete", "useful"):
        assert page.get_by_role("button", name=name, exact=True).count() == 0, name
    page.goto(f"/console#/hygiene/{cube}")
    expect(page.get_by_role("heading", name="Forgetting policy")).to_be_visible()
    assert page.get_by_role("button", name="Consolidate now").count() == 0
    assert page.get_by_role("button", name="Save policy").count() == 0

    # Trying anyway, through the console's own client: the API refuses, and the console says so.
    page.evaluate("id => import('/console/js/api.js').then(api => { api.patch(`/v1/memories/${id}`, "
                  "{content: 'changed'}); })", memory["id"])
    expect(page.locator("#flash")).to_have_text(
        "Not allowed: this API key has 'read' permission; this needs 'write'")
    assert tenant.http.get(f"/v1/memories/{memory['id']}").json()["version"] == 1


def test_a_memory_with_markup_renders_as_text(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "<b>cube</b>")
    xss = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    [memory] = add_memories(tenant, cube, {"content": xss, "tags": ["<i>t</i>"], "session_id": "<s>"})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, tenant.key)
    expect(page.get_by_role("link", name="<b>cube</b>")).to_be_visible()
    page.goto(f"/console#/memories/{cube}")
    expect(page.get_by_role("link", name=xss)).to_be_visible()
    expect(page.locator("table .pill")).to_have_text("<i>t</i>")
    page.goto(f"/console#/memory/{memory['id']}")
    expect(page.locator("#memory-content")).to_have_text(xss)
    assert page.locator("#memory-content script, #memory-content img, main img, main b, main i").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == []


def test_the_timeline_pages_with_the_cursor(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "many")
    add_memories(tenant, cube, *(f"note number {i}" for i in range(120)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/memories" in r.url else None)
    sign_in(page, tenant.key)
    page.goto(f"/console#/memories/{cube}")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first.locator("a")).to_have_text("note number 0")
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(100)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(120)
    assert page.get_by_role("button", name="Load more").count() == 0
    pages = [u for u in requests if f"/cubes/{cube}/memories" in u]
    assert len(pages) == 3 and all("limit=50" in u for u in pages)
    assert ["cursor=" in u for u in pages] == [False, True, True]
    # Filters go to the API, not through the pages already loaded.
    page.get_by_label("Status").select_option("archived")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(0)


def test_an_admin_key_creates_a_tenant_and_a_scoped_key(console: Page, live_server: LiveServer,
                                                         admin: httpx.Client) -> None:
    page = console
    sign_in(page, live_server.admin_key)
    expect(page.get_by_role("heading", name="Operations")).to_be_visible()
    expect(page.locator("#nav a")).to_have_text(["Operations"])
    page.get_by_label("New tenant name").fill("console-tenant")
    page.get_by_role("button", name="Create tenant").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("mck_")
    page.get_by_role("button", name="Sign in with this key").click()
    expect(page.locator("#who")).to_have_text("tenant key · admin · all cubes")
    page.get_by_label("Name", exact=True).fill("first")
    page.get_by_role("button", name="Create cube").click()
    expect(page.locator("#flash")).to_have_text("Created cube first.")
    page.get_by_role("link", name="Operations").click()
    page.get_by_label("Permission").select_option("write")
    page.get_by_label("first").check()
    page.get_by_role("button", name="Create key").click()
    scoped = page.locator("#new-key").inner_text()
    with live_server.client(scoped) as http:
        me = http.get("/v1/whoami").json()
        assert (me["permission"], len(me["cube_ids"])) == ("write", 1)
        keys = page.get_by_role("region", name="API keys").locator("tbody tr")
        expect(keys).to_have_count(2)
        expect(keys.nth(1).locator("td").nth(1)).to_have_text(me["key_id"])
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name=f"Revoke key {me['key_id']}").click()
        expect(page.locator("#flash")).to_have_text(f"Key {me['key_id']} revoked.")
        expect(keys.nth(1).locator("td").nth(5)).not_to_have_text("")
        assert http.get("/v1/whoami").status_code == 401


UNLABELLED = """() => [...document.querySelectorAll('main input, main select, main textarea')]
    .filter(el => !el.labels.length && !el.getAttribute('aria-label')).map(el => el.outerHTML)"""


def test_every_page_paints_fast_with_labelled_controls(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "alice")
    [memory] = add_memories(tenant, cube, "Alice is allergic to peanuts")
    page.goto("/console")
    paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
    assert 0 < paint < 1000
    sign_in(page, tenant.key)
    pages = {f"#/cubes/{cube}": "Manage alice", f"#/memories/{cube}": "Timeline", f"#/memory/{memory['id']}": "Links",
             "#/search": "Search lab", "#/graph": "Graph", f"#/graph/{memory['id']}": "Graph",
             f"#/hygiene/{cube}": "Forgetting policy", f"#/activation/{cube}": "Adapters (parametric memory)",
             "#/ops": "Jobs"}
    for route, heading in pages.items():
        page.goto(f"/console{route}")
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert page.evaluate(UNLABELLED) == [], route
        assert page.locator("#flash").inner_text() == "", route
    # Everything is reachable with the keyboard: Tab walks from the skip link into the page's controls.
    # (A reload keeps the tab signed in: the key is in its sessionStorage.)
    page.goto(f"/console#/memories/{cube}")
    page.reload()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    seen = set()
    for _ in range(45):
        page.keyboard.press("Tab")
        seen.add(page.evaluate("document.activeElement.textContent || document.activeElement.name"))
    assert {"Memories", "Sign out", "Add memory", "content"} <= seen


def test_a_duplicate_shows_the_admission_result_and_its_merge_chain(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "alice")
    [original] = add_memories(tenant, cube, "Alice is allergic to peanuts")
    sign_in(page, tenant.key)
    page.goto(f"/console#/memories/{cube}")
    page.get_by_label("Content").fill("Alice is allergic to peanuts")
    page.get_by_role("button", name="Add memory").click()
    expect(page.locator("#flash")).to_have_text(re.compile(
        f"^Memory added: merged into {original['id']} \\(similarity 1\\.000\\)\\.$"))
    [duplicate] = [m for m in list_all(tenant, cube) if m["id"] != original["id"]]
    assert (duplicate["status"], duplicate["merged_into"]) == ("archived", original["id"])
    page.goto(f"/console#/memory/{duplicate['id']}")
    chain = page.locator("ol.chain li")
    expect(chain).to_have_count(1)
    expect(chain).to_have_text("merged into Alice is allergic to peanuts (active)")
    chain.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"#/memory/{original['id']}$"))

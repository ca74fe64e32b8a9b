"""Screenshots of every console page, over a throwaway server with a small demo tenant, into docs/img/.

    .venv/bin/python scripts/console_screenshots.py [OUT_DIR]

Uses MEMCUBED_DATABASE_URL when set, else an embedded Postgres; drives the Debian chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from app.embedded import embedded_server

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "img"
TURNS = [
    ("user", "Alice", "Hi! I just got back from Lisbon, the trip was wonderful.", "2024-03-02T09:00:00Z"),
    ("assistant", None, "Welcome back! What did you enjoy most in Lisbon?", "2024-03-02T09:00:20Z"),
    ("user", "Alice", "The pasteis de nata, but careful: I am allergic to peanuts so I check every bakery.",
     "2024-03-02T09:01:00Z"),
    ("user", "Alice", "Next month I start a new job as a data engineer at Northwind.", "2024-03-02T09:02:00Z"),
    ("user", "Alice", "My passport number is X1234567, keep it handy for bookings.", "2024-03-02T09:03:00Z"),
]
FACTS = [
    {"content": "Alice is allergic to peanuts", "memory_type": "semantic", "tags": ["health"], "importance": 0.9},
    {"content": "Alice moved to Berlin in 2021", "memory_type": "semantic", "occurred_at": "2021-06-01T00:00:00Z",
     "tags": ["home"]},
    {"content": "Alice plays the cello with a string quartet on Sundays", "memory_type": "semantic",
     "tags": ["hobby"]},
    {"content": "When Alice books travel, always choose a window seat", "memory_type": "procedural",
     "tags": ["travel"]},
    {"content": "<script>alert('hi')</script> is shown as text, never run", "tags": ["xss"]},
]


def wait(http: httpx.Client, path: str, done: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(path).json()
        if done(body):
            return body
        time.sleep(0.2)
    raise TimeoutError(path)


def seed(url: str, admin_key: str) -> tuple[str, str, str, str]:
    """A tenant with two cubes, a conversation, facts, an edit, a forget request, a snapshot and a consolidation."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=300) as admin:
        tenant = admin.post("/v1/tenants", json={"name": "acme"}).json()
    key = tenant["api_key"]
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300)
    cube = http.post("/v1/cubes", json={"name": "alice", "description": "What the assistant knows about Alice"}).json()
    http.post("/v1/cubes", json={"name": "support-bot", "description": "Procedures of the support agent"})
    cid = cube["id"]
    http.post(f"/v1/cubes/{cid}/memories", json={"memories": FACTS}).raise_for_status()
    http.post(f"/v1/cubes/{cid}/messages", json={"session_id": "trip-2024-03", "user_id": "alice", "messages": [
        {"role": r, "speaker": s, "content": c, "timestamp": t} for r, s, c, t in TURNS]}).raise_for_status()
    wait(http, f"/v1/cubes/{cid}", lambda c: c["enrichment_pending"] == 0)
    memories = http.get(f"/v1/cubes/{cid}/memories", params={"limit": 100}).json()["memories"]
    berlin = next(m for m in memories if "Berlin" in m["content"])
    http.patch(f"/v1/memories/{berlin['id']}", json={"content": "Alice moved to Berlin in 2021 and lives in Kreuzberg",
                                                     "reason": "she told us the district"}).raise_for_status()
    http.post(f"/v1/cubes/{cid}/snapshots", json={"label": "before cleanup"}).raise_for_status()
    http.post(f"/v1/cubes/{cid}/messages", json={"session_id": "trip-2024-03", "messages": [
        {"role": "user", "speaker": "Alice", "content": "Please forget my passport number."}]}).raise_for_status()
    # A key shared with another agent, one revoked, and a duplicate (an edit skips admission) to consolidate.
    http.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "travel-agent", "cube_ids": [cid],
                                                        "permission": "read"}).raise_for_status()
    old = http.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "laptop"}).json()
    http.delete(f"/v1/keys/{old['id']}").raise_for_status()
    dup = http.post(f"/v1/cubes/{cid}/memories", json={"memories": [
        {"content": "Alice's favourite colour is teal", "memory_type": "semantic", "tags": ["health"]}]}).json()
    http.patch(f"/v1/memories/{dup['memories'][0]['id']}", json={"content": "Alice is allergic to peanuts",
                                                                  "reason": "typed twice"}).raise_for_status()
    # A policy strict enough that the Hygiene page's preview has something to show (scheduled runs off).
    http.put(f"/v1/cubes/{cid}/policy", json={"enabled": False, "threshold": 0.35, "min_age_hours": 0}
             ).raise_for_status()
    job = http.post(f"/v1/cubes/{cid}/consolidate", json={}).json()
    wait(http, f"/v1/jobs/{job['id']}", lambda j: j["status"] in ("done", "failed"))
    http.post(f"/v1/cubes/{cid}/activations", json={"query": "Alice's health and travel", "top_k": 4})
    lisbon = next(m for m in memories if "Lisbon" in m["content"] and m["memory_type"] == "episodic")
    return key, cid, lisbon["id"], berlin["id"]


def shot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / f"console-{name}.png", full_page=True)
    print("wrote", OUT / f"console-{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with embedded_server() as server, sync_playwright() as pw:
        key, cube, memory, edited = seed(server.url, server.admin_key)
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(base_url=server.url, viewport={"width": 1280, "height": 800})
        page.goto("/console")
        shot(page, "signin")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Manage alice").click()
        expect(page.get_by_role("heading", name="Snapshots")).to_be_visible()
        shot(page, "cubes")
        page.goto(f"/console#/memories/{cube}")
        expect(page.locator("table tbody tr").first).to_be_visible()
        shot(page, "memories")
        page.goto(f"/console#/memory/{edited}")
        expect(page.get_by_role("heading", name="Links")).to_be_visible()
        shot(page, "memory")
        page.get_by_role("link", name="Search lab").click()
        page.get_by_label("Query", exact=True).fill("what should Alice avoid eating?")
        page.get_by_label("Results", exact=True).fill("4")
        page.get_by_role("button", name="Run").click()
        expect(page.locator("svg.explain").first).to_be_visible()
        expect(page.get_by_role("region", name="Agent context").get_by_role("heading")).to_be_visible()
        shot(page, "search")
        page.goto(f"/console#/graph/{memory}")
        expect(page.locator("svg.graph g.center")).to_be_visible()
        shot(page, "graph")
        page.goto(f"/console#/hygiene/{cube}")
        expect(page.get_by_role("heading", name="Forgetting policy")).to_be_visible()
        page.locator("table", has_text="Trigger").locator("summary").first.click()  # what it merged
        shot(page, "hygiene")
        page.goto(f"/console#/activation/{cube}")
        expect(page.get_by_role("heading", name="Adapters (parametric memory)")).to_be_visible()
        shot(page, "activation")
        page.goto("/console#/ops")
        expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
        shot(page, "ops")
        browser.close()


if __name__ == "__main__":
    main()

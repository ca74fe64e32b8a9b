"""The console's rename, key list, event-time timeline with a speaker filter, forgetting preview and consolidation
details, in a real browser against the live server."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.conftest import TenantCtx, make_cube
from tests.console.conftest import sign_in
from tests.workers.helpers import consolidate, patch_content, wait_job

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
WHEN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")


def test_rename_a_cube_and_a_taken_name_is_refused(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "alice")
    make_cube(tenant, "bob")
    sign_in(page, tenant.key)
    page.get_by_role("button", name="Manage alice").click()
    expect(page.get_by_label("Rename to")).to_have_value("alice")
    page.get_by_label("Rename to").fill("alice-at-work")
    page.get_by_role("button", name="Rename cube").click()
    expect(page.locator("#flash")).to_have_text("Renamed to alice-at-work.")
    expect(page.get_by_role("heading", name="Manage alice-at-work")).to_be_visible()
    expect(page.get_by_role("link", name="alice-at-work")).to_be_visible()
    assert tenant.http.get(f"/v1/cubes/{cube}").json()["name"] == "alice-at-work"
    page.get_by_label("Rename to").fill("bob")
    page.get_by_role("button", name="Rename cube").click()
    expect(page.locator("#flash")).to_have_text("Error 409: a cube named 'bob' exists")
    assert tenant.http.get(f"/v1/cubes/{cube}").json()["name"] == "alice-at-work"


def test_the_timeline_is_in_event_order_and_filters_by_speaker(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "chat")
    for speaker, content, at in (("Mia", "I adopted a dog named Biscuit", "2024-03-02T10:00:00Z"),
                                 ("Leo", "Biscuit is a beagle, right?", "2024-03-01T09:00:00Z"),
                                 ("Mia", "Yes, and he steals socks", "2024-03-03T08:00:00Z")):
        r = tenant.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "messages": [
            {"role": "user", "speaker": speaker, "content": content, "timestamp": at}]})
        assert r.status_code == 201, r.text
    sign_in(page, tenant.key)
    page.goto(f"/console#/memories/{cube}")
    rows = page.locator("table tbody tr")
    expect(rows.locator("a.content")).to_have_text(
        ["Biscuit is a beagle, right?", "I adopted a dog named Biscuit", "Yes, and he steals socks"])
    expect(rows.locator("td:nth-child(1)")).to_have_text(["2024-03-01 09:00", "2024-03-02 10:00", "2024-03-03 08:00"])
    expect(rows.locator("td:nth-child(5)")).to_have_text(["Leo", "Mia", "Mia"])
    expect(page.locator("table caption")).to_have_text("3 shown, by event time")
    filters = page.get_by_role("form", name="Filter the timeline")
    filters.get_by_label("Speaker").fill("Mia")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows.locator("a.content")).to_have_text(["I adopted a dog named Biscuit", "Yes, and he steals socks"])


def test_hygiene_previews_the_policy_and_links_what_jobs_changed(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "home")
    written = tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [
        {"content": "Carol prefers green tea over coffee"},
        {"content": "The boiler was serviced in March 2019", "occurred_at": "2019-03-01T00:00:00Z"},
        {"content": "A reminder to renew the car insurance"}]}).json()["memories"]
    _, boiler, dup = (m["id"] for m in written)
    patch_content(tenant, dup, "Carol prefers green tea over coffee")  # an edit skips admission: a duplicate
    job = wait_job(tenant.http, consolidate(tenant, cube, summaries=False)["id"])
    assert (job["status"], job["result"]["merged_ids"]) == ("done", [dup]), job
    tenant.http.put(f"/v1/cubes/{cube}/policy", json={"threshold": 0.4, "min_age_hours": 0, "enabled": False})
    preview = tenant.http.get(f"/v1/cubes/{cube}/policy/preview").json()
    assert [x["memory"]["id"] for x in preview["memories"]] == [boiler], preview

    sign_in(page, tenant.key)
    page.goto(f"/console#/hygiene/{cube}")
    shown = page.get_by_role("region", name="Forgetting preview")
    expect(shown.locator("tbody tr")).to_have_count(1)
    expect(shown.locator("tbody td").nth(0)).to_have_text(f"{preview['memories'][0]['retention']:.3f}")
    expect(shown.locator("tbody a")).to_have_text("The boiler was serviced in March 2019")
    expect(shown.locator("caption")).to_have_text(
        "1 of 2 active memories would be archived now (2 old enough to be considered)")
    expect(shown).to_contain_text("Scheduled forgetting is off")
    assert tenant.http.get(f"/v1/memories/{boiler}").json()["status"] == "active"

    jobs = page.locator("table", has_text="Trigger").locator("tbody tr")
    jobs.first.locator("summary").click()
    merged = jobs.first.get_by_role("link", name=f"Merged memory {dup}")
    expect(merged).to_have_text(dup[:8])
    expect(jobs.first.locator(".changes p")).to_have_text(f"Merged (1): {dup[:8]}")

    page.get_by_role("button", name="Apply forgetting policy now").click()
    expect(page.locator("#flash")).to_have_text("Forgetting queued.")
    [forget] = [j for j in tenant.http.get("/v1/jobs", params={"cube_id": cube, "kind": "forget"}).json()["jobs"]]
    assert wait_job(tenant.http, forget["id"])["result"]["archived_ids"] == [boiler]
    page.reload()
    expect(page.get_by_role("region", name="Forgetting preview").locator("tbody tr")).to_have_count(0)
    forget_row = jobs.filter(has=page.locator("td:first-child", has_text=re.compile("^forget$")))
    forget_row.locator("summary").click()
    forget_row.get_by_role("link", name=f"Archived memory {boiler}").click()
    expect(page).to_have_url(re.compile(f"#/memory/{boiler}$"))
    expect(page.locator("#memory-content")).to_have_text("The boiler was serviced in March 2019")


def test_operations_lists_the_tenants_keys_and_revokes_one(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "shared")
    sign_in(page, tenant.key)
    page.get_by_role("link", name="Operations").click()
    keys = page.get_by_role("region", name="API keys").locator("tbody tr")
    expect(keys).to_have_count(1)
    expect(keys.first.locator("td")).to_have_text(
        ["default", UUID, "admin", "all", WHEN, "", "this key"])
    page.get_by_label("Key name").fill("reader")
    page.get_by_label("shared").check()
    page.get_by_role("button", name="Create key").click()
    expect(keys).to_have_count(2)
    made = tenant.http.get(f"/v1/tenants/{tenant.id}/keys").json()["keys"][1]
    assert (made["name"], made["cube_ids"], made["permission"]) == ("reader", [cube], "read")
    expect(keys.nth(1).locator("td")).to_have_text(
        ["reader", made["id"], "read", "1 cube(s)", WHEN, "", "Revoke"])
    assert page.locator("#new-key").inner_text() not in page.get_by_role("region", name="API keys").inner_text()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke key reader").click()
    expect(page.locator("#flash")).to_have_text(f"Key {made['id']} revoked.")
    expect(keys.nth(1).locator("td").nth(5)).to_have_text(WHEN)
    expect(keys.nth(1).get_by_role("button")).to_have_count(0)
    assert tenant.http.get(f"/v1/tenants/{tenant.id}/keys").json()["keys"][1]["revoked_at"] is not None


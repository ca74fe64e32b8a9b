"""Quotas in the console's Operations page: an admin key sees a tenant's limits, use and bars and sets overrides;
the tenant's own key sees them without the form, and a write past a quota shows the refusal's message."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer, TenantCtx, add_memories, make_cube
from tests.console.conftest import sign_in


def test_an_admin_sets_a_quota_and_the_tenant_sees_the_refusal(console: Page, live_server: LiveServer,
                                                               admin: httpx.Client, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "only")
    add_memories(tenant, cube, "The office is in Lyon", "Standup is at nine")
    s = live_server.settings
    sign_in(page, live_server.admin_key)
    page.get_by_label("Quotas of tenant").select_option(tenant.id)
    page.wait_for_load_state("networkidle")  # the panel is drawn again for the tenant picked: fill that one
    region = page.get_by_role("region", name="Quotas")
    rows = region.locator("tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.nth(0).locator("td")).to_have_text(["memories", "2", str(s.quota_memories), "", "default"])
    expect(rows.nth(1).locator("td")).to_have_text(["cubes", "1", str(s.quota_cubes), "", "default"])
    expect(rows.nth(3).locator("td")).to_have_text(["adapter_bytes", "0 B", "4.0 GiB", "", "default"])
    expect(region.get_by_role("meter", name="memories: 2 of 1000000 used")).to_have_attribute("value", "2")

    page.get_by_label("Limit: cubes").fill("1")
    page.get_by_label("Limit: memories").fill("3")
    page.get_by_role("button", name="Save quotas").click()
    expect(page.locator("#flash")).to_have_text("Quotas saved.")
    expect(rows.nth(1).locator("td")).to_have_text(["cubes", "1", "1", "", "override"])
    expect(region.get_by_role("meter", name="cubes: 1 of 1 used")).to_have_attribute("value", "1")
    got = {q["name"]: q for q in admin.get(f"/v1/tenants/{tenant.id}/quotas").json()["quotas"]}
    assert [(got[n]["limit"], got[n]["overridden"]) for n in ("memories", "cubes", "snapshots")] == [
        (3, True), (1, True), (s.quota_snapshots, False)]
    expect(page.get_by_label("Limit: cubes")).to_have_value("1")
    expect(page.get_by_label("Limit: snapshots")).to_have_value("")

    # The tenant's own key: the same table, no form; a cube past the quota is refused with its message.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, tenant.key)
    page.get_by_label("Name", exact=True).fill("second")
    page.get_by_role("button", name="Create cube").click()
    expect(page.locator("#flash")).to_have_text(
        "Quota exceeded: the tenant's cubes quota is 1: 1 used, 1 more requested")
    assert [c["name"] for c in tenant.http.get("/v1/cubes").json()["cubes"]] == ["only"]
    page.get_by_role("link", name="Operations").click()
    rows = page.get_by_role("region", name="Quotas").locator("tbody tr")
    expect(rows.nth(0).locator("td")).to_have_text(["memories", "2", "3", "", "override"])
    expect(page.get_by_role("form", name="Quota overrides")).to_have_count(0)


def test_delete_a_snapshot_in_the_console(console: Page, tenant: TenantCtx) -> None:
    page = console
    cube = make_cube(tenant, "alice")
    add_memories(tenant, cube, "Alice plays the cello")
    assert tenant.http.post(f"/v1/cubes/{cube}/snapshots", json={"label": "old"}).status_code == 201
    sign_in(page, tenant.key)
    page.get_by_role("button", name="Manage alice").click()
    expect(page.get_by_text("1 snapshot(s)")).to_be_visible()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete snapshot old").click()
    expect(page.locator("#flash")).to_have_text("Snapshot deleted.")
    expect(page.get_by_text("0 snapshot(s)")).to_be_visible()
    expect(page.get_by_role("button", name="Delete snapshot old")).to_have_count(0)
    assert tenant.http.get(f"/v1/cubes/{cube}/snapshots").json() == {"snapshots": []}


def test_deleting_a_cube_in_the_console_goes_back_to_the_list(console: Page, tenant: TenantCtx) -> None:
    """The delete answers 204 (no body): the page still takes it as done and leaves the deleted cube's page."""
    page = console
    make_cube(tenant, "keep")
    make_cube(tenant, "gone")
    sign_in(page, tenant.key)
    page.get_by_role("button", name="Manage gone").click()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete cube").click()
    expect(page.locator("#flash")).to_have_text("Cube deleted.")
    expect(page.get_by_role("button", name="Manage keep")).to_be_visible()
    expect(page.get_by_role("button", name="Manage gone")).to_have_count(0)
    assert [c["name"] for c in tenant.http.get("/v1/cubes").json()["cubes"]] == ["keep"]

"""Jobs, policy, feedback and purge routes: shapes, validation, tenant isolation, audit."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import LiveServer, TenantCtx, assert_error, list_all, sql, validation_fields
from tests.workers.helpers import consolidate, get, wait_job, write


def test_consolidate_returns_a_job_that_runs_to_done(tenant: TenantCtx, cube: str) -> None:
    write(tenant, cube, "The office moved to the third floor")
    job = consolidate(tenant, cube)
    assert job["cube_id"] == cube and job["kind"] == "consolidate" and job["status"] in ("queued", "running", "done")
    assert job["params"] == {"forget": False, "summaries": True} and job["trigger"] == "api"
    done = wait_job(tenant.http, job["id"])
    assert done["status"] == "done" and done["attempts"] == 1 and done["error"] is None
    assert done["progress"] == 1.0 and done["started_at"] and done["finished_at"]
    assert done["result"]["active_before"] == 1 and done["result"]["active_after"] == 1
    listed = tenant.http.get("/v1/jobs", params={"cube_id": cube, "status": "done"}).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert tenant.http.get("/v1/jobs", params={"cube_id": cube, "status": "failed"}).json() == {"jobs": []}
    assert tenant.http.get("/v1/jobs", params={"kind": "forget"}).json() == {"jobs": []}
    forget = tenant.http.post(f"/v1/cubes/{cube}/forget")
    assert forget.status_code == 202 and forget.json()["kind"] == "forget"
    assert wait_job(tenant.http, forget.json()["id"])["status"] == "done"


def test_jobs_and_cubes_of_another_tenant_are_404(tenant: TenantCtx, other_tenant: TenantCtx, cube: str) -> None:
    job = consolidate(tenant, cube)
    wait_job(tenant.http, job["id"])
    memory = write(tenant, cube, "A private note about the budget")["memories"][0]["id"]
    o = other_tenant.http
    assert_error(o.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
    assert_error(o.post(f"/v1/jobs/{job['id']}/cancel"), 404, "not_found")
    assert_error(o.get("/v1/jobs", params={"cube_id": cube}), 404, "not_found")
    assert o.get("/v1/jobs").json() == {"jobs": []}
    assert_error(o.post(f"/v1/cubes/{cube}/consolidate"), 404, "not_found")
    assert_error(o.post(f"/v1/cubes/{cube}/forget"), 404, "not_found")
    assert_error(o.get(f"/v1/cubes/{cube}/policy"), 404, "not_found")
    assert_error(o.put(f"/v1/cubes/{cube}/policy", json={"threshold": 0.5}), 404, "not_found")
    assert_error(o.post(f"/v1/cubes/{cube}/purge"), 404, "not_found")
    assert_error(o.post(f"/v1/memories/{memory}/feedback", json={"signal": "useful"}), 404, "not_found")
    assert_error(o.delete(f"/v1/memories/{memory}", params={"hard": "true"}), 404, "not_found")
    assert_error(tenant.http.get(f"/v1/jobs/{uuid.uuid4()}"), 404, "not_found")
    assert get(tenant, memory)["status"] == "active"


@pytest.mark.parametrize(("body", "field"), [
    ({"threshold": 1.5}, "threshold"),
    ({"threshold": -0.1}, "threshold"),
    ({"max_active": 0}, "max_active"),
    ({"ttl_days": 0}, "ttl_days"),
    ({"half_life_days": -1}, "half_life_days"),
    ({"min_age_hours": -1}, "min_age_hours"),
    ({"enabled": "sometimes"}, "enabled"),
    ({"colour": "red"}, "colour"),
])
def test_policy_validation_is_422_with_the_field(tenant: TenantCtx, cube: str, body: dict[str, object],
                                                 field: str) -> None:
    error = assert_error(tenant.http.put(f"/v1/cubes/{cube}/policy", json=body), 422, "validation_error")
    assert validation_fields(error) == [field]


def test_policy_defaults_then_put_and_get(tenant: TenantCtx, cube: str) -> None:
    default = tenant.http.get(f"/v1/cubes/{cube}/policy").json()
    assert default["is_default"] is True and default["threshold"] == 0.2 and default["max_active"] is None
    body = {"enabled": True, "threshold": 0.35, "max_active": 100, "ttl_days": 365, "half_life_days": 10,
            "min_age_hours": 0}
    r = tenant.http.put(f"/v1/cubes/{cube}/policy", json=body)
    assert r.status_code == 200, r.text
    got = tenant.http.get(f"/v1/cubes/{cube}/policy").json()
    assert {k: got[k] for k in body} == body and got["is_default"] is False and got["cube_id"] == cube
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/consolidate", json={"forget": "maybe"}), 422,
                 "validation_error")


def test_feedback_counts_and_validation(tenant: TenantCtx, cube: str) -> None:
    m = write(tenant, cube, "The wifi password is hunter2")["memories"][0]
    for signal in ("useful", "useful", "wrong", "not_useful"):
        r = tenant.http.post(f"/v1/memories/{m['id']}/feedback", json={"signal": signal})
        assert r.status_code == 200, r.text
    assert r.json()["feedback"] == {"useful": 2, "not_useful": 1, "wrong": 1}
    assert r.json()["version"] == 1  # feedback is a signal, not an edit
    error = assert_error(tenant.http.post(f"/v1/memories/{m['id']}/feedback", json={"signal": "meh"}), 422,
                         "validation_error")
    assert validation_fields(error) == ["signal"]
    assert_error(tenant.http.post(f"/v1/memories/{uuid.uuid4()}/feedback", json={"signal": "useful"}), 404,
                 "not_found")


def test_hard_delete_and_purge_destroy_only_on_request_and_are_audited(live_server: LiveServer, tenant: TenantCtx,
                                                                       cube: str) -> None:
    url = live_server.settings.database_url
    assert url is not None
    a, b, c = (m["id"] for m in write(tenant, cube, "Keep this active memory", "Soft deleted then purged",
                                      "Destroyed right away")["memories"])
    assert tenant.http.delete(f"/v1/memories/{b}").json()["status"] == "deleted"
    r = tenant.http.delete(f"/v1/memories/{c}", params={"hard": "true"})
    assert r.status_code == 200 and r.json()["id"] == c
    assert_error(tenant.http.get(f"/v1/memories/{c}"), 404, "not_found")
    assert sql(url, "SELECT count(*) FROM memory_versions WHERE memory_id = %s", (c,)) == [(0,)]
    purged = tenant.http.post(f"/v1/cubes/{cube}/purge", json={"statuses": ["deleted"]})
    assert purged.status_code == 200, purged.text
    assert purged.json() == {"purged": 1, "memory_ids": [b]}
    assert [m["id"] for m in list_all(tenant, cube)] == [a]
    actions = sql(url, "SELECT action, object_id, details FROM audit_log WHERE tenant_id = %s "
                       "AND action IN ('memory.purge', 'cube.purge') ORDER BY id", (tenant.id,))
    assert [(x[0], x[1]) for x in actions] == [("memory.purge", c), ("cube.purge", cube)]
    assert actions[1][2]["memory_ids"] == [b]
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/purge", json={"statuses": ["active"]}), 422,
                 "validation_error")


def test_cancel_only_a_queued_job(tenant: TenantCtx, cube: str) -> None:
    job = consolidate(tenant, cube)
    done = wait_job(tenant.http, job["id"])
    error = assert_error(tenant.http.post(f"/v1/jobs/{job['id']}/cancel"), 409, "conflict")
    assert error["details"]["status"] == done["status"]

"""Consolidation and forgetting jobs on the embedded default (in-process queue), over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.embedded import serve_in_thread
from app.services import consolidation
from tests.conftest import Databases, LiveServer, TenantCtx, make_settings, new_tenant, search_ids, sql
from tests.workers.helpers import consolidate, get, patch_content, wait_job, write

Json = dict[str, Any]


def turns(n: int, day: int = 1) -> list[Json]:
    facts = ["I started a pottery class on Tuesdays at the community centre.",
             "My sister Ana is moving to Lisbon in the spring for a new job.",
             "We adopted a rescue dog named Biscuit from the shelter last month.",
             "I have been training for the city half marathon in October.",
             "The kids painted a mural of sunflowers in the back garden.",
             "I finally finished reading the whole Dune series this week.",
             "Ana says the flat in Lisbon has a balcony facing the river.",
             "Biscuit keeps stealing socks from the laundry basket.",
             "Training runs are ten kilometres on Sunday mornings now."]
    return [{"role": "user" if i % 2 == 0 else "assistant", "speaker": "Mia" if i % 2 == 0 else "Leo",
             "content": facts[i % len(facts)], "timestamp": f"2023-05-{day:02d}T10:{i:02d}:00Z"} for i in range(n)]


@pytest.mark.parametrize("search_chunk", [256, 2])  # one range search, or three chunks of two memories
def test_merge_and_supersede_keep_versions_and_search_shows_the_current_fact(
        live_server: LiveServer, tenant: TenantCtx, cube: str, search_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consolidation, "SEARCH_CHUNK", search_chunk)
    canon, one, two, other = (m["id"] for m in write(
        tenant, cube, "Carol prefers green tea over coffee", "A note about the quarterly budget review",
        "A reminder to renew the car insurance", "The standup meeting is every Monday morning")["memories"])
    blue = write(tenant, cube, {"content": "My favorite color is blue", "user_id": "u1",
                                "occurred_at": "2023-01-01T00:00:00Z"})["memories"][0]["id"]
    green = write(tenant, cube, {"content": "My favorite dessert is flan", "user_id": "u1",
                                 "occurred_at": "2024-01-01T00:00:00Z"})["memories"][0]["id"]
    # Edits bypass admission and the supersession at write: two exact duplicates of the first memory are now
    # active, and so are two values of one attribute, left to consolidation.
    patch_content(tenant, one, "Carol prefers green tea over coffee")
    patch_content(tenant, two, "Carol prefers green tea over coffee")
    patch_content(tenant, green, "My favorite color is green")

    job = wait_job(tenant.http, consolidate(tenant, cube)["id"])
    assert job["status"] == "done", job
    assert job["result"]["merged"] == 2 and job["result"]["superseded"] == 1, job["result"]
    assert sorted(job["result"]["merged_ids"]) == sorted([one, two]) and job["result"]["superseded_ids"] == [blue]
    versions = {}
    for dup in (one, two):
        m = get(tenant, dup)
        assert m["status"] == "archived" and m["merged_into"] == canon
        last = tenant.http.get(f"/v1/memories/{dup}/history").json()["versions"][-1]
        assert last["reason"].startswith(f"merged into {canon}") and last["snapshot"]["status"] == "active"
        versions[dup] = m["version"]
    assert get(tenant, canon)["status"] == "active" and get(tenant, other)["status"] == "active"
    old = get(tenant, blue)
    assert old["status"] == "archived" and old["superseded_by"] == green and old["content"] == \
        "My favorite color is blue"
    history = tenant.http.get(f"/v1/memories/{blue}/history").json()
    assert history["versions"][-1]["reason"].startswith(f"superseded by {green}")
    assert history["versions"][-1]["snapshot"]["status"] == "active"
    hits = search_ids(tenant, "what is my favorite color", [cube])
    assert green in hits and blue not in hits
    assert search_ids(tenant, "Carol tea", [cube]).count(canon) == 1
    assert one not in search_ids(tenant, "Carol tea", [cube])
    url = live_server.settings.database_url
    assert url is not None
    rows = sql(url, "SELECT object_id, details->>'job_id' FROM audit_log WHERE action IN "
                    "('memory.merge', 'memory.supersede') AND tenant_id = %s ORDER BY object_id", (tenant.id,))
    assert sorted(r[0] for r in rows) == sorted([one, two, blue]) and {r[1] for r in rows} == {job["id"]}
    edges = sql(url, "SELECT source_id::text, target_id::text FROM edges WHERE type = 'updates' AND cube_id = %s",
                (cube,))
    assert edges == [(green, blue)]
    # A second run finds nothing left to merge: nothing is merged twice.
    again = wait_job(tenant.http, consolidate(tenant, cube)["id"])
    assert again["result"]["merged"] == 0 and again["result"]["superseded"] == 0
    assert get(tenant, one)["version"] == versions[one]


def test_session_summaries_are_linked_to_their_sources_and_tiers_move(live_server: LiveServer, tenant: TenantCtx,
                                                                      cube: str) -> None:
    r = tenant.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "messages": turns(9)})
    assert r.status_code == 201, r.text
    sources = {m["id"] for m in r.json()["memories"] if m["status"] == "active"}
    job = wait_job(tenant.http, consolidate(tenant, cube)["id"])
    assert job["status"] == "done", job
    summaries = [m for m in tenant.http.get(f"/v1/cubes/{cube}/memories",
                                            params={"memory_type": "semantic"}).json()["memories"]]
    assert len(summaries) == 1
    summary = summaries[0]
    assert summary["source"]["type"] == "summary" and summary["source"]["method"] == "extractive"
    assert summary["content"].startswith("Summary of session s1 (2023-05-01): ")
    assert summary["tier"] == "mid" and summary["session_id"] == "s1"
    assert any(t["content"] in summary["content"] for t in turns(9))
    url = live_server.settings.database_url
    assert url is not None
    linked = sql(url, "SELECT target_id::text FROM edges WHERE type = 'derived_from' AND source_id = %s",
                 (summary["id"],))
    assert {r[0] for r in linked} == sources
    assert summary["id"] in search_ids(tenant, "Summary of session s1 pottery Lisbon Biscuit", [cube])
    # Old turns moved from short to mid term, each as a version of its own.
    turn = get(tenant, next(iter(sources)))
    assert turn["tier"] == "short"  # the newest session stays short-term
    again = wait_job(tenant.http, consolidate(tenant, cube)["id"])
    assert again["result"]["summaries"] == 0  # one summary per session


def test_forgetting_archives_and_restore_brings_back_the_exact_content(tenant: TenantCtx, cube: str) -> None:
    contents = ["The boiler was serviced in March 2019 by Hendricks & Sons.",
                "Übergrößen-Laden: the shoe shop on Elm Street closes at 18:30 — ask for Jörg.",
                "Old note: the Tuesday book club read 'Middlemarch' in 2019."]
    ids = [m["id"] for m in write(tenant, cube, *[{"content": c, "occurred_at": "2019-06-01T00:00:00Z"}
                                                 for c in contents])["memories"]]
    keep = write(tenant, cube, "The spare key is under the blue flower pot")["memories"][0]["id"]
    r = tenant.http.post(f"/v1/memories/{keep}/feedback", json={"signal": "useful"})
    assert r.status_code == 200
    r = tenant.http.put(f"/v1/cubes/{cube}/policy", json={"threshold": 0.4, "min_age_hours": 0,
                                                          "half_life_days": 30})
    assert r.status_code == 200, r.text
    before = {i: get(tenant, i) for i in ids}
    # The preview names what the job will archive, lowest retention first, and changes nothing.
    preview = tenant.http.get(f"/v1/cubes/{cube}/policy/preview").json()
    assert (preview["active"], preview["considered"], preview["total"]) == (4, 4, 3)
    assert sorted(item["memory"]["id"] for item in preview["memories"]) == sorted(ids)
    scores = [item["retention"] for item in preview["memories"]]
    assert scores == sorted(scores) and all(0 < r < 0.4 for r in scores)
    assert all(item["reason"] == f"forgotten: retention {item['retention']:.3f} below the cube's threshold 0.4"
               for item in preview["memories"])
    assert {i: get(tenant, i) for i in ids} == before
    assert [x["memory"]["id"] for x in tenant.http.get(f"/v1/cubes/{cube}/policy/preview",
                                                       params={"limit": 1}).json()["memories"]] == \
        [preview["memories"][0]["memory"]["id"]]
    job = wait_job(tenant.http, tenant.http.post(f"/v1/cubes/{cube}/forget").json()["id"])
    assert job["status"] == "done" and job["result"]["archived"] == 3, job
    assert sorted(job["result"]["archived_ids"]) == sorted(ids)
    assert tenant.http.get(f"/v1/cubes/{cube}/policy/preview").json()["total"] == 0
    assert get(tenant, keep)["status"] == "active"
    for i in ids:
        m = get(tenant, i)
        assert m["status"] == "archived" and m["version"] == before[i]["version"] + 1
        assert i not in search_ids(tenant, before[i]["content"], [cube])
        reason = tenant.http.get(f"/v1/memories/{i}/history").json()["versions"][-1]["reason"]
        assert reason.startswith("forgotten: retention")
        restored = tenant.http.post(f"/v1/memories/{i}/restore")
        assert restored.status_code == 200, restored.text
        back = restored.json()
        assert back["status"] == "active" and back["content"] == before[i]["content"]
        assert back["content_hash"] == before[i]["content_hash"] and back["occurred_at"] == before[i]["occurred_at"]
        assert back["metadata"] == before[i]["metadata"] and back["tags"] == before[i]["tags"]
        assert i in search_ids(tenant, before[i]["content"], [cube])


def test_max_active_keeps_the_highest_retention(tenant: TenantCtx, cube: str) -> None:
    a, b, c = (m["id"] for m in write(tenant, cube, "Parking permit number is on the fridge",
                                      "The dentist appointment moved to Friday",
                                      "Grandma's lasagne recipe uses nutmeg")["memories"])
    for _ in range(2):
        tenant.http.post(f"/v1/memories/{c}/feedback", json={"signal": "useful"})
    tenant.http.post(f"/v1/memories/{a}/feedback", json={"signal": "wrong"})
    tenant.http.put(f"/v1/cubes/{cube}/policy", json={"threshold": 0.0, "max_active": 1, "min_age_hours": 0})
    job = wait_job(tenant.http, consolidate(tenant, cube, forget=True)["id"])
    assert job["result"]["forgetting"]["archived"] == 2, job
    assert [get(tenant, i)["status"] for i in (a, b, c)] == ["archived", "archived", "active"]


# -- the LLM path, against a small OpenAI-compatible server -----------------------------------------------------
class FakeOpenAI(BaseHTTPRequestHandler):
    requests: list[Json] = []  # noqa: RUF012 - shared by the server's handler instances

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        reply = {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop", "message": {
                     "role": "assistant", "content": "Mia takes pottery classes; her sister Ana moves to Lisbon."}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def llm_server(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    fake = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    settings = make_settings(databases, Path(tmp_path_factory.mktemp("llm")),
                             llm_base_url=f"http://127.0.0.1:{fake.server_address[1]}/v1", llm_api_key="sk-test",
                             llm_model="fake-model", schedule_minutes=0)
    with serve_in_thread(settings) as url:
        assert settings.admin_key is not None
        yield LiveServer(url=url, admin_key=settings.admin_key, settings=settings)
    fake.shutdown()


def test_llm_summaries_through_an_openai_compatible_api(llm_server: LiveServer) -> None:
    with llm_server.client(llm_server.admin_key) as admin:
        t = new_tenant(llm_server, admin)
    cube = t.http.post("/v1/cubes", json={"name": "llm"}).json()["id"]
    t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s9", "messages": turns(8, day=3)})
    job = wait_job(t.http, consolidate(t, cube)["id"])
    assert job["status"] == "done", job
    summary = t.http.get(f"/v1/cubes/{cube}/memories", params={"memory_type": "semantic"}).json()["memories"][0]
    assert summary["content"] == ("Summary of session s9 (2023-05-03): "
                                  "Mia takes pottery classes; her sister Ana moves to Lisbon.")
    assert summary["source"]["method"] == "llm"
    sent = FakeOpenAI.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert sent["body"]["model"] == "fake-model"
    assert "Mia: I started a pottery class" in sent["body"]["messages"][1]["content"]
    t.http.close()

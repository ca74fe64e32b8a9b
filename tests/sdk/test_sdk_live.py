"""Both clients against the live server (uvicorn on a free port, real Postgres, real embedder): every
method, the error classes the server's statuses map to, and a retried write that is applied once."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import memcubed
import pytest

from tests.sdk.sdk_helpers import LiveTenant

T1 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2024, 3, 2, 18, 30, tzinfo=timezone(timedelta(hours=-5)))


# --- sync ---------------------------------------------------------------------------------------------


def test_sync_client_every_route(live_client: memcubed.Client, tmp_path: Path) -> None:
    client = live_client
    assert client.health() == {"status": "ok"}
    assert client.ready()["status"] == "ready"

    cube = client.cubes.create("main", description="test cube", owner_id="owner-1")
    assert (cube.name, cube.description, cube.owner_id, cube.status, cube.memory_count) == (
        "main",
        "test cube",
        "owner-1",
        "active",
        0,
    )
    assert cube.created_at.tzinfo is not None
    assert [c.id for c in client.cubes.list()] == [cube.id]
    assert client.cubes.get(cube.id).name == "main"

    allergy = client.memories.add(
        cube.id,
        "Alice is allergic to peanuts",
        memory_type="semantic",
        user_id="alice",
        agent_id="agent-1",
        session_id="s0",
        occurred_at=T1,
        tags=["health"],
        metadata={"confidence": 0.9},
        source={"kind": "test"},
        importance=0.8,
    )
    assert (allergy.cube_id, allergy.kind, allergy.memory_type, allergy.content) == (
        cube.id,
        "plaintext",
        "semantic",
        "Alice is allergic to peanuts",
    )
    assert (allergy.user_id, allergy.agent_id, allergy.session_id) == ("alice", "agent-1", "s0")
    assert (allergy.tags, allergy.metadata, allergy.source, allergy.importance) == (
        ["health"],
        {"confidence": 0.9},
        {"kind": "test"},
        0.8,
    )
    assert (allergy.occurred_at, allergy.status, allergy.version, allergy.embedding_dim) == (
        T1,
        "active",
        1,
        384,
    )

    batch = client.memories.add_many(
        cube.id,
        [
            memcubed.MemoryIn(content="Alice moved to Berlin in 2021", user_id="alice"),
            {"content": "The weekly sync is on Tuesdays at 10am", "memory_type": "procedural"},
        ],
    )
    assert [(m.content, m.memory_type) for m in batch] == [
        ("Alice moved to Berlin in 2021", "episodic"),
        ("The weekly sync is on Tuesdays at 10am", "procedural"),
    ]

    turns = client.messages.add(
        cube.id,
        "chat-1",
        [
            {
                "role": "user",
                "content": "I just adopted a cat named Miso",
                "timestamp": T2,
                "speaker": "Alice",
            },
            memcubed.Message(role="assistant", content="Congratulations on adopting Miso!"),
        ],
        user_id="alice",
    )
    assert [(m.session_id, m.memory_type, m.user_id) for m in turns] == [("chat-1", "episodic", "alice")] * 2
    assert turns[0].occurred_at == T2
    assert "Miso" in turns[0].content

    all_ids = {allergy.id, *(m.id for m in batch), *(m.id for m in turns)}
    listed = list(client.memories.list(cube.id, page_size=2))  # 5 memories: 3 pages
    assert len(listed) == 5
    assert {m.id for m in listed} == all_ids
    assert {m.id for m in client.memories.list(cube.id, session_id="chat-1")} == {m.id for m in turns}
    assert [m.id for m in client.memories.list(cube.id, tag="health")] == [allergy.id]
    assert [m.id for m in client.memories.list(cube.id, memory_type="procedural")] == [batch[1].id]
    assert {m.id for m in client.memories.list(cube.id, user_id="alice")} == {
        allergy.id,
        batch[0].id,
        *(m.id for m in turns),
    }
    assert client.memories.get(allergy.id).content == "Alice is allergic to peanuts"

    updated = client.memories.update(
        allergy.id,
        content="Alice is allergic to peanuts and shellfish",
        tags=["health", "food"],
        reason="correction",
    )
    assert (updated.id, updated.version, updated.content, updated.tags) == (
        allergy.id,
        2,
        "Alice is allergic to peanuts and shellfish",
        ["health", "food"],
    )
    history = client.memories.history(allergy.id)
    assert (history.memory_id, history.current_version) == (allergy.id, 2)
    assert [(v.version, v.reason, v.snapshot["content"]) for v in history.versions] == [
        (1, "correction", "Alice is allergic to peanuts")
    ]

    found = client.search("which food is Alice allergic to?", [cube.id], top_k=2)
    assert len(found.results) == 2
    assert found.results[0].memory.id == allergy.id
    assert found.results[0].score > found.results[1].score
    assert found.took_ms >= 0
    only_chat = client.search("pets", cube.id, filters={"session_id": "chat-1"}, top_k=10)
    assert {m.id for m in only_chat.memories} == {m.id for m in turns}

    deleted = client.memories.delete(allergy.id)
    assert (deleted.id, deleted.status) == (allergy.id, "deleted")
    assert allergy.id not in {m.id for m in client.search("allergic", [cube.id], top_k=10).memories}
    assert [m.id for m in client.memories.list(cube.id, status="deleted")] == [allergy.id]
    restored = client.memories.restore(allergy.id)
    assert (restored.id, restored.status) == (allergy.id, "active")
    assert client.search("food allergy", [cube.id], top_k=1).results[0].memory.id == allergy.id

    export_path = tmp_path / "main.jsonl"
    written = client.cubes.export(cube.id, export_path)
    assert written == export_path.stat().st_size
    lines = [json.loads(line) for line in export_path.read_bytes().splitlines()]
    assert lines[0]["type"] == "header"
    assert {line["memory"]["id"] for line in lines[1:]} == all_ids

    copy = client.cubes.create("copy")
    imported = client.cubes.import_(copy.id, export_path)
    assert imported.imported == 5
    assert set(imported.id_map) == all_ids
    copied = {m.id: m for m in client.memories.list(copy.id)}
    assert set(copied) == set(imported.id_map.values())
    assert copied[imported.id_map[allergy.id]].content == "Alice is allergic to peanuts and shellfish"
    assert client.memories.history(imported.id_map[allergy.id]).current_version == restored.version

    # A binary file object works the same way as a path.
    buffer = io.BytesIO()
    assert client.cubes.export(copy.id, buffer) == len(buffer.getvalue())
    assert len(buffer.getvalue().splitlines()) == 6

    client.cubes.delete(copy.id)
    with pytest.raises(memcubed.NotFoundError) as caught:
        client.cubes.get(copy.id)
    assert caught.value.code == "not_found"
    assert caught.value.request_id


def test_admin_surface(sdk_admin: memcubed.Client, live_tenant: LiveTenant) -> None:
    name = f"sdk-admin-{uuid.uuid4().hex[:8]}"
    created = sdk_admin.tenants.create(name)
    assert created.name == name
    assert created.api_key and created.key_id
    listed = {t.id: t for t in sdk_admin.tenants.list()}
    assert listed[created.id].name == name
    assert listed[created.id].created_at.tzinfo is not None

    key = sdk_admin.keys.create(created.id, name="second")
    assert (key.tenant_id, key.scope) == (created.id, "tenant")
    with memcubed.Client(live_tenant.url, api_key=key.api_key) as second:
        assert second.cubes.list() == []
        revoked = sdk_admin.keys.revoke(key.id)
        assert revoked.id == key.id
        assert revoked.revoked_at.tzinfo is not None
        with pytest.raises(memcubed.AuthenticationError) as caught:
            second.cubes.list()
    assert (caught.value.status, caught.value.code) == (401, "unauthenticated")


def test_server_errors_map_to_sdk_exceptions(live_client: memcubed.Client, live_tenant: LiveTenant) -> None:
    with (
        memcubed.Client(live_tenant.url, api_key="mck_wrong") as bad,
        pytest.raises(memcubed.AuthenticationError),
    ):
        bad.cubes.list()
    with pytest.raises(memcubed.PermissionDeniedError) as forbidden:
        live_client.tenants.list()
    assert (forbidden.value.status, forbidden.value.code) == (403, "permission_denied")

    missing = str(uuid.uuid4())
    with pytest.raises(memcubed.NotFoundError) as not_found:
        live_client.memories.get(missing)
    assert (not_found.value.status, not_found.value.details) == (404, {"kind": "memory", "id": missing})

    cube = live_client.cubes.create("dup")
    with pytest.raises(memcubed.ConflictError) as conflict:
        live_client.cubes.create("dup")
    assert conflict.value.status == 409

    with pytest.raises(memcubed.ValidationError) as invalid:
        live_client.memories.add(cube.id, "x", importance=2.0)
    assert invalid.value.status == 422
    assert invalid.value.code == "validation_error"
    assert [e["field"] for e in invalid.value.details["errors"]] == ["memories.0.importance"]

    # Extra search keywords travel in the body: the server refuses one it does not know, by name.
    with pytest.raises(memcubed.ValidationError) as extra:
        live_client.search("q", [cube.id], not_a_parameter=True)
    assert [e["field"] for e in extra.value.details["errors"]] == ["not_a_parameter"]

    with pytest.raises(memcubed.PayloadTooLargeError) as too_large:
        live_client.memories.add(cube.id, "x" * (33 * 1024))
    assert too_large.value.status == 413
    assert too_large.value.request_id


class LoseFirstResponse(httpx.BaseTransport):
    """Forwards to the real server, then drops the first response as if the connection broke after the
    server had written: the case where only an idempotency key prevents a double write."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers.get("Idempotency-Key"))
        response = self.inner.handle_request(request)
        if len(self.keys) == 1:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset after the server answered")
        return response

    def close(self) -> None:
        self.inner.close()


def test_retried_write_is_applied_once(live_tenant: LiveTenant, live_client: memcubed.Client) -> None:
    cube = live_client.cubes.create("retry")
    transport = LoseFirstResponse()
    with memcubed.Client(
        live_tenant.url, api_key=live_tenant.api_key, transport=transport, sleep=lambda _: None
    ) as flaky:
        memory = flaky.memories.add(cube.id, "written exactly once")
    assert len(transport.keys) == 2
    assert transport.keys[0] is not None and transport.keys[0] == transport.keys[1]
    assert [m.id for m in live_client.memories.list(cube.id)] == [memory.id]


# --- async --------------------------------------------------------------------------------------------


async def test_async_client_every_route(live_aclient: memcubed.AsyncClient, tmp_path: Path) -> None:
    client = live_aclient
    assert await client.health() == {"status": "ok"}
    assert (await client.ready())["status"] == "ready"

    cube = await client.cubes.create("async-main", description="d")
    assert [c.id for c in await client.cubes.list()] == [cube.id]
    assert (await client.cubes.get(cube.id)).description == "d"

    first = await client.memories.add(
        cube.id, "Bob plays the cello", user_id="bob", occurred_at=T1, tags=["music"]
    )
    assert (first.content, first.user_id, first.occurred_at, first.tags) == (
        "Bob plays the cello",
        "bob",
        T1,
        ["music"],
    )
    batch = await client.memories.add_many(
        cube.id, [{"content": "Bob lives in Lisbon"}, memcubed.MemoryIn(content="Bob's sister is called Ana")]
    )
    assert [m.content for m in batch] == ["Bob lives in Lisbon", "Bob's sister is called Ana"]
    turns = await client.messages.add(
        cube.id,
        "chat-9",
        [{"role": "user", "content": "My cello lesson is on Friday", "timestamp": T2}],
        agent_id="a1",
    )
    assert [(m.session_id, m.agent_id, m.occurred_at) for m in turns] == [("chat-9", "a1", T2)]

    ids = [m.id async for m in client.memories.list(cube.id, page_size=1)]  # 4 pages
    assert sorted(ids) == sorted([first.id, *(m.id for m in batch), turns[0].id])
    assert [m.id async for m in client.memories.list(cube.id, tag="music")] == [first.id]
    assert (await client.memories.get(first.id)).content == "Bob plays the cello"

    updated = await client.memories.update(first.id, importance=0.95, reason="reweigh")
    assert (updated.version, updated.importance) == (2, 0.95)
    history = await client.memories.history(first.id)
    assert [(v.version, v.reason) for v in history.versions] == [(1, "reweigh")]

    found = await client.search("what instrument does Bob play?", [cube.id], top_k=1)
    assert [hit.memory.id for hit in found.results] == [first.id]

    assert (await client.memories.delete(first.id)).status == "deleted"
    assert (await client.memories.restore(first.id)).status == "active"

    path = tmp_path / "async.jsonl"
    written = await client.cubes.export(cube.id, path)
    assert written == path.stat().st_size
    assert len(path.read_bytes().splitlines()) == 5
    target = await client.cubes.create("async-copy")
    with path.open("rb") as fh:
        imported = await client.cubes.import_(target.id, fh)
    assert imported.imported == 4
    assert set(imported.id_map) == set(ids)

    await client.cubes.delete(target.id)
    with pytest.raises(memcubed.NotFoundError):
        await client.cubes.get(target.id)


async def test_async_admin_and_errors(live_server: object, live_tenant: LiveTenant) -> None:
    async with memcubed.AsyncClient(live_tenant.url, api_key=live_tenant.admin_key) as admin:
        created = await admin.tenants.create(f"async-{uuid.uuid4().hex[:8]}")
        assert created.id in {t.id for t in await admin.tenants.list()}
        key = await admin.keys.create(created.id)
        assert (key.tenant_id, key.scope) == (created.id, "tenant")
        assert (await admin.keys.revoke(key.id)).id == key.id
    async with memcubed.AsyncClient(live_tenant.url, api_key=key.api_key) as revoked:
        with pytest.raises(memcubed.AuthenticationError):
            await revoked.cubes.list()
    async with memcubed.AsyncClient(live_tenant.url, api_key=created.api_key) as tenant:
        with pytest.raises(memcubed.PermissionDeniedError):
            await tenant.tenants.create("nope")
        with pytest.raises(memcubed.NotFoundError) as caught:
            await tenant.memories.history(str(uuid.uuid4()))
        assert caught.value.code == "not_found"

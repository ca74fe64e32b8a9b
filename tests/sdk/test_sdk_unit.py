"""Request shapes, response parsing, errors, configuration and the route table, over a mock transport."""

from __future__ import annotations

import inspect
import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import memcubed
import pytest
from memcubed._routes import ROUTES

from tests.sdk.sdk_helpers import (
    ACTIVATION_ID,
    ADAPTER_ID,
    CUBE_ID,
    FORGET_REQUEST_ID,
    JOB_ID,
    KEY_ID,
    MEMORY_ID,
    SNAPSHOT_ID,
    TENANT_ID,
    Recorder,
    canned_response,
    memory_json,
)

# --- configuration and lifecycle ---------------------------------------------------------------------


def test_base_url_and_key_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    monkeypatch.setenv("MEMCUBED_URL", "http://env-host:9000/")
    monkeypatch.setenv("MEMCUBED_API_KEY", "mc_env")
    with memcubed.Client(transport=httpx.MockTransport(recorder.handle)) as client:
        assert client.base_url == "http://env-host:9000"
        client.health()
    request = recorder.requests[0]
    assert str(request.url) == "http://env-host:9000/healthz"
    assert request.headers["Authorization"] == "Bearer mc_env"
    assert request.headers["User-Agent"] == f"memcubed-python/{memcubed.__version__}"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> None:
    monkeypatch.setenv("MEMCUBED_URL", "http://env-host:9000")
    monkeypatch.setenv("MEMCUBED_API_KEY", "mc_env")
    with memcubed.Client(
        "http://arg-host", api_key="mc_arg", transport=httpx.MockTransport(recorder.handle)
    ) as c:
        c.health()
    assert str(recorder.requests[0].url) == "http://arg-host/healthz"
    assert recorder.requests[0].headers["Authorization"] == "Bearer mc_arg"


def test_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> None:
    monkeypatch.delenv("MEMCUBED_API_KEY", raising=False)
    monkeypatch.delenv("MEMCUBED_URL", raising=False)
    with memcubed.Client(transport=httpx.MockTransport(recorder.handle)) as client:
        assert client.base_url == "http://127.0.0.1:8080"
        assert client.health() == {"status": "ok"}
    assert "Authorization" not in recorder.requests[0].headers


def test_timeout_is_applied(recorder: Recorder) -> None:
    with memcubed.Client("http://x", timeout=2.5, transport=httpx.MockTransport(recorder.handle)) as client:
        client.health()
    assert recorder.requests[0].extensions["timeout"] == {
        "connect": 2.5,
        "read": 2.5,
        "write": 2.5,
        "pool": 2.5,
    }


def test_context_managers_close_the_connection_pool(recorder: Recorder) -> None:
    with memcubed.Client("http://x", transport=httpx.MockTransport(recorder.handle)) as client:
        assert not client.is_closed
    assert client.is_closed
    with pytest.raises(RuntimeError):
        client.health()
    other = memcubed.Client("http://x", transport=httpx.MockTransport(recorder.handle))
    other.close()
    assert other.is_closed


async def test_async_context_manager_closes(recorder: Recorder) -> None:
    async with memcubed.AsyncClient("http://x", transport=httpx.MockTransport(recorder.ahandle)) as client:
        assert await client.health() == {"status": "ok"}
    assert client.is_closed
    other = memcubed.AsyncClient("http://x", transport=httpx.MockTransport(recorder.ahandle))
    await other.aclose()
    assert other.is_closed


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        memcubed.Client("http://x", max_retries=-1)


# --- request shapes ----------------------------------------------------------------------------------


def test_add_sends_only_the_given_fields_and_aware_datetimes(
    mock_client: memcubed.Client, recorder: Recorder
) -> None:
    when = datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    memory = mock_client.memories.add(
        CUBE_ID,
        "likes tea",
        memory_type="semantic",
        user_id="u1",
        occurred_at=when,
        tags=["drinks"],
        metadata={"x": [1, 2]},
        importance=0.9,
    )
    request = recorder.requests[0]
    assert (request.method, request.url.path) == ("POST", f"/v1/cubes/{CUBE_ID}/memories")
    assert recorder.json() == {
        "memories": [
            {
                "content": "likes tea",
                "memory_type": "semantic",
                "user_id": "u1",
                "occurred_at": "2024-05-01T10:00:00+02:00",
                "tags": ["drinks"],
                "metadata": {"x": [1, 2]},
                "importance": 0.9,
            }
        ]
    }
    assert isinstance(memory, memcubed.Memory)
    assert memory.occurred_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert memory.created_at.tzinfo is not None


def test_naive_datetimes_are_refused_before_sending(mock_client: memcubed.Client, recorder: Recorder) -> None:
    naive = datetime(2024, 5, 1, 10, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        mock_client.memories.add(CUBE_ID, "x", occurred_at=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        mock_client.messages.add(CUBE_ID, "s", [{"role": "user", "content": "x", "timestamp": naive}])
    with pytest.raises(ValueError, match="timezone-aware"):
        mock_client.memories.update(MEMORY_ID, occurred_at=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        mock_client.search("q", [CUBE_ID], filters={"occurred_after": naive})
    assert recorder.calls == 0


def test_naive_datetimes_in_responses_are_read_as_utc() -> None:
    memory = memcubed.Memory.model_validate(memory_json(created_at="2025-01-01T00:00:00", occurred_at=None))
    assert memory.created_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert memory.occurred_at is None


def test_response_models_keep_unknown_fields() -> None:
    memory = memcubed.Memory.model_validate(memory_json(graph_links=["m2"]))
    assert memory.model_extra == {"graph_links": ["m2"]}
    assert memory.model_dump()["graph_links"] == ["m2"]


def test_add_many_accepts_models_and_dicts(mock_client: memcubed.Client, recorder: Recorder) -> None:
    result = mock_client.memories.add_many(
        CUBE_ID, [memcubed.MemoryIn(content="a", tags=["t"]), {"content": "b", "session_id": "s"}]
    )
    assert [m.id for m in result] == [MEMORY_ID]
    assert recorder.json() == {
        "memories": [{"content": "a", "tags": ["t"]}, {"content": "b", "session_id": "s"}]
    }


def test_add_many_refuses_a_single_item_or_nothing(mock_client: memcubed.Client, recorder: Recorder) -> None:
    with pytest.raises(TypeError):
        single: Any = {"content": "a"}  # a common slip: one memory where a list is expected
        mock_client.memories.add_many(CUBE_ID, single)
    with pytest.raises(ValueError):
        mock_client.memories.add_many(CUBE_ID, [])
    assert recorder.calls == 0


def test_messages_body(mock_client: memcubed.Client, recorder: Recorder) -> None:
    ts = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    mock_client.messages.add(
        CUBE_ID,
        "sess-1",
        [
            memcubed.Message(role="user", content="hi", speaker="Ann", timestamp=ts, id="m1"),
            {"role": "assistant", "content": "hello"},
        ],
        user_id="ann",
    )
    assert recorder.requests[0].url.path == f"/v1/cubes/{CUBE_ID}/messages"
    assert recorder.json() == {
        "session_id": "sess-1",
        "user_id": "ann",
        "messages": [
            {
                "role": "user",
                "content": "hi",
                "speaker": "Ann",
                "timestamp": "2025-03-01T09:30:00Z",
                "id": "m1",
            },
            {"role": "assistant", "content": "hello"},
        ],
    }


def test_search_body_filters_and_extra_keys(mock_client: memcubed.Client, recorder: Recorder) -> None:
    after = datetime(2024, 1, 1, tzinfo=UTC)
    response = mock_client.search(
        "window seat",
        [CUBE_ID, "55555555-5555-4555-8555-555555555555"],
        top_k=3,
        filters=memcubed.SearchFilters(user_id="u1", occurred_after=after),
        explain=True,
        rerank={"model": "x"},
    )
    assert recorder.json() == {
        "query": "window seat",
        "cube_ids": [CUBE_ID, "55555555-5555-4555-8555-555555555555"],
        "top_k": 3,
        "mode": "fast",
        "filters": {"user_id": "u1", "occurred_after": "2024-01-01T00:00:00Z"},
        "explain": True,
        "rerank": {"model": "x"},
    }
    assert response.took_ms == 4.5
    assert [(hit.memory.id, hit.score) for hit in response.results] == [(MEMORY_ID, 0.83)]
    assert [m.id for m in response.memories] == [MEMORY_ID]


def test_search_accepts_one_cube_id_and_dict_filters(
    mock_client: memcubed.Client, recorder: Recorder
) -> None:
    mock_client.search("q", CUBE_ID, filters={"tag": "t"})
    assert recorder.json() == {
        "query": "q",
        "cube_ids": [CUBE_ID],
        "top_k": 10,
        "mode": "fast",
        "filters": {"tag": "t"},
    }


def test_update_sends_reason_and_explicit_nones(mock_client: memcubed.Client, recorder: Recorder) -> None:
    memory = mock_client.memories.update(MEMORY_ID, content="new", occurred_at=None, reason="fix")
    assert memory.version == 2
    request = recorder.requests[0]
    assert (request.method, request.url.path) == ("PATCH", f"/v1/memories/{MEMORY_ID}")
    assert recorder.json() == {"content": "new", "occurred_at": None, "reason": "fix"}
    assert "Idempotency-Key" not in request.headers
    with pytest.raises(ValueError):
        mock_client.memories.update(MEMORY_ID)


def test_ids_are_quoted_into_one_path_segment(mock_client: memcubed.Client, recorder: Recorder) -> None:
    with pytest.raises(memcubed.NotFoundError):
        mock_client.memories.get("../cubes")
    assert recorder.requests[0].url.raw_path == b"/v1/memories/..%2Fcubes"
    for bad in ("", ".", ".."):
        with pytest.raises(ValueError, match="invalid id"):
            mock_client.memories.get(bad)
    assert recorder.calls == 1


def test_admin_calls(mock_client: memcubed.Client, recorder: Recorder) -> None:
    created = mock_client.tenants.create("acme")
    assert (created.id, created.name, created.api_key, created.key_id) == (
        TENANT_ID,
        "acme",
        "mc_secret",
        KEY_ID,
    )
    assert recorder.json() == {"name": "acme"}
    tenants = mock_client.tenants.list()
    assert [(t.id, t.name, t.created_at.tzinfo is not None) for t in tenants] == [(TENANT_ID, "acme", True)]
    key = mock_client.keys.create(TENANT_ID, name="ci")
    assert recorder.json() == {"name": "ci"}
    assert (key.id, key.tenant_id, key.scope, key.api_key) == (KEY_ID, TENANT_ID, "tenant", "mc_k")
    mock_client.keys.create(TENANT_ID)
    assert recorder.json() == {}
    revoked = mock_client.keys.revoke(KEY_ID)
    assert revoked.id == KEY_ID and revoked.revoked_at.tzinfo is not None


def test_cube_calls(mock_client: memcubed.Client, recorder: Recorder) -> None:
    cube = mock_client.cubes.create("assistant", description="d", owner_id="o")
    assert recorder.json() == {"name": "assistant", "description": "d", "owner_id": "o"}
    assert (cube.id, cube.tenant_id, cube.memory_count) == (CUBE_ID, TENANT_ID, 0)
    assert [c.id for c in mock_client.cubes.list()] == [CUBE_ID]
    assert mock_client.cubes.get(CUBE_ID).name == "assistant"
    mock_client.cubes.delete(CUBE_ID)
    assert [r.method for r in recorder.requests] == ["POST", "GET", "GET", "DELETE"]


def test_memory_history_and_restore(mock_client: memcubed.Client) -> None:
    history = mock_client.memories.history(MEMORY_ID)
    assert (history.memory_id, history.current_version) == (MEMORY_ID, 2)
    assert [(v.version, v.reason, v.snapshot) for v in history.versions] == [(1, "update", {"content": "x"})]
    assert mock_client.memories.restore(MEMORY_ID).version == 3
    assert mock_client.memories.delete(MEMORY_ID).status == "deleted"


# --- pagination --------------------------------------------------------------------------------------


def _pager(total: int, recorder: Recorder) -> None:
    """Script the list route to serve ``total`` memories in pages of the requested limit."""

    def page(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        start = int(request.url.params.get("cursor", "0"))
        items = [memory_json(id=f"m{i}") for i in range(start, min(start + limit, total))]
        nxt = str(start + limit) if start + limit < total else None
        return httpx.Response(200, json={"memories": items, "next_cursor": nxt})

    recorder.script = [page] * 10


def test_list_follows_cursors_lazily(mock_client: memcubed.Client, recorder: Recorder) -> None:
    _pager(5, recorder)
    after = datetime(2024, 1, 1, tzinfo=UTC)
    iterator = mock_client.memories.list(
        CUBE_ID, user_id="u1", tag="t", status="active", occurred_after=after, page_size=2
    )
    assert recorder.calls == 0  # nothing fetched until iteration starts
    assert next(iterator).id == "m0"
    assert recorder.calls == 1
    assert [m.id for m in iterator] == ["m1", "m2", "m3", "m4"]
    filters = {"user_id": "u1", "tag": "t", "status": "active", "occurred_after": "2024-01-01T00:00:00+00:00"}
    assert [dict(r.url.params) for r in recorder.requests] == [
        {**filters, "limit": "2"},
        {**filters, "limit": "2", "cursor": "2"},
        {**filters, "limit": "2", "cursor": "4"},
    ]


async def test_async_list_follows_cursors(mock_aclient: memcubed.AsyncClient, recorder: Recorder) -> None:
    _pager(3, recorder)
    ids = [m.id async for m in mock_aclient.memories.list(CUBE_ID, page_size=2, memory_type="episodic")]
    assert ids == ["m0", "m1", "m2"]
    assert [r.url.params.get("cursor") for r in recorder.requests] == [None, "2"]
    assert recorder.requests[0].url.params["memory_type"] == "episodic"


def test_list_checks_page_size_at_call_time(mock_client: memcubed.Client) -> None:
    with pytest.raises(ValueError, match="page_size"):
        mock_client.memories.list(CUBE_ID, page_size=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        mock_client.memories.list(CUBE_ID, occurred_before=datetime(2024, 1, 1))


# --- export / import files ---------------------------------------------------------------------------


def test_export_to_a_path_and_import_from_it(
    mock_client: memcubed.Client, recorder: Recorder, tmp_path: Path
) -> None:
    target = tmp_path / "cube.jsonl"
    assert mock_client.cubes.export(CUBE_ID, target) == 16
    assert target.read_bytes() == b'{"a":1}\n{"b":2}\n'
    assert recorder.requests[0].headers["Accept"] == "application/x-ndjson"
    assert [p.name for p in tmp_path.iterdir()] == ["cube.jsonl"]
    result = mock_client.cubes.import_(CUBE_ID, str(target))
    assert (result.imported, result.id_map) == (2, {"a": "b"})
    assert recorder.bodies[-1] == b'{"a":1}\n{"b":2}\n'
    assert recorder.requests[-1].headers["Content-Length"] == "16"
    assert "Transfer-Encoding" not in recorder.requests[-1].headers


def test_import_from_a_text_file(mock_client: memcubed.Client, recorder: Recorder) -> None:
    mock_client.cubes.import_(CUBE_ID, io.StringIO('{"é": 1}\n'))
    assert recorder.bodies[-1] == '{"é": 1}\n'.encode()
    assert recorder.requests[-1].headers["Content-Length"] == str(len('{"é": 1}\n'.encode()))


def test_failed_export_leaves_no_file(
    mock_client: memcubed.Client, recorder: Recorder, tmp_path: Path
) -> None:
    target = tmp_path / "cube.jsonl"
    target.write_bytes(b"previous")
    recorder.script = [
        httpx.Response(404, json={"error": {"code": "not_found", "message": "cube", "details": {}}})
    ]
    with pytest.raises(memcubed.NotFoundError):
        mock_client.cubes.export(CUBE_ID, target)
    assert target.read_bytes() == b"previous"

    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Any:
            yield b'{"a":1}\n'
            raise httpx.ReadError("connection reset")

    recorder.script = [httpx.Response(200, stream=Broken())]
    with pytest.raises(memcubed.APIConnectionError):
        mock_client.cubes.export(CUBE_ID, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["cube.jsonl"]


def test_export_refuses_text_files(mock_client: memcubed.Client) -> None:
    with pytest.raises(TypeError, match="binary"):
        text_file: Any = io.StringIO()  # also refused statically: Writable takes bytes
        mock_client.cubes.export(CUBE_ID, text_file)


async def test_async_export_and_import(
    mock_aclient: memcubed.AsyncClient, recorder: Recorder, tmp_path: Path
) -> None:
    out = io.BytesIO()
    assert await mock_aclient.cubes.export(CUBE_ID, out) == 16
    path = tmp_path / "c.jsonl"
    path.write_bytes(out.getvalue())
    result = await mock_aclient.cubes.import_(CUBE_ID, path)
    assert result.imported == 2
    assert recorder.bodies[-1] == out.getvalue()


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, memcubed.ValidationError),
        (401, memcubed.AuthenticationError),
        (403, memcubed.PermissionDeniedError),
        (404, memcubed.NotFoundError),
        (409, memcubed.ConflictError),
        (413, memcubed.PayloadTooLargeError),
        (422, memcubed.ValidationError),
        (429, memcubed.RateLimitError),
        (500, memcubed.ServerError),
        (503, memcubed.ServerError),
        (418, memcubed.APIStatusError),
    ],
)
def test_error_classes_carry_the_envelope(
    recorder: Recorder, status: int, cls: type[memcubed.APIStatusError]
) -> None:
    body = {"error": {"code": f"c{status}", "message": f"m{status}", "details": {"field": "name"}}}
    recorder.script = [httpx.Response(status, json=body, headers={"X-Request-ID": "rid-1"})]
    with (
        memcubed.Client("http://x", transport=httpx.MockTransport(recorder.handle), max_retries=0) as client,
        pytest.raises(memcubed.MemcubedError) as caught,
    ):
        client.cubes.create("dup")
    err = caught.value
    assert type(err) is cls
    assert isinstance(err, memcubed.APIStatusError)
    assert (err.status, err.code, err.message, err.details, err.request_id) == (
        status,
        f"c{status}",
        f"m{status}",
        {"field": "name"},
        "rid-1",
    )
    assert str(err) == f"m{status} (status={status}, code=c{status}, request_id=rid-1)"


def test_error_without_envelope_still_informs(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [httpx.Response(502, text="<html>bad gateway</html>")] * 3
    with pytest.raises(memcubed.ServerError) as caught:
        mock_client.cubes.list()
    assert (caught.value.code, caught.value.message, caught.value.request_id) == (
        "http_502",
        "<html>bad gateway</html>",
        None,
    )
    recorder.script = [httpx.Response(401, json={"detail": "Not authenticated"})]
    with pytest.raises(memcubed.AuthenticationError) as auth:
        mock_client.cubes.list()
    assert (auth.value.message, auth.value.details) == ("Not authenticated", {"detail": "Not authenticated"})


def test_unexpected_response_shape_is_a_memcubed_error(
    mock_client: memcubed.Client, recorder: Recorder
) -> None:
    recorder.script = [httpx.Response(200, json={"nope": 1}, headers={"X-Request-ID": "r9"})]
    with pytest.raises(memcubed.MemcubedError) as caught:
        mock_client.cubes.get(CUBE_ID)
    assert (caught.value.code, caught.value.request_id, caught.value.status) == (
        "invalid_response",
        "r9",
        200,
    )


def test_exception_hierarchy() -> None:
    for cls in (
        memcubed.AuthenticationError,
        memcubed.PermissionDeniedError,
        memcubed.NotFoundError,
        memcubed.ConflictError,
        memcubed.ValidationError,
        memcubed.PayloadTooLargeError,
        memcubed.RateLimitError,
        memcubed.ServerError,
    ):
        assert issubclass(cls, memcubed.APIStatusError)
    assert issubclass(memcubed.APITimeoutError, memcubed.APIConnectionError)
    assert issubclass(memcubed.APIConnectionError, memcubed.MemcubedError)
    assert issubclass(memcubed.APIStatusError, memcubed.MemcubedError)
    # Not confusable with the builtins of the same idea.
    assert not issubclass(memcubed.APITimeoutError, TimeoutError)
    assert not issubclass(memcubed.APIConnectionError, ConnectionError)


# --- route table -------------------------------------------------------------------------------------


def _resolve(client: object, dotted: str) -> Any:
    target = client
    for part in dotted.split("."):
        target = getattr(target, part)
    return target


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def _exercise(client: memcubed.Client, tmp_path: Path) -> None:
    """Call every SDK method once."""
    client.health()
    client.ready()
    client.tenants.create("t")
    client.tenants.list()
    client.tenants.quotas(TENANT_ID)
    client.tenants.set_quotas(TENANT_ID, memories=5)
    client.keys.create(TENANT_ID)
    client.keys.list(TENANT_ID)
    client.keys.revoke(KEY_ID)
    client.cubes.create("c")
    client.cubes.list()
    client.cubes.get(CUBE_ID)
    client.cubes.delete(CUBE_ID)
    client.cubes.export(CUBE_ID, tmp_path / "e.jsonl")
    client.cubes.import_(CUBE_ID, tmp_path / "e.jsonl")
    client.cubes.archive(CUBE_ID, tmp_path / "a.tar")
    client.cubes.import_archive(tmp_path / "a.tar", name="copy")
    client.cubes.fork(CUBE_ID)
    client.cubes.merge(CUBE_ID, CUBE_ID)
    client.cubes.fuse(CUBE_ID, "activation")
    client.snapshots.create(CUBE_ID, label="before")
    client.snapshots.list(CUBE_ID)
    client.snapshots.restore(CUBE_ID, SNAPSHOT_ID)
    client.snapshots.delete(CUBE_ID, SNAPSHOT_ID)
    client.memories.add(CUBE_ID, "x")
    list(client.memories.list(CUBE_ID))
    client.memories.get(MEMORY_ID)
    client.memories.update(MEMORY_ID, content="y")
    client.memories.delete(MEMORY_ID)
    client.memories.restore(MEMORY_ID)
    client.memories.history(MEMORY_ID)
    client.messages.add(CUBE_ID, "s", [{"role": "user", "content": "x"}])
    client.messages.add_detailed(CUBE_ID, "s", [{"role": "user", "content": "forget my address"}])
    client.cubes.update(CUBE_ID, forget_policy="purge")
    client.forget_requests.list(CUBE_ID)
    client.forget_requests.revert(FORGET_REQUEST_ID)
    client.search("q", [CUBE_ID])
    client.context("q", CUBE_ID, budget="mid")
    client.answer("q", CUBE_ID, budget={"max_tokens": 100})
    client.routing.stats()
    client.whoami()
    client.memories.links(MEMORY_ID)
    client.cubes.graph(CUBE_ID)
    client.cubes.entities(CUBE_ID)
    client.activations.create(CUBE_ID, text="x")
    client.activations.list(CUBE_ID)
    client.activations.stats()
    client.activations.delete(ACTIVATION_ID)
    client.generate("p")
    client.adapters.upload(CUBE_ID, {"r": 4}, b"weights")
    client.adapters.list(CUBE_ID)
    client.adapters.get(ADAPTER_ID)
    client.adapters.delete(ADAPTER_ID)
    client.adapters.restore(ADAPTER_ID)
    client.adapters.distill(CUBE_ID)
    client.jobs.list()
    client.jobs.get(JOB_ID)
    client.jobs.cancel(JOB_ID)
    client.cubes.consolidate(CUBE_ID)
    client.cubes.forget(CUBE_ID)
    client.cubes.get_policy(CUBE_ID)
    client.cubes.preview_policy(CUBE_ID)
    client.cubes.set_policy(CUBE_ID, threshold=0.5)
    client.cubes.purge(CUBE_ID)
    client.memories.feedback(MEMORY_ID, "useful")


def test_route_table_matches_what_the_methods_send(
    mock_client: memcubed.Client, recorder: Recorder, tmp_path: Path
) -> None:
    _exercise(mock_client, tmp_path)
    sent = {(r.method, r.url.path) for r in recorder.requests}
    matched: dict[tuple[str, str], set[tuple[str, str]]] = {route: set() for route in ROUTES}
    for method, path in sent:
        hits = [route for route in ROUTES if route[0] == method and _template_regex(route[1]).match(path)]
        assert len(hits) == 1, (method, path, hits)
        matched[hits[0]].add((method, path))
    assert [route for route, seen in matched.items() if not seen] == []


def test_route_table_names_resolve_on_both_clients() -> None:
    sync_client = memcubed.Client("http://x")
    async_client = memcubed.AsyncClient("http://x")
    try:
        for name in ROUTES.values():
            sync_method = _resolve(sync_client, name)
            async_method = _resolve(async_client, name)
            assert callable(sync_method) and callable(async_method), name
            assert not inspect.iscoroutinefunction(sync_method), name
            if name == "memories.list":
                assert inspect.isasyncgenfunction(async_client.memories._iterate)
            else:
                assert inspect.iscoroutinefunction(async_method), name
            # Same parameters on both clients: one surface.
            assert (
                inspect.signature(sync_method).parameters.keys()
                == inspect.signature(async_method).parameters.keys()
            )
    finally:
        sync_client.close()


def test_canned_server_answers_every_route() -> None:
    """Guards the helper itself: a route missing from it would make the tests above vacuous."""
    for method, template in ROUTES:
        path = template.replace("{tenant_id}", TENANT_ID).replace("{key_id}", KEY_ID)
        path = path.replace("{cube_id}", CUBE_ID).replace("{memory_id}", MEMORY_ID)
        path = path.replace("{activation_id}", ACTIVATION_ID).replace("{job_id}", JOB_ID)
        path = path.replace("{request_id}", FORGET_REQUEST_ID).replace("{snapshot_id}", SNAPSHOT_ID)
        path = path.replace("{adapter_id}", ADAPTER_ID)
        response = canned_response(httpx.Request(method, "http://x" + path))
        assert response.status_code in (200, 201, 202, 204), (method, template)
        if response.status_code != 204 and not template.endswith(("/export", "/archive")):
            assert isinstance(json.loads(response.content), dict)

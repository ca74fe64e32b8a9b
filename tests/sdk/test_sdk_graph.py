"""Graph, enrichment wait, fine search, activations and generation over a mock transport: the exact requests
both clients send and the typed answers they return."""

from __future__ import annotations

import types
import uuid
from typing import Any

import httpx
import memcubed
import pytest

from tests.sdk.sdk_helpers import (
    ACTIVATION_ID,
    CUBE_ID,
    EDGE_ID,
    MEMORY_ID,
    OTHER_MEMORY_ID,
    Recorder,
    SleepLog,
    cube_json,
    edge_json,
    graph_node_json,
    memory_json,
)

CLIENT_TIMEOUT = {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}
MODEL_TIMEOUT = {"connect": 5.0, "read": 300.0, "write": 300.0, "pool": 300.0}


def _call(request: httpx.Request) -> tuple[str, str]:
    return request.method, request.url.path


# --- graph -------------------------------------------------------------------------------------------


def test_links(mock_client: memcubed.Client, recorder: Recorder) -> None:
    links = mock_client.memories.links(MEMORY_ID)
    assert _call(recorder.requests[0]) == ("GET", f"/v1/memories/{MEMORY_ID}/links")
    assert isinstance(links, memcubed.MemoryLinks)
    assert (links.memory_id, links.entities) == (MEMORY_ID, ["Caroline"])
    [link] = links.links
    assert isinstance(link, memcubed.MemoryLink) and isinstance(link.edge, memcubed.Edge)
    assert (link.direction, link.memory_id, link.content) == ("out", OTHER_MEMORY_ID, "Next turn.")
    assert (link.edge.id, link.edge.type, link.edge.weight) == (EDGE_ID, "next_in_session", 1.0)
    assert link.edge.created_at.tzinfo is not None


def test_graph_sends_one_type_parameter_per_edge_type(
    mock_client: memcubed.Client, recorder: Recorder
) -> None:
    page = mock_client.cubes.graph(CUBE_ID, types=["next_in_session", "similar"], limit=50, cursor="c1")
    request = recorder.requests[0]
    assert _call(request) == ("GET", f"/v1/cubes/{CUBE_ID}/graph")
    assert request.url.params.get_list("type") == ["next_in_session", "similar"]
    assert (request.url.params["limit"], request.url.params["cursor"]) == ("50", "c1")
    assert isinstance(page, memcubed.GraphPage)
    assert [n.id for n in page.nodes] == [MEMORY_ID, OTHER_MEMORY_ID]
    assert all(isinstance(n, memcubed.GraphNode) for n in page.nodes)
    assert [(e.source_id, e.target_id, e.type) for e in page.edges] == [
        (MEMORY_ID, OTHER_MEMORY_ID, "next_in_session")
    ]
    assert page.next_cursor is None

    mock_client.cubes.graph(CUBE_ID)
    assert dict(recorder.requests[1].url.params) == {"limit": "200"}
    mock_client.cubes.graph(CUBE_ID, types="shares_entity")
    assert recorder.requests[2].url.params.get_list("type") == ["shares_entity"]
    with pytest.raises(ValueError, match="limit"):
        mock_client.cubes.graph(CUBE_ID, limit=0)
    assert recorder.calls == 3


def test_entities(mock_client: memcubed.Client, recorder: Recorder) -> None:
    found = mock_client.cubes.entities(CUBE_ID, q="Carol", limit=10, cursor="c2")
    request = recorder.requests[0]
    assert _call(request) == ("GET", f"/v1/cubes/{CUBE_ID}/entities")
    assert dict(request.url.params) == {"q": "Carol", "limit": "10", "cursor": "c2"}
    assert isinstance(found, memcubed.EntityList) and found.next_cursor is None
    [entity] = found.entities
    assert isinstance(entity, memcubed.Entity)
    assert (entity.name, entity.kind, entity.mentions) == ("Caroline", "name", 2)
    mock_client.cubes.entities(CUBE_ID)
    assert dict(recorder.requests[1].url.params) == {"limit": "100"}


def _graph_pager(total: int, recorder: Recorder) -> None:
    """Script the graph route to serve ``total`` edges in pages of the requested limit."""

    def page(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        start = int(request.url.params.get("cursor", "0"))
        edges = [edge_json(id=f"e{i}") for i in range(start, min(start + limit, total))]
        nxt = str(start + limit) if start + limit < total else None
        return httpx.Response(200, json={"nodes": [graph_node_json()], "edges": edges, "next_cursor": nxt})

    recorder.script = [page] * 10


def test_iter_graph_follows_cursors_lazily(mock_client: memcubed.Client, recorder: Recorder) -> None:
    _graph_pager(5, recorder)
    pages = mock_client.cubes.iter_graph(CUBE_ID, types=["similar"], page_size=2)
    assert recorder.calls == 0  # nothing fetched until iteration starts
    first = next(pages)
    assert isinstance(first, memcubed.GraphPage)
    assert [e.id for e in first.edges] == ["e0", "e1"]
    assert [[e.id for e in p.edges] for p in pages] == [["e2", "e3"], ["e4"]]
    assert [(r.url.params.get("cursor"), r.url.params.get_list("type")) for r in recorder.requests] == [
        (None, ["similar"]),
        ("2", ["similar"]),
        ("4", ["similar"]),
    ]
    with pytest.raises(ValueError, match="page_size"):
        mock_client.cubes.iter_graph(CUBE_ID, page_size=0)


async def test_async_graph_calls(mock_aclient: memcubed.AsyncClient, recorder: Recorder) -> None:
    links = await mock_aclient.memories.links(MEMORY_ID)
    assert links.entities == ["Caroline"]
    page = await mock_aclient.cubes.graph(CUBE_ID, types=["updates"], limit=5)
    assert page.edges[0].type == "next_in_session"
    entities = await mock_aclient.cubes.entities(CUBE_ID, q="C")
    assert entities.entities[0].name == "Caroline"
    assert [(r.url.path, dict(r.url.params)) for r in recorder.requests] == [
        (f"/v1/memories/{MEMORY_ID}/links", {}),
        (f"/v1/cubes/{CUBE_ID}/graph", {"type": "updates", "limit": "5"}),
        (f"/v1/cubes/{CUBE_ID}/entities", {"q": "C", "limit": "100"}),
    ]
    _graph_pager(3, recorder)
    seen = [[e.id for e in p.edges] async for p in mock_aclient.cubes.iter_graph(CUBE_ID, page_size=2)]
    assert seen == [["e0", "e1"], ["e2"]]
    with pytest.raises(ValueError, match="page_size"):
        mock_aclient.cubes.iter_graph(CUBE_ID, page_size=0)


# --- search: mode, explain; cube enrichment ----------------------------------------------------------


def test_search_fine_with_explain(mock_client: memcubed.Client, recorder: Recorder) -> None:
    explain = {"channels": {"dense": {"rank": 1, "score": 0.7}, "bm25": {"rank": 2, "score": 3.1}}}
    hit = {"memory": memory_json(), "score": 0.03, "explain": explain}
    recorder.script = [httpx.Response(200, json={"results": [hit], "took_ms": 9})]
    response = mock_client.search("window seat", CUBE_ID, top_k=3, mode="fine", explain=True)
    assert recorder.json() == {
        "query": "window seat",
        "cube_ids": [CUBE_ID],
        "top_k": 3,
        "mode": "fine",
        "explain": True,
    }
    assert response.results[0].explain == explain
    # explain=False is not sent (a server without the field refuses it); hits then carry none.
    plain = mock_client.search("q", CUBE_ID)
    assert "explain" not in recorder.json()
    assert plain.results[0].explain is None


def test_cube_enrichment_pending_defaults_to_zero() -> None:
    assert memcubed.Cube.model_validate(cube_json()).enrichment_pending == 0
    assert memcubed.Cube.model_validate(cube_json(enrichment_pending=4)).enrichment_pending == 4


def _cube_states(*pending: int) -> list[httpx.Response]:
    return [httpx.Response(200, json=cube_json(memory_count=3, enrichment_pending=n)) for n in pending]


def test_wait_enriched_polls_until_nothing_is_pending(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [*_cube_states(3, 1, 0)]
    cube = mock_client.cubes.wait_enriched(CUBE_ID)
    assert (cube.id, cube.enrichment_pending, cube.memory_count) == (CUBE_ID, 0, 3)
    assert [_call(r) for r in recorder.requests] == [("GET", f"/v1/cubes/{CUBE_ID}")] * 3
    assert sleeps.delays == [0.2, 0.2]


def test_wait_enriched_times_out_with_the_timeout_error(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = {"now": 100.0}

    def sleep(seconds: float) -> None:
        sleeps.delays.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(mock_client, "_sleep", sleep)
    monkeypatch.setattr(memcubed._client, "time", types.SimpleNamespace(monotonic=lambda: clock["now"]))
    recorder.script = [*_cube_states(2, 2, 2, 2, 2)]
    with pytest.raises(memcubed.APITimeoutError) as caught:
        mock_client.cubes.wait_enriched(CUBE_ID, timeout=1, poll=0.4)
    assert sleeps.delays == pytest.approx([0.4, 0.4, 0.2])
    assert recorder.calls == 4
    err = caught.value
    assert (err.code, err.details) == ("enrichment_timeout", {"cube_id": CUBE_ID, "enrichment_pending": 2})
    assert "2 memories" in err.message


def test_wait_enriched_checks_its_arguments(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [*_cube_states(5)]
    with pytest.raises(memcubed.APITimeoutError):
        mock_client.cubes.wait_enriched(CUBE_ID, timeout=0)  # one look, no wait
    with pytest.raises(ValueError, match="poll"):
        mock_client.cubes.wait_enriched(CUBE_ID, poll=0)
    with pytest.raises(ValueError, match="timeout"):
        mock_client.cubes.wait_enriched(CUBE_ID, timeout=-1)
    assert recorder.calls == 1
    # Errors of the polled request propagate as they are.
    not_found = {"error": {"code": "not_found", "message": "cube", "details": {}}}
    recorder.script = [httpx.Response(404, json=not_found)]
    with pytest.raises(memcubed.NotFoundError):
        mock_client.cubes.wait_enriched(CUBE_ID)


async def test_async_wait_enriched(
    mock_aclient: memcubed.AsyncClient, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [*_cube_states(2, 0)]
    cube = await mock_aclient.cubes.wait_enriched(CUBE_ID, poll=0.05)
    assert cube.enrichment_pending == 0
    assert sleeps.delays == [0.05]
    recorder.script = [*_cube_states(1)]
    with pytest.raises(memcubed.APITimeoutError) as caught:
        await mock_aclient.cubes.wait_enriched(CUBE_ID, timeout=0)
    assert caught.value.code == "enrichment_timeout"


async def test_async_search_mode_and_explain(mock_aclient: memcubed.AsyncClient, recorder: Recorder) -> None:
    await mock_aclient.search("q", [CUBE_ID], mode="fine", explain=True)
    assert recorder.json() == {
        "query": "q",
        "cube_ids": [CUBE_ID],
        "top_k": 10,
        "mode": "fine",
        "explain": True,
    }


# --- activations and generation ----------------------------------------------------------------------


def test_activation_create_sends_exactly_one_source(mock_client: memcubed.Client, recorder: Recorder) -> None:
    activation = mock_client.activations.create(CUBE_ID, text="Caroline likes hiking.")
    request = recorder.requests[0]
    assert _call(request) == ("POST", f"/v1/cubes/{CUBE_ID}/activations")
    assert recorder.json() == {"text": "Caroline likes hiking."}
    assert "Idempotency-Key" in request.headers
    # The model may be loaded (and converted) by this call: a long default timeout, not the client's.
    assert request.extensions["timeout"] == MODEL_TIMEOUT
    assert isinstance(activation, memcubed.Activation)
    assert (activation.id, activation.cube_id, activation.tokens, activation.tier) == (
        ACTIVATION_ID,
        CUBE_ID,
        12,
        "cpu",
    )
    assert (activation.compatible, activation.last_used_at, activation.text) == (
        True,
        None,
        "Caroline likes hiking.",
    )

    mock_client.activations.create(CUBE_ID, memory_ids=[uuid.UUID(MEMORY_ID), OTHER_MEMORY_ID], timeout=12)
    assert recorder.json() == {"memory_ids": [MEMORY_ID, OTHER_MEMORY_ID]}
    assert recorder.requests[-1].extensions["timeout"] == {"connect": 12, "read": 12, "write": 12, "pool": 12}
    mock_client.activations.create(CUBE_ID, query="hiking", top_k=4, idempotency_key="k-1")
    assert recorder.json() == {"query": "hiking", "top_k": 4}
    assert recorder.requests[-1].headers["Idempotency-Key"] == "k-1"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one"),
        ({"text": "a", "query": "b"}, ValueError, "exactly one"),
        ({"text": "a", "memory_ids": [MEMORY_ID]}, ValueError, "exactly one"),
        ({"text": "a", "top_k": 3}, ValueError, "top_k"),
        ({"memory_ids": []}, ValueError, "empty"),
        ({"memory_ids": MEMORY_ID}, TypeError, "sequence"),
    ],
)
def test_activation_create_refuses_bad_sources_before_sending(
    mock_client: memcubed.Client,
    recorder: Recorder,
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        mock_client.activations.create(CUBE_ID, **kwargs)
    assert recorder.calls == 0


def test_activation_list_stats_delete(mock_client: memcubed.Client, recorder: Recorder) -> None:
    listed = mock_client.activations.list(CUBE_ID)
    assert [a.id for a in listed] == [ACTIVATION_ID]
    stats = mock_client.activations.stats()
    assert isinstance(stats, memcubed.ActivationStats)
    assert sorted(stats.tiers) == ["cpu", "disk", "gpu"]
    assert all(isinstance(t, memcubed.TierStats) for t in stats.tiers.values())
    assert (stats.tiers["gpu"].available, stats.tiers["cpu"].budget_bytes) == (False, 1 << 30)
    assert (stats.hits, stats.misses, stats.evictions, stats.promotions, stats.demotions) == (1, 2, 0, 0, 0)
    assert isinstance(stats.model, memcubed.ModelInfo)
    assert (stats.model.loaded, stats.model.model_id) == (False, None)
    deleted = mock_client.activations.delete(ACTIVATION_ID)
    assert (deleted.status, deleted.tier) == ("deleted", None)
    assert [_call(r) for r in recorder.requests] == [
        ("GET", f"/v1/cubes/{CUBE_ID}/activations"),
        ("GET", "/v1/activations/stats"),
        ("DELETE", f"/v1/activations/{ACTIVATION_ID}"),
    ]
    assert all(r.extensions["timeout"] == CLIENT_TIMEOUT for r in recorder.requests)


def test_generate_body_defaults_and_options(mock_client: memcubed.Client, recorder: Recorder) -> None:
    result = mock_client.generate("Caroline likes hiking. What does she like?")
    request = recorder.requests[0]
    assert _call(request) == ("POST", "/v1/generate")
    assert recorder.json() == {
        "prompt": "Caroline likes hiking. What does she like?",
        "max_new_tokens": 32,
        "use_activation": True,
        "chat": False,
        "temperature": 0.0,
    }
    assert request.extensions["timeout"] == MODEL_TIMEOUT
    assert "Idempotency-Key" in request.headers
    assert isinstance(result, memcubed.GenerateResponse)
    assert (result.text, result.token_ids, result.finish_reason) == (" She hikes.", [1, 2, 3], "length")
    assert (result.activation_id, result.tier_hit, result.reused_tokens, result.prefill_tokens) == (
        ACTIVATION_ID,
        "cpu",
        12,
        3,
    )
    assert (result.prompt_tokens, result.ttft_ms, result.total_ms) == (15, 8.5, 20.25)

    mock_client.generate(
        "p",
        cube_id=uuid.UUID(CUBE_ID),
        activation_id=ACTIVATION_ID,
        max_new_tokens=8,
        use_activation=False,
        chat=True,
        temperature=0.7,
        seed=3,
        timeout=60,
        top_p=0.9,
    )
    assert recorder.json() == {
        "prompt": "p",
        "cube_id": CUBE_ID,
        "activation_id": ACTIVATION_ID,
        "max_new_tokens": 8,
        "use_activation": False,
        "chat": True,
        "temperature": 0.7,
        "seed": 3,
        "top_p": 0.9,
    }
    assert recorder.requests[-1].extensions["timeout"]["read"] == 60


def test_generate_is_retried_with_the_same_idempotency_key(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [httpx.Response(503, json={"error": {"code": "busy", "message": "m", "details": {}}})]
    assert mock_client.generate("p").text == " She hikes."
    assert recorder.calls == 2
    assert recorder.requests[0].headers["Idempotency-Key"] == recorder.requests[1].headers["Idempotency-Key"]
    assert sleeps.delays == [0.25]


async def test_async_activations_and_generate(mock_aclient: memcubed.AsyncClient, recorder: Recorder) -> None:
    created = await mock_aclient.activations.create(CUBE_ID, query="hiking")
    assert created.id == ACTIVATION_ID
    assert recorder.json() == {"query": "hiking"}
    assert recorder.requests[-1].extensions["timeout"] == MODEL_TIMEOUT
    assert [a.id for a in await mock_aclient.activations.list(CUBE_ID)] == [ACTIVATION_ID]
    assert (await mock_aclient.activations.stats()).model.loaded is False
    assert (await mock_aclient.activations.delete(ACTIVATION_ID)).status == "deleted"
    result = await mock_aclient.generate("p", cube_id=CUBE_ID, max_new_tokens=4)
    assert result.reused_tokens == 12
    assert recorder.json() == {
        "prompt": "p",
        "cube_id": CUBE_ID,
        "max_new_tokens": 4,
        "use_activation": True,
        "chat": False,
        "temperature": 0.0,
    }
    with pytest.raises(ValueError, match="exactly one"):
        await mock_aclient.activations.create(CUBE_ID)

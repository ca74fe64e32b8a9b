"""Graph, enrichment, fine search with explain, and activation stats through both clients against the live
server. Activations and generation themselves are covered over a mock transport (test_sdk_graph.py): the
first real call loads and converts the model, which takes about a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import memcubed

T0 = datetime(2024, 6, 1, 18, 0, tzinfo=UTC)
TURNS = [
    {"role": "user", "speaker": "Caroline", "content": "Caroline went to the LGBTQ support group yesterday."},
    {"role": "assistant", "speaker": "Melanie", "content": "That sounds meaningful. How did the evening go?"},
    {"role": "user", "speaker": "Caroline", "content": "Caroline said the support group felt inspiring."},
]


def _turns() -> list[dict[str, object]]:
    return [{**turn, "timestamp": T0 + timedelta(minutes=i)} for i, turn in enumerate(TURNS)]


def test_graph_entities_and_fine_search(live_client: memcubed.Client) -> None:
    client = live_client
    cube = client.cubes.create("graph")
    turns = client.messages.add(cube.id, "session-1", _turns(), user_id="caroline")
    first, second, third = (m.id for m in turns)

    enriched = client.cubes.wait_enriched(cube.id, timeout=60)
    assert (enriched.id, enriched.memory_count, enriched.enrichment_pending) == (cube.id, 3, 0)
    assert client.cubes.get(cube.id).enrichment_pending == 0

    # The middle turn links back to the first and on to the third, in session order.
    links = client.memories.links(second)
    assert links.memory_id == second
    in_session = {(link.edge.type, link.direction, link.memory_id) for link in links.links}
    assert {x for x in in_session if x[0] == "next_in_session"} == {
        ("next_in_session", "in", first),
        ("next_in_session", "out", third),
    }
    by_other = {link.memory_id: link for link in links.links if link.edge.type == "next_in_session"}
    assert by_other[first].content == TURNS[0]["content"]
    assert (by_other[first].edge.source_id, by_other[first].edge.target_id) == (first, second)
    assert by_other[third].edge.weight == 1.0
    # The first and third turns both name Caroline.
    first_links = client.memories.links(first)
    assert first_links.entities == ["Caroline", "LGBTQ"]
    seen_from_first = {(x.edge.type, x.direction, x.memory_id) for x in first_links.links}
    assert ("shares_entity", "in", third) in seen_from_first

    # The cube's session edges, filtered by type, with every node they touch.
    page = client.cubes.graph(cube.id, types=["next_in_session"])
    session_edges = sorted([(first, second), (second, third)])
    assert sorted((e.source_id, e.target_id) for e in page.edges) == session_edges
    assert {e.type for e in page.edges} == {"next_in_session"}
    assert {n.id for n in page.nodes} == {first, second, third}
    assert {n.session_id for n in page.nodes} == {"session-1"}
    assert page.next_cursor is None

    # One edge a page: two pages, the same edges.
    pages = list(client.cubes.iter_graph(cube.id, types="next_in_session", page_size=1))
    assert [len(p.edges) for p in pages] == [1, 1]
    assert pages[0].next_cursor is not None and pages[1].next_cursor is None
    assert {e.id for p in pages for e in p.edges} == {e.id for e in page.edges}
    all_types = {e.type for p in client.cubes.iter_graph(cube.id) for e in p.edges}
    assert "next_in_session" in all_types and all_types <= {
        "similar",
        "shares_entity",
        "next_in_session",
        "updates",
        "contradicts",
        "derived_from",
        "mentions",
    }

    # Entities as written in the text; Caroline is named in two turns.
    entities = client.cubes.entities(cube.id)
    names = {e.name: e for e in entities.entities}
    assert {"Caroline", "LGBTQ"} <= set(names)
    assert (names["Caroline"].mentions, names["LGBTQ"].mentions) == (2, 1)
    assert names["Caroline"].kind == "name"
    assert [e.name for e in client.cubes.entities(cube.id, q="carol").entities] == ["Caroline"]
    one = client.cubes.entities(cube.id, limit=1)
    assert len(one.entities) == 1 and one.next_cursor is not None
    rest = client.cubes.entities(cube.id, limit=1000, cursor=one.next_cursor)
    assert {e.name for e in one.entities + rest.entities} == set(names)

    # Fine search sees the enriched turns and explains each hit per channel.
    found = client.search("LGBTQ support group", cube.id, top_k=3, mode="fine", explain=True)
    assert found.results, "fine search found nothing after enrichment"
    assert {hit.memory.id for hit in found.results} <= {first, second, third}
    top = found.results[0]
    assert top.memory.id == first
    assert top.explain is not None
    assert {"dense", "bm25_window"} <= set(top.explain["channels"])
    fast = client.search("LGBTQ support group", cube.id, top_k=3)
    assert all(hit.explain is None for hit in fast.results)


def test_activation_stats(live_client: memcubed.Client) -> None:
    stats = live_client.activations.stats()
    assert isinstance(stats, memcubed.ActivationStats)
    assert {"gpu", "cpu", "disk"} <= set(stats.tiers)
    # A fresh tenant has no activations in any tier; the counters are the process's.
    assert all((tier.entries, tier.bytes) == (0, 0) for tier in stats.tiers.values())
    assert min(stats.hits, stats.misses, stats.evictions, stats.promotions, stats.demotions) >= 0
    assert isinstance(stats.model.loaded, bool)


async def test_async_graph_and_activation_stats(live_aclient: memcubed.AsyncClient) -> None:
    client = live_aclient
    cube = await client.cubes.create("graph")
    turns = await client.messages.add(cube.id, "session-1", _turns())
    first, second, third = (m.id for m in turns)
    enriched = await client.cubes.wait_enriched(cube.id, timeout=60)
    assert enriched.enrichment_pending == 0

    links = await client.memories.links(third)
    in_session = [(x.direction, x.memory_id) for x in links.links if x.edge.type == "next_in_session"]
    assert in_session == [("in", second)]
    pages = [p async for p in client.cubes.iter_graph(cube.id, types=["next_in_session"], page_size=1)]
    assert sorted((e.source_id, e.target_id) for p in pages for e in p.edges) == sorted(
        [(first, second), (second, third)]
    )
    entities = await client.cubes.entities(cube.id, q="Caroline")
    assert [e.name for e in entities.entities] == ["Caroline"]
    found = await client.search("support group", [cube.id], mode="fine", explain=True)
    assert found.results and found.results[0].explain is not None
    assert {"dense", "bm25_window"} <= set(found.results[0].explain["channels"])

    stats = await client.activations.stats()
    assert all(tier.entries == 0 for tier in stats.tiers.values())

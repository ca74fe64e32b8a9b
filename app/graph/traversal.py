"""Graph traversal for retrieval: a networkx view per cube, cached until the cube's graph changes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import networkx as nx

EdgeRows = list[tuple[int, int, str, float]]
# How much activation each edge type passes on; adjacency in a session carries the most context.
TYPE_WEIGHT = {"next_in_session": 0.6, "shares_entity": 0.25, "similar": 0.5, "updates": 0.8, "derived_from": 0.8,
               "mentions": 0.3, "contradicts": 0.3}


class GraphCache:
    """One undirected graph per cube over vec_ids, built lazily from Postgres and dropped on change."""

    def __init__(self, load: Callable[[uuid.UUID], EdgeRows]) -> None:
        self._load = load
        self._graphs: dict[uuid.UUID, nx.Graph] = {}
        self._lock = threading.Lock()

    def invalidate(self, cube_id: uuid.UUID) -> None:
        with self._lock:
            self._graphs.pop(cube_id, None)

    def get(self, cube_id: uuid.UUID) -> nx.Graph:
        with self._lock:
            graph = self._graphs.get(cube_id)
        if graph is not None:
            return graph
        graph = nx.Graph()
        for a, b, kind, weight in self._load(cube_id):
            w = TYPE_WEIGHT.get(kind, 0.3) * weight
            if graph.has_edge(a, b):
                graph[a][b]["weight"] = max(graph[a][b]["weight"], w)
            else:
                graph.add_edge(a, b, weight=w)
        with self._lock:
            self._graphs[cube_id] = graph
        return graph


def spread(graph: nx.Graph, seeds: dict[int, float], hops: int = 1, decay: float = 0.5) -> dict[int, float]:
    """Spreading activation from seed scores, a local stand-in for personalised PageRank.

    PageRank costs O(edges) per query over the whole cube; spreading from the first hits costs only their
    neighbourhoods, which keeps fine search inside its latency budget at 100k memories.
    """
    activation: dict[int, float] = {}
    frontier = dict(seeds)
    for _ in range(hops):
        nxt: dict[int, float] = {}
        for node, energy in frontier.items():
            if node not in graph:
                continue
            for neighbour, data in graph[node].items():
                gain = energy * data["weight"] * decay
                if gain > nxt.get(neighbour, 0.0):
                    nxt[neighbour] = gain
        for node, gain in nxt.items():
            activation[node] = activation.get(node, 0.0) + gain
        frontier = nxt
    return activation

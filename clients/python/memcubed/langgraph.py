"""A LangGraph ``BaseStore`` kept in memcubed, so a LangGraph agent's long-term memory lives in cubes.

A namespace is a cube (named ``prefix/part/part``, created on first ``put``), an item is a memory: its text
(``value["content"]`` or ``value["text"]`` when a string, else the value as JSON) is what memcubed embeds and
searches, the value and key ride in its metadata, and the key is also a tag so ``get`` is one list call.
``put`` on an existing key updates that memory (a new version, history kept); ``delete`` soft-deletes it.
``search`` with a ``query`` is memcubed's search over every cube under the prefix; ``filter`` matches value
fields by equality.

Write admission still applies: an item whose text duplicates another item's is merged into it (``get`` still
finds it by key; ``search`` returns the surviving one). Needs the ``langgraph`` extra.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from ._client import Client
from ._models import Memory

__all__ = ["MemcubedStore"]

KEY_TAG = "langgraph-key:"
META = "langgraph"


def item_text(value: Mapping[str, Any]) -> str:
    """The text memcubed embeds for a value: its ``content`` or ``text`` string, else the value as JSON."""
    for field in ("content", "text"):
        if isinstance(value.get(field), str) and value[field]:
            return str(value[field])
    return json.dumps(value, sort_keys=True, default=str)


class MemcubedStore(BaseStore):
    """LangGraph long-term memory in memcubed cubes (sync and async).

    ``client`` is a :class:`memcubed.Client` (its key decides which cubes the store can see); cube names are
    ``prefix`` joined with the namespace by ``/``. The async methods run the same calls in a worker thread,
    so an async graph's event loop never waits on the network.
    """

    __slots__ = ("_client", "_cubes", "_prefix")

    def __init__(self, client: Client, *, prefix: str = "langgraph") -> None:
        self._client = client
        self._prefix = prefix
        self._cubes: dict[tuple[str, ...], str] = {}

    # --- BaseStore -----------------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op.namespace, op.key))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise TypeError(f"unknown store operation: {op!r}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    # --- namespaces <-> cubes ------------------------------------------------------------------------

    def _cube_name(self, namespace: tuple[str, ...]) -> str:
        if any("/" in label for label in namespace):
            raise InvalidNamespaceError(f"memcubed namespaces cannot contain '/' (it joins cube names): {namespace}")
        return "/".join((self._prefix, *namespace))

    def _namespace(self, cube_name: str) -> tuple[str, ...] | None:
        head, _, rest = cube_name.partition("/")
        return tuple(rest.split("/")) if head == self._prefix and rest else None

    def _refresh_cubes(self) -> None:
        self._cubes = {ns: cube.id for cube in self._client.cubes.list()
                       if (ns := self._namespace(cube.name)) is not None}

    def _cube(self, namespace: tuple[str, ...], *, create: bool) -> str | None:
        if namespace not in self._cubes:
            self._refresh_cubes()
        if namespace not in self._cubes and create:
            self._cubes[namespace] = self._client.cubes.create(self._cube_name(namespace)).id
        return self._cubes.get(namespace)

    # --- operations ----------------------------------------------------------------------------------

    def _find(self, cube_id: str, key: str) -> Memory | None:
        """The item's memory: the newest one tagged with the key that is not deleted."""
        found = [m for m in self._client.memories.list(cube_id, tag=KEY_TAG + key) if m.status != "deleted"]
        return max(found, key=lambda m: m.created_at) if found else None

    def _get(self, namespace: tuple[str, ...], key: str) -> Item | None:
        cube_id = self._cube(namespace, create=False)
        memory = self._find(cube_id, key) if cube_id else None
        if memory is None:
            return None
        stored = memory.metadata[META]
        return Item(namespace=namespace, key=stored["key"], value=stored["value"], created_at=memory.created_at,
                    updated_at=memory.updated_at)

    def _put(self, op: PutOp) -> None:
        cube_id = self._cube(op.namespace, create=op.value is not None)
        existing = self._find(cube_id, op.key) if cube_id else None
        if op.value is None:
            if existing is not None:
                self._client.memories.delete(existing.id)
            return
        assert cube_id is not None
        value = dict(op.value)
        metadata = {META: {"key": op.key, "value": value}}
        if existing is not None:
            self._client.memories.update(existing.id, content=item_text(value), metadata=metadata,
                                         reason="langgraph put")
            return
        result = self._client.memories.add_many_detailed(
            cube_id, [{"content": item_text(value), "memory_type": "semantic", "tags": [KEY_TAG + op.key],
                       "metadata": metadata}])
        if not result.memories:
            raise ValueError(f"memcubed rejected item {op.key!r}: {result.admission[0].reason}")

    def _search(self, op: SearchOp) -> list[SearchItem]:
        self._refresh_cubes()
        cubes = {cube_id: ns for ns, cube_id in self._cubes.items() if ns[: len(op.namespace_prefix)] ==
                 op.namespace_prefix}
        if not cubes:
            return []
        wanted = op.offset + op.limit
        hits: list[tuple[Memory, float | None]] = []
        if op.query:
            # Fetch more than asked when filtering, since the filter runs here.
            top_k = min(200, wanted * (4 if op.filter else 1))
            response = self._client.search(op.query, list(cubes), top_k=top_k)
            hits = [(hit.memory, hit.score) for hit in response.results]
        else:
            for cube_id in cubes:
                hits.extend((m, None) for m in self._client.memories.list(cube_id, status="active"))
            hits.sort(key=lambda hit: hit[0].updated_at, reverse=True)
        items = [_item(cubes[m.cube_id], m, score) for m, score in hits if META in m.metadata]
        matching = [item for item in items if _matches(item.value, op.filter)]
        return matching[op.offset: wanted]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        self._refresh_cubes()
        found = set()
        for ns in self._cubes:
            if all(_condition(ns, c.match_type, tuple(c.path)) for c in op.match_conditions or ()):
                found.add(ns[: op.max_depth] if op.max_depth is not None else ns)
        return sorted(found)[op.offset: op.offset + op.limit]


def _item(namespace: tuple[str, ...], memory: Memory, score: float | None) -> SearchItem:
    stored = memory.metadata[META]
    return SearchItem(namespace=namespace, key=stored["key"], value=stored["value"], created_at=memory.created_at,
                      updated_at=memory.updated_at, score=score)


def _matches(value: Mapping[str, Any], filter_: Mapping[str, Any] | None) -> bool:
    return all(value.get(field) == expected for field, expected in (filter_ or {}).items())


def _condition(namespace: tuple[str, ...], match_type: str, path: tuple[str, ...]) -> bool:
    """LangGraph's namespace match: ``prefix`` or ``suffix``, ``*`` matching any one label."""
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if match_type == "prefix" else namespace[len(namespace) - len(path):]
    return all(p in ("*", n) for p, n in zip(path, part))

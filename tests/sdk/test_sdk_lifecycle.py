"""Cube lifecycle through both clients against the live server: archive to a file and import it, fork,
snapshots and restore, merge, fuse."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import memcubed
import pytest


def test_lifecycle_with_the_sync_client(live_client: memcubed.Client, tmp_path: Path) -> None:
    client = live_client
    cube = client.cubes.create("sdk-life", description="lifecycle")
    first = client.memories.add(cube.id, "Noor keeps bees on the roof of her building")
    client.memories.add(cube.id, "Noor's hives produced twelve jars of honey in 2023")

    path = tmp_path / "cube.tar"
    written = client.cubes.archive(cube.id, path)
    assert written == path.stat().st_size > 0
    imported = client.cubes.import_archive(path, name="sdk-life-copy")
    assert (imported.cube.name, imported.cube.description, imported.cube.memory_count) == (
        "sdk-life-copy", "lifecycle", 2)
    assert (imported.counts.memories, imported.embeddings, imported.activations_stale) == (2, "reused", 0)
    with pytest.raises(memcubed.ValidationError) as bad:
        client.cubes.import_archive(io.BytesIO(path.read_bytes()[:700]), name="broken")
    assert (bad.value.status, bad.value.code) == (422, "invalid_input")

    fork = client.cubes.fork(cube.id, name="sdk-life-fork")
    assert (fork.cube.name, fork.counts.memories) == ("sdk-life-fork", 2)

    snap = client.snapshots.create(cube.id, label="two memories")
    assert (snap.label, snap.kind, snap.memory_count, snap.cube_id) == ("two memories", "manual", 2, cube.id)
    client.memories.update(first.id, content="Noor moved her bees to a community garden")
    restored = client.snapshots.restore(cube.id, snap.id)
    assert (restored.snapshot_id, restored.changed, restored.unchanged, restored.archived) == (snap.id, 1, 1, 0)
    assert client.memories.get(first.id).content == "Noor keeps bees on the roof of her building"
    assert [(s.id, s.kind) for s in client.snapshots.list(cube.id)] == [
        (restored.pre_restore_snapshot_id, "pre_restore"), (snap.id, "manual")]

    merged = client.cubes.merge(fork.cube.id, cube.id)
    assert (merged.from_cube_id, merged.considered, merged.admitted, merged.merged, merged.rejected) == (
        cube.id, 2, 0, 2, 0)  # restored to what the fork copied: both are duplicates there

    client.memories.add(cube.id, "Noor sells the honey at the Saturday market")  # distillation needs three
    fused = client.cubes.fuse(cube.id, "parametric", steps=1)
    with contextlib.suppress(memcubed.ConflictError):  # spare the shared test machine a training run
        client.jobs.cancel(fused.job.id)
    assert (fused.into, fused.job.kind, fused.job.params) == ("parametric", "distill", {"name": "distilled",
                                                                                       "steps": 1})
    with pytest.raises(memcubed.ValidationError):
        client.cubes.fuse(cube.id, "activation", rank=4)


async def test_lifecycle_with_the_async_client(live_aclient: memcubed.AsyncClient) -> None:
    client = live_aclient
    cube = await client.cubes.create("sdk-life-async")
    await client.memories.add(cube.id, "The async client archives cubes too")
    sink = io.BytesIO()
    assert await client.cubes.archive(cube.id, sink) == len(sink.getvalue())
    imported = await client.cubes.import_archive(io.BytesIO(sink.getvalue()), name="sdk-life-async-copy")
    assert imported.cube.memory_count == 1
    fork = await client.cubes.fork(cube.id)
    assert fork.cube.name.startswith("sdk-life-async-fork-")
    snap = await client.snapshots.create(cube.id)
    assert [s.id for s in await client.snapshots.list(cube.id)] == [snap.id]
    restored = await client.snapshots.restore(cube.id, snap.id)
    assert (restored.changed, restored.unchanged) == (0, 1)
    merged = await client.cubes.merge(imported.cube.id, cube.id)
    assert (merged.considered, merged.merged) == (1, 1)
    fused = await client.cubes.fuse(cube.id, "activation", max_tokens=256)
    assert fused.job.kind == "fuse_activation" and fused.job.params == {"max_tokens": 256}

"""Jobs, forgetting policy, feedback, hard delete and write admission through both clients against the live
server (jobs run in-process there)."""

from __future__ import annotations

import memcubed
import pytest


def test_consolidate_policy_feedback_and_hard_delete(live_client: memcubed.Client) -> None:
    client = live_client
    cube = client.cubes.create("jobs")
    kept = client.memories.add(cube.id, "The office moved to the third floor of the north building")
    assert kept.admission is not None and kept.admission.status == "admitted"
    assert (kept.tier, kept.merged_into, kept.feedback.useful) == ("short", None, 0)

    job = client.cubes.consolidate(cube.id)
    assert (job.cube_id, job.kind, job.trigger) == (cube.id, "consolidate", "api")
    assert job.params == {"forget": False, "summaries": True}
    done = client.jobs.wait(job.id, timeout=60)
    assert (done.id, done.status, done.error, done.progress) == (job.id, "done", None, 1.0)
    assert done.finished_at is not None
    assert [j.id for j in client.jobs.list(cube_id=cube.id, status="done")] == [job.id]
    assert client.jobs.list(cube_id=cube.id, kind="forget") == []
    with pytest.raises(memcubed.ConflictError):
        client.jobs.cancel(job.id)  # only a queued job can be cancelled
    forget = client.cubes.forget(cube.id)
    assert forget.kind == "forget"
    assert client.jobs.wait(forget.id, timeout=60).status == "done"

    policy = client.cubes.get_policy(cube.id)
    assert (policy.cube_id, policy.is_default, policy.threshold, policy.max_active) == (cube.id, True, 0.2, None)
    updated = client.cubes.set_policy(cube.id, threshold=0.35, max_active=100, min_age_hours=0)
    assert (updated.threshold, updated.max_active, updated.min_age_hours, updated.is_default) == (
        0.35, 100, 0.0, False
    )
    assert client.cubes.get_policy(cube.id).threshold == 0.35
    with pytest.raises(memcubed.ValidationError):
        client.cubes.set_policy(cube.id, threshold=1.5)

    noted = client.memories.feedback(kept.id, "useful")
    assert (noted.id, noted.feedback.useful) == (kept.id, 1)
    assert client.memories.feedback(kept.id, "wrong").feedback.wrong == 1
    assert client.memories.get(kept.id).feedback.useful == 1

    gone = client.memories.delete(kept.id, hard=True)
    assert gone.id == kept.id
    with pytest.raises(memcubed.NotFoundError):
        client.memories.get(kept.id)

    other = client.memories.add(cube.id, "Quarterly planning happens in the large meeting room")
    client.memories.delete(other.id)
    purged = client.cubes.purge(cube.id, statuses=["deleted"])
    assert (purged.purged, purged.memory_ids) == (1, [other.id])
    with pytest.raises(memcubed.NotFoundError):
        client.memories.get(other.id)


def test_write_admission_is_reported(live_client: memcubed.Client) -> None:
    cube = live_client.cubes.create("admission")
    text = "Bob's favourite programming language is OCaml, he uses it daily"
    result = live_client.memories.add_many_detailed(cube.id, [{"content": text}, {"content": "ok"}])
    assert (result.admission[0].index, result.admission[0].status) == (0, "admitted")
    assert result.admission[1].status == "rejected" and result.admission[1].memory_id is None
    assert [m.content for m in result.memories] == [text]
    with pytest.raises(memcubed.MemcubedError) as caught:
        live_client.memories.add(cube.id, "ok")
    assert caught.value.code == "admission_rejected"


async def test_async_jobs_and_policy(live_aclient: memcubed.AsyncClient) -> None:
    client = live_aclient
    cube = await client.cubes.create("async-jobs")
    memory = await client.memories.add(cube.id, "Carol prefers tea over coffee in the mornings")
    job = await client.cubes.consolidate(cube.id, summaries=False)
    assert job.params == {"forget": False, "summaries": False}
    assert (await client.jobs.wait(job.id, timeout=60)).status == "done"
    assert (await client.jobs.get(job.id)).status == "done"
    assert (await client.cubes.set_policy(cube.id, enabled=False)).enabled is False
    assert (await client.cubes.get_policy(cube.id)).enabled is False
    assert (await client.memories.feedback(memory.id, "not_useful")).feedback.not_useful == 1
    await client.memories.delete(memory.id, hard=True)
    with pytest.raises(memcubed.NotFoundError):
        await client.memories.get(memory.id)

"""Jobs, forgetting policy, purge, feedback, hard delete and write admission, over a mock transport."""

from __future__ import annotations

import json
import types
from typing import Any

import httpx
import memcubed
import pytest

from tests.sdk.sdk_helpers import (
    CUBE_ID,
    JOB_ID,
    MEMORY_ID,
    OTHER_MEMORY_ID,
    Recorder,
    SleepLog,
    job_json,
    memory_json,
)


def _call(request: httpx.Request) -> tuple[str, str]:
    return request.method, request.url.path


def _any(value: object) -> Any:
    return value


def _body(request: httpx.Request) -> object:
    return json.loads(request.content) if request.content else None


def test_jobs_request_shapes(mock_client: memcubed.Client, recorder: Recorder) -> None:
    jobs = mock_client.jobs.list(cube_id=CUBE_ID, status="done", kind="consolidate", limit=7)
    assert [j.id for j in jobs] == [JOB_ID] and isinstance(jobs[0], memcubed.Job)
    request = recorder.requests[-1]
    assert _call(request) == ("GET", "/v1/jobs")
    assert dict(request.url.params) == {"cube_id": CUBE_ID, "status": "done", "kind": "consolidate", "limit": "7"}
    mock_client.jobs.list()
    assert dict(recorder.requests[-1].url.params) == {"limit": "50"}
    with pytest.raises(ValueError, match="limit"):
        mock_client.jobs.list(limit=0)

    job = mock_client.jobs.get(JOB_ID)
    assert (job.status, job.progress, job.finished, job.params) == (
        "done", 1.0, True, {"forget": False, "summaries": True}
    )
    assert job.created_at.tzinfo is not None and job.started_at is None
    assert _call(recorder.requests[-1]) == ("GET", f"/v1/jobs/{JOB_ID}")

    cancelled = mock_client.jobs.cancel(JOB_ID)
    assert cancelled.status == "cancelled"
    assert _call(recorder.requests[-1]) == ("POST", f"/v1/jobs/{JOB_ID}/cancel")
    assert recorder.requests[-1].content == b""


def test_consolidate_and_forget_request_shapes(mock_client: memcubed.Client, recorder: Recorder) -> None:
    job = mock_client.cubes.consolidate(CUBE_ID)
    assert (job.kind, job.status, job.finished) == ("consolidate", "queued", False)
    request = recorder.requests[-1]
    assert _call(request) == ("POST", f"/v1/cubes/{CUBE_ID}/consolidate")
    assert request.content == b""  # no options: the server's defaults
    mock_client.cubes.consolidate(CUBE_ID, forget=True, summaries=False)
    assert _body(recorder.requests[-1]) == {"forget": True, "summaries": False}
    mock_client.cubes.consolidate(CUBE_ID, forget=True)
    assert _body(recorder.requests[-1]) == {"forget": True}

    forget = mock_client.cubes.forget(CUBE_ID)
    assert forget.kind == "forget"
    assert _call(recorder.requests[-1]) == ("POST", f"/v1/cubes/{CUBE_ID}/forget")
    assert recorder.requests[-1].content == b""


def test_policy_request_shapes(mock_client: memcubed.Client, recorder: Recorder) -> None:
    policy = mock_client.cubes.get_policy(CUBE_ID)
    assert isinstance(policy, memcubed.Policy)
    assert (policy.is_default, policy.threshold, policy.max_active, policy.updated_at) == (True, 0.2, None, None)
    assert _call(recorder.requests[-1]) == ("GET", f"/v1/cubes/{CUBE_ID}/policy")

    updated = mock_client.cubes.set_policy(CUBE_ID, threshold=0.5, max_active=100, ttl_days=None)
    assert (updated.threshold, updated.is_default) == (0.5, False)
    assert updated.updated_at is not None and updated.updated_at.tzinfo is not None
    request = recorder.requests[-1]
    assert _call(request) == ("PUT", f"/v1/cubes/{CUBE_ID}/policy")
    assert _body(request) == {"threshold": 0.5, "max_active": 100, "ttl_days": None}
    assert "Idempotency-Key" not in request.headers


def test_purge_request_shapes(mock_client: memcubed.Client, recorder: Recorder) -> None:
    result = mock_client.cubes.purge(CUBE_ID)
    assert (result.purged, result.memory_ids) == (1, [MEMORY_ID])
    assert _call(recorder.requests[-1]) == ("POST", f"/v1/cubes/{CUBE_ID}/purge")
    assert recorder.requests[-1].content == b""
    mock_client.cubes.purge(CUBE_ID, statuses=["deleted"], older_than_days=30)
    assert _body(recorder.requests[-1]) == {"statuses": ["deleted"], "older_than_days": 30}
    mock_client.cubes.purge(CUBE_ID, statuses="archived")
    assert _body(recorder.requests[-1]) == {"statuses": ["archived"]}


def test_feedback_request_shape_and_no_retry(mock_client: memcubed.Client, recorder: Recorder) -> None:
    memory = mock_client.memories.feedback(MEMORY_ID, "useful")
    assert memory.feedback.useful == 1 and memory.feedback.wrong == 0
    assert _call(recorder.requests[-1]) == ("POST", f"/v1/memories/{MEMORY_ID}/feedback")
    assert _body(recorder.requests[-1]) == {"signal": "useful"}
    with pytest.raises(ValueError, match="signal"):
        mock_client.memories.feedback(MEMORY_ID, _any("great"))
    # A counter: a 503 is not retried (a second signal would be counted twice).
    calls = recorder.calls
    recorder.script = [httpx.Response(503, json={"error": {"code": "unavailable", "message": "x", "details": {}}})]
    with pytest.raises(memcubed.ServerError):
        mock_client.memories.feedback(MEMORY_ID, "wrong")
    assert recorder.calls == calls + 1


def test_delete_soft_and_hard(mock_client: memcubed.Client, recorder: Recorder) -> None:
    mock_client.memories.delete(MEMORY_ID)
    assert _call(recorder.requests[-1]) == ("DELETE", f"/v1/memories/{MEMORY_ID}")
    assert recorder.requests[-1].url.query == b""
    mock_client.memories.delete(MEMORY_ID, hard=True)
    assert _call(recorder.requests[-1]) == ("DELETE", f"/v1/memories/{MEMORY_ID}")
    assert dict(recorder.requests[-1].url.params) == {"hard": "true"}


def test_memory_new_fields_default_and_parse() -> None:
    old = memcubed.Memory.model_validate(memory_json())  # a server without them
    assert (old.merged_into, old.superseded_by, old.tier, old.heat, old.admission) == (None, None, "short", 0.0, None)
    assert old.feedback == memcubed.MemoryFeedback(useful=0, not_useful=0, wrong=0)
    new = memcubed.Memory.model_validate(
        memory_json(
            status="archived",
            merged_into=OTHER_MEMORY_ID,
            superseded_by=None,
            tier="long",
            heat=2.5,
            feedback={"useful": 2, "not_useful": 1, "wrong": 0},
            admission={"status": "merged", "merged_into": OTHER_MEMORY_ID, "similarity": 0.97, "reason": "dup"},
        )
    )
    assert (new.merged_into, new.tier, new.heat, new.feedback.useful) == (OTHER_MEMORY_ID, "long", 2.5, 2)
    assert new.admission is not None
    assert (new.admission.status, new.admission.merged_into, new.admission.similarity) == (
        "merged", OTHER_MEMORY_ID, 0.97
    )


def _write_answer() -> httpx.Response:
    return httpx.Response(
        201,
        json={
            "memories": [
                memory_json(),
                memory_json(id=OTHER_MEMORY_ID, status="archived", merged_into=MEMORY_ID),
            ],
            "admission": [
                {"index": 0, "status": "admitted", "memory_id": MEMORY_ID, "merged_into": None,
                 "similarity": None, "reason": None},
                {"index": 1, "status": "rejected", "memory_id": None, "merged_into": None,
                 "similarity": None, "reason": "too short"},
                {"index": 2, "status": "merged", "memory_id": OTHER_MEMORY_ID, "merged_into": MEMORY_ID,
                 "similarity": 0.99, "reason": "duplicate"},
            ],
        },
    )


def test_add_many_detailed_carries_admission(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [_write_answer()]
    result = mock_client.memories.add_many_detailed(CUBE_ID, [{"content": "a"}, {"content": "b"}, {"content": "a"}])
    assert isinstance(result, memcubed.WriteResult)
    assert [(a.index, a.status, a.memory_id) for a in result.admission] == [
        (0, "admitted", MEMORY_ID), (1, "rejected", None), (2, "merged", OTHER_MEMORY_ID)
    ]
    assert _call(recorder.requests[-1]) == ("POST", f"/v1/cubes/{CUBE_ID}/memories")
    # Each stored memory also carries its own item's decision.
    first, merged = result.memories
    assert first.admission is not None and first.admission.status == "admitted"
    assert merged.admission is not None
    assert (merged.admission.status, merged.admission.merged_into, merged.admission.similarity) == (
        "merged", MEMORY_ID, 0.99
    )
    recorder.script = [_write_answer()]
    memories = mock_client.memories.add_many(CUBE_ID, [{"content": "a"}, {"content": "b"}, {"content": "a"}])
    assert [m.id for m in memories] == [MEMORY_ID, OTHER_MEMORY_ID]
    assert memories[1].admission is not None and memories[1].admission.status == "merged"


def test_add_of_a_rejected_memory_raises(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [
        httpx.Response(
            201,
            json={"memories": [], "admission": [{"index": 0, "status": "rejected", "memory_id": None,
                                                 "reason": "fewer than 8 meaningful characters"}]},
        )
    ]
    with pytest.raises(memcubed.MemcubedError) as caught:
        mock_client.memories.add(CUBE_ID, "ok")
    assert caught.value.code == "admission_rejected"
    assert "meaningful characters" in caught.value.message
    assert caught.value.details["admission"][0]["status"] == "rejected"


def _job_states(*statuses: str) -> list[httpx.Response]:
    return [httpx.Response(200, json=job_json(status=s)) for s in statuses]


def test_jobs_wait_polls_until_finished(mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog) -> None:
    recorder.script = [*_job_states("queued", "running", "done")]
    job = mock_client.jobs.wait(JOB_ID)
    assert job.status == "done"
    assert [_call(r) for r in recorder.requests] == [("GET", f"/v1/jobs/{JOB_ID}")] * 3
    assert sleeps.delays == [0.2, 0.2]
    recorder.script = [*_job_states("failed")]
    assert mock_client.jobs.wait(JOB_ID).status == "failed"  # returned, not raised
    with pytest.raises(ValueError, match="poll"):
        mock_client.jobs.wait(JOB_ID, poll=0)


def test_jobs_wait_times_out(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = {"now": 50.0}

    def sleep(seconds: float) -> None:
        sleeps.delays.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(mock_client, "_sleep", sleep)
    monkeypatch.setattr(memcubed._client, "time", types.SimpleNamespace(monotonic=lambda: clock["now"]))
    recorder.script = [*_job_states(*["running"] * 5)]
    with pytest.raises(memcubed.APITimeoutError) as caught:
        mock_client.jobs.wait(JOB_ID, timeout=1, poll=0.4)
    assert sleeps.delays == pytest.approx([0.4, 0.4, 0.2])
    assert caught.value.code == "job_timeout"
    assert caught.value.details == {"job_id": JOB_ID, "status": "running", "progress": 0.0}


async def test_async_jobs_and_new_routes(
    mock_aclient: memcubed.AsyncClient, recorder: Recorder, sleeps: SleepLog
) -> None:
    job = await mock_aclient.cubes.consolidate(CUBE_ID, summaries=False)
    assert _body(recorder.requests[-1]) == {"summaries": False}
    recorder.script = [*_job_states("running", "done")]
    done = await mock_aclient.jobs.wait(job.id, poll=0.05)
    assert done.status == "done" and sleeps.delays == [0.05]
    recorder.script = [*_job_states("running")]
    with pytest.raises(memcubed.APITimeoutError) as caught:
        await mock_aclient.jobs.wait(job.id, timeout=0)
    assert caught.value.code == "job_timeout"
    assert [j.id for j in await mock_aclient.jobs.list(kind="forget")] == [JOB_ID]
    assert dict(recorder.requests[-1].url.params) == {"kind": "forget", "limit": "50"}
    assert (await mock_aclient.jobs.cancel(JOB_ID)).status == "cancelled"
    assert (await mock_aclient.cubes.forget(CUBE_ID)).kind == "forget"
    assert (await mock_aclient.cubes.get_policy(CUBE_ID)).is_default is True
    await mock_aclient.cubes.set_policy(CUBE_ID, enabled=False)
    assert _body(recorder.requests[-1]) == {"enabled": False}
    assert (await mock_aclient.cubes.purge(CUBE_ID, older_than_days=1.5)).purged == 1
    assert _body(recorder.requests[-1]) == {"older_than_days": 1.5}
    assert (await mock_aclient.memories.feedback(MEMORY_ID, "not_useful")).feedback.useful == 1
    await mock_aclient.memories.delete(MEMORY_ID, hard=True)
    assert dict(recorder.requests[-1].url.params) == {"hard": "true"}
    recorder.script = [_write_answer()]
    result = await mock_aclient.memories.add_many_detailed(CUBE_ID, [{"content": "a"}])
    assert [a.status for a in result.admission] == ["admitted", "rejected", "merged"]

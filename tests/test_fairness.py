"""Fair sharing across tenants: the generation model's lock and the in-process job queue serve waiting tenants in
turn, so tenant B's one request is served before tenant A's backlog drains."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence

from opentelemetry import trace

from app.fairness import FairLock
from app.services.jobs import Outcome
from app.workers.queue import InProcessQueue

A, B = uuid.uuid4(), uuid.uuid4()


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_fair_lock_serves_waiting_tenants_in_turn() -> None:
    lock = FairLock()
    served: list[str] = []

    def work(tenant: uuid.UUID, name: str) -> None:
        with lock.hold(tenant):
            served.append(name)

    threads: list[threading.Thread] = []
    with lock.hold(A):  # A's first request holds the model; its backlog and then B's one request queue up
        for name, tenant in (("a2", A), ("a3", A), ("a4", A), ("b1", B)):
            threads.append(threading.Thread(target=work, args=(tenant, name)))
            threads[-1].start()
            queued = len(threads)
            wait_until(lambda: lock.waiting() == queued)  # noqa: B023 - called before the next turn rebinds it
    for t in threads:
        t.join(timeout=10)
    assert served == ["a2", "b1", "a3", "a4"]  # B waits for one turn of A, not for A's backlog
    with lock.hold(B):  # free again: taken at once
        assert lock.waiting() == 0


def test_the_job_queue_serves_due_jobs_tenant_by_tenant() -> None:
    ran: list[str] = []
    release = threading.Event()
    names: dict[uuid.UUID, str] = {}
    tenants: dict[uuid.UUID, uuid.UUID] = {}

    def run(job_id: uuid.UUID, links: Sequence[trace.Link]) -> Outcome:
        ran.append(names[job_id])
        if names[job_id] == "a1":
            release.wait(10)  # the queue is busy with A's first job while the rest arrive
        return Outcome("done")

    queue = InProcessQueue(run, tenant_of=tenants.__getitem__)
    queue.start()
    try:
        for name, tenant in (("a1", A), ("a2", A), ("a3", A), ("a4", A), ("b1", B)):
            job_id = uuid.uuid4()
            names[job_id], tenants[job_id] = name, tenant
            queue.submit(job_id, links=[])
            if name == "a1":
                wait_until(lambda: ran == ["a1"])
        release.set()
        assert queue.idle(10)
    finally:
        queue.stop()
    assert ran == ["a1", "a2", "b1", "a3", "a4"]

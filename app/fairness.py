"""Sharing one resource fairly across tenants: whoever waits is served round-robin by tenant, so one tenant's
backlog delays another tenant's request by at most one turn per waiting tenant, not by the whole backlog.

``RoundRobin`` is the queue (a FIFO per tenant, tenants taking turns); ``FairLock`` is a lock whose waiters are
served from one (the generation model: one forward pass at a time); the in-process job queue takes its due jobs
from one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class RoundRobin(Generic[T]):
    """FIFO per key; ``pop`` serves the keys in turn (a key served goes to the back of the turn order). Not
    thread-safe: its owner locks."""

    def __init__(self) -> None:
        self._queues: OrderedDict[Hashable, deque[T]] = OrderedDict()

    def push(self, key: Hashable, item: T) -> None:
        self._queues.setdefault(key, deque()).append(item)

    def pop(self) -> T:
        key, queue = next(iter(self._queues.items()))
        item = queue.popleft()
        del self._queues[key]
        if queue:
            self._queues[key] = queue  # back of the turn order
        return item

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())


class FairLock:
    """A lock whose waiters get it round-robin by tenant (FIFO within a tenant)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._waiting: RoundRobin[object] = RoundRobin()
        self._granted: object | None = None

    @contextmanager
    def hold(self, tenant: Hashable) -> Iterator[None]:
        ticket = object()
        with self._cond:
            if self._held:
                self._waiting.push(tenant, ticket)
                self._cond.wait_for(lambda: self._granted is ticket)
                self._granted = None
            self._held = True
        try:
            yield
        finally:
            with self._cond:
                if len(self._waiting):
                    self._granted = self._waiting.pop()  # handed over: it stays held
                    self._cond.notify_all()
                else:
                    self._held = False

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

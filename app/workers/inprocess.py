"""A single background thread that runs per-cube jobs, deduplicated, so writes never wait for them."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

log = logging.getLogger(__name__)


class CubeJobRunner:
    """Runs ``job(cube_id)`` for each scheduled cube, once per scheduling burst, in arrival order."""

    def __init__(self, job: Callable[[uuid.UUID], object], name: str = "enrichment") -> None:
        self._job = job
        self._pending: dict[uuid.UUID, None] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"memcubed-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def schedule(self, cube_id: uuid.UUID) -> None:
        with self._cond:
            self._pending[cube_id] = None
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        """False once stop() was called: long jobs check it between steps."""
        return not self._stopped

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or running (tests and evaluations use this)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopped)
                if self._stopped:
                    return
                cube_id = next(iter(self._pending))
                del self._pending[cube_id]
                self._busy = True
            try:
                self._job(cube_id)
            except Exception:
                log.exception("background job failed for cube %s; it runs again on the next write", cube_id)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

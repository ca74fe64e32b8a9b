"""``memcubed worker``: the arq worker process that runs jobs from Redis, with the schedule as an arq cron."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from app.config import Settings

log = logging.getLogger(__name__)


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``arq.Worker`` for this configuration."""
    from arq import Retry, cron, func
    from arq.connections import RedisSettings

    from app.workers.runtime import build_worker_runtime

    if not settings.redis_url:
        raise SystemExit("memcubed worker needs MEMCUBED_REDIS_URL (without it, jobs run inside the API process)")
    if not settings.database_url:
        raise SystemExit("memcubed worker needs MEMCUBED_DATABASE_URL: the same Postgres as the API")

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["runtime"] = await asyncio.to_thread(build_worker_runtime, settings)

    async def shutdown(ctx: dict[str, Any]) -> None:
        runtime = ctx.get("runtime")
        if runtime is not None:
            runtime.close()

    async def run_job(ctx: dict[str, Any], job_id: str) -> str:
        outcome = await asyncio.to_thread(ctx["runtime"].executor.run, uuid.UUID(job_id))
        if outcome.status in ("retry", "locked"):
            raise Retry(defer=outcome.delay)
        return outcome.status

    async def scheduled(ctx: dict[str, Any]) -> int:
        created = await asyncio.to_thread(ctx["runtime"].jobs.schedule_all)
        return len(created)

    every = settings.schedule_minutes
    crons = []
    if every > 0:
        minutes = set(range(0, 60, every)) if every < 60 else {0}
        crons.append(cron(scheduled, minute=minutes, run_at_startup=False, unique=True))
    return {
        "functions": [func(run_job, name="run_job", max_tries=10_000)],
        "cron_jobs": crons,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.redis_queue,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "job_timeout": settings.job_timeout_seconds,
        "max_jobs": 4,
        "retry_jobs": True,
        "keep_result": 60,
        "health_check_key": f"{settings.redis_queue}:health-check",
        "handle_signals": True,
    }


def run_worker(settings: Settings) -> None:
    from arq.worker import Worker

    kwargs = worker_settings(settings)
    # arq's Worker needs a current event loop on Python ≥ 3.10 when it is built outside one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    Worker(**kwargs).run()

"""The ``memcubed`` command (Typer: typed options, help and completion without hand-written parsing)."""

from __future__ import annotations

import signal
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.budget.cli import router_app
from app.config import Settings
from app.errors import MemcubedError
from app.redact import install_log_redaction, redact
from app.schemas.admin import KeyCreate, Permission, TenantOut

cli = typer.Typer(help="memcubed: long-term memory service for LLM agents.", no_args_is_help=True)
tenants_cli = typer.Typer(help="Manage tenants (admin).", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage API keys (admin).", no_args_is_help=True)
cli.add_typer(tenants_cli, name="tenants")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(router_app, name="router")
console = Console()

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (MEMCUBED_DATA_DIR).")]


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir else Settings()


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="API processes sharing the port; they keep one dataset "
                                                      "through the change log (docs/scaling.md).")] = 1,
    data_dir: DataDir = None,
    fd: Annotated[int | None, typer.Option(hidden=True, help="An inherited listening socket (--workers).")] = None,
) -> None:
    """Run the API. Without MEMCUBED_DATABASE_URL an embedded Postgres starts in the data dir."""
    import socket

    import uvicorn

    from app.container import build
    from app.main import create_app
    from app.observability import configure_logging

    # SIGTERM as SystemExit (uvicorn re-raises it after its graceful shutdown; like SIGINT's KeyboardInterrupt):
    # the finally below and the atexit hooks run, so an embedded Postgres stops with the API, not after it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    settings = _settings(data_dir)
    configure_logging(settings)
    install_log_redaction()
    if workers > 1:
        _supervise(settings, host, port, workers)
        return
    if fd is None:
        console.print(f"memcubed: data dir {settings.data_dir}; starting (first start loads the model and Postgres)")
    container = build(settings)
    if container.admin_key_created:
        console.print(f"[bold]Admin API key (shown once, also kept in {settings.data_dir / 'admin_key'}):[/bold]")
        console.print(container.admin_key_created, soft_wrap=True)
    if fd is None:
        console.print(f"memcubed listening on http://{host}:{port}  (OpenAPI docs at /docs)")
    try:
        # JSON logs: uvicorn's loggers go through our root handler (the access line comes from app/api/metrics.py).
        json_logs = settings.log_format == "json"
        config = uvicorn.Config(create_app(settings, container), host=host, port=port, log_level=settings.log_level,
                                log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,
                                access_log=not json_logs)
        server = uvicorn.Server(config)
        # A worker of --workers accepts on the supervisor's socket (the family is read from the descriptor).
        server.run(sockets=[socket.socket(fileno=fd)] if fd is not None else None)
    finally:
        container.close()


def _supervise(settings: Settings, host: str, port: int, workers: int) -> None:
    """``serve --workers N``: start (or reach) Postgres and migrate once, register the admin key once, bind the
    port, then run N ``serve --fd`` processes on it, each with index files of its own, and restart any that dies.
    """
    import os
    import socket
    import subprocess
    import time

    from app.container import prepare_database

    console.print(f"memcubed: data dir {settings.data_dir}; starting {workers} processes")
    url, created = prepare_database(settings)
    if created:
        console.print(f"[bold]Admin API key (shown once, also kept in {settings.data_dir / 'admin_key'}):[/bold]")
        console.print(created, soft_wrap=True)
    sock = socket.create_server((host, port), backlog=2048)
    sock.set_inheritable(True)
    env = {**os.environ, "MEMCUBED_DATABASE_URL": url, "MEMCUBED_DATA_DIR": str(settings.data_dir)}

    def start(slot: int) -> subprocess.Popen[bytes]:
        slot_env = {**env, "MEMCUBED_INDEXES_DIR": str(settings.data_dir / "processes" / str(slot))}
        return subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "serve",
                                 "--fd", str(sock.fileno()), "--host", host, "--port", str(port)],
                                env=slot_env, pass_fds=(sock.fileno(),))

    children = {slot: start(slot) for slot in range(workers)}
    console.print(f"memcubed listening on http://{host}:{port} with {workers} processes  (OpenAPI docs at /docs)")
    try:
        while True:
            time.sleep(0.5)
            for slot, child in list(children.items()):
                if child.poll() is not None:
                    console.print(f"memcubed: process {slot} exited ({child.returncode}); starting it again")
                    children[slot] = start(slot)
    finally:
        for child in children.values():
            child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        sock.close()


@cli.command()
def worker(data_dir: DataDir = None) -> None:
    """Run the job worker (consolidation, forgetting, the schedule) on the Redis queue.

    Needs MEMCUBED_REDIS_URL and MEMCUBED_DATABASE_URL (the API's Postgres). Without Redis, jobs run inside
    the API process and no worker is needed.
    """
    from app.observability import configure_logging
    from app.workers.worker import run_worker

    settings = _settings(data_dir)
    configure_logging(settings)
    install_log_redaction()
    console.print(f"memcubed worker: queue {settings.redis_queue} on {redact(settings.redis_url or '')}")
    run_worker(settings)


@cli.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations (the service also does this at start)."""
    from app.container import open_database

    _, engine, _ = open_database(_settings(data_dir))
    engine.dispose()
    console.print("database is at the latest migration")


@cli.command()
def reindex(data_dir: DataDir = None) -> None:
    """Rebuild every FAISS index from Postgres."""
    from app.container import build

    container = build(_settings(data_dir))
    try:
        report = container.indexing.rebuild_all()
    finally:
        container.close()
    console.print(f"rebuilt {len(report.rebuilt)} cube index(es)")


@tenants_cli.command("create")
def tenants_create(name: str, data_dir: DataDir = None) -> None:
    """Create a tenant and print its first API key."""
    from app.container import SYSTEM, build

    container = build(_settings(data_dir))
    try:
        created = container.auth.create_tenant(SYSTEM, name)
    finally:
        container.close()
    console.print(f"tenant {created.name} id={created.id}")
    console.print(f"API key (shown once): {created.api_key}", soft_wrap=True)


@tenants_cli.command("list")
def tenants_list(data_dir: DataDir = None) -> None:
    """List tenants."""
    from app.container import SYSTEM, build

    container = build(_settings(data_dir))
    try:
        found = container.auth.list_tenants(SYSTEM)
    finally:
        container.close()
    table = Table("id", "name", "created")
    for t in found:
        table.add_row(str(t.id), t.name, t.created_at.isoformat())
    console.print(table)


@keys_cli.command("create")
def keys_create(
    tenant: Annotated[str, typer.Argument(help="Tenant id or name.")],
    cube: Annotated[list[uuid.UUID] | None, typer.Option(
        help="Scope the key to this cube (repeat for several); without it the key sees the whole tenant.")] = None,
    permission: Annotated[Permission, typer.Option(help="read, write or admin.")] = "admin",
    data_dir: DataDir = None,
) -> None:
    """Create an API key for a tenant and print it once; ``--cube`` and ``--permission`` share cubes."""
    from app.container import SYSTEM, build

    container = build(_settings(data_dir))
    try:
        tenant_id = _tenant_id(container.auth.list_tenants(SYSTEM), tenant)
        created = container.auth.create_key(SYSTEM, tenant_id, KeyCreate(cube_ids=cube or None,
                                                                          permission=permission))
    finally:
        container.close()
    scope = "all cubes" if created.cube_ids is None else ", ".join(map(str, created.cube_ids))
    console.print(f"key id={created.id} permission={created.permission} cubes: {scope}", soft_wrap=True)
    console.print(f"API key (shown once): {created.api_key}", soft_wrap=True)


@keys_cli.command("revoke")
def keys_revoke(key_id: uuid.UUID, data_dir: DataDir = None) -> None:
    """Revoke an API key."""
    from app.container import SYSTEM, build

    container = build(_settings(data_dir))
    try:
        revoked = container.auth.revoke_key(SYSTEM, key_id)
    finally:
        container.close()
    console.print(f"revoked {revoked.id} at {revoked.revoked_at.isoformat()}")


def _tenant_id(tenants: list[TenantOut], ref: str) -> uuid.UUID:
    for t in tenants:
        if str(t.id) == ref or t.name == ref:
            return uuid.UUID(str(t.id))
    raise typer.BadParameter(f"no tenant {ref!r}")


def main() -> None:
    try:
        cli()
    except MemcubedError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise SystemExit(1) from None

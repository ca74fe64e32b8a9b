"""docker-compose.yml cannot run here; it is parsed and checked for the services and settings they need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, to_psycopg_url

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE.exists(), "docker-compose.yml is missing at the repository root"
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """``environment`` as a mapping, whether written as a mapping or as a list of NAME=value."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {name: value for name, _, value in (str(item).partition("=") for item in env)}
    return {str(k): str(v) for k, v in env.items()}


def test_the_services_exist(compose: dict[str, Any]) -> None:
    assert {"lb", "api", "worker", "postgres", "redis"} <= set(compose["services"])


@pytest.mark.parametrize("name", ["lb", "api", "worker", "postgres", "redis"])
def test_every_service_has_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    check = compose["services"][name].get("healthcheck")
    assert isinstance(check, dict), name
    assert check.get("test"), name
    assert not check.get("disable", False)


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_get_database_and_redis_urls(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    env = env_of(service)
    assert env["MEMCUBED_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["MEMCUBED_DATABASE_URL"]
    assert env["MEMCUBED_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    assert env["MEMCUBED_REDIS_URL"].endswith("@redis:6379/0")
    # The settings the service actually reads accept these.
    settings = Settings(database_url=env["MEMCUBED_DATABASE_URL"], redis_url=env["MEMCUBED_REDIS_URL"])
    assert settings.database_url is not None
    assert to_psycopg_url(settings.database_url).startswith("postgresql+psycopg://")
    depends = service.get("depends_on") or {}
    assert {"postgres", "redis"} <= set(depends)
    if isinstance(depends, dict):
        assert depends["postgres"].get("condition") == "service_healthy"


def test_database_credentials_match(compose: dict[str, Any]) -> None:
    pg_env = env_of(compose["services"]["postgres"])
    url = env_of(compose["services"]["api"])["MEMCUBED_DATABASE_URL"]
    user, password, db = pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"]
    assert url == f"postgresql://{user}:{password}@postgres:5432/{db}"


def test_postgres_keeps_its_data_in_a_volume(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["postgres"].get("volumes") or []
    targets = {str(v).split(":")[1] if isinstance(v, str) else v.get("target") for v in volumes}
    assert "/var/lib/postgresql/data" in targets
    named = {str(v).split(":")[0] for v in volumes if isinstance(v, str)}
    assert named <= set(compose.get("volumes") or {})


def test_api_replicas_sit_behind_the_load_balancer(compose: dict[str, Any]) -> None:
    """Two API replicas at least, none publishing a host port; the load balancer (the official nginx image)
    publishes 8080, waits for healthy replicas, and proxies to every replica of ``api``."""
    api, lb = compose["services"]["api"], compose["services"]["lb"]
    assert api["deploy"]["replicas"] >= 2
    assert "ports" not in api and [str(p) for p in api["expose"]] == ["8080"]
    assert "/readyz" in " ".join(str(part) for part in api["healthcheck"]["test"])
    # Replicas share the data volume but each keeps its index files in its own container.
    assert env_of(api)["MEMCUBED_INDEXES_DIR"] == "/srv/indexes"
    assert "/srv/indexes" not in " ".join(str(v) for v in api.get("volumes", []))
    assert str(lb["image"]).split(":")[0] == "nginx"
    assert lb["ports"] == ["8080:8080"]
    assert lb["depends_on"]["api"]["condition"] == "service_healthy"
    [mount] = lb["volumes"]
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/etc/nginx/nginx.conf", "ro")
    conf = (COMPOSE.parent / source).read_text()
    assert "server api:8080 resolve;" in conf and "proxy_pass http://memcubed_api;" in conf
    assert "resolver 127.0.0.11" in conf  # Docker's DNS: replicas added by --scale are found


def test_at_least_one_worker_runs_the_queue(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker.get("deploy", {}).get("replicas", 1) >= 1
    assert list(worker["command"]) == ["memcubed", "worker"]


@pytest.mark.parametrize("name", ["api", "worker"])
def test_the_command_is_a_memcubed_subcommand(compose: dict[str, Any], name: str) -> None:
    command = compose["services"][name].get("command")
    parts = command.split() if isinstance(command, str) else list(command)
    assert parts[0] == "memcubed", parts
    result = CliRunner().invoke(cli, [parts[1], "--help"])
    assert result.exit_code == 0, f"`memcubed {parts[1]}` is not a command: {result.output}"


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    """Passwords and the admin key come from the env file (``${NAME:?…}``, so compose refuses to start without
    them); Redis requires its password."""
    env = env_of(compose["services"]["api"])
    assert env["MEMCUBED_ADMIN_KEY"].startswith("${MEMCUBED_ADMIN_KEY:?")
    assert env_of(compose["services"]["postgres"])["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    example = (COMPOSE.parent / "deploy" / "env.example").read_text()
    assert {line.split("=")[0] for line in example.splitlines() if "=" in line and not line.startswith("#")} == {
        "MEMCUBED_ADMIN_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"}


def test_the_image_does_not_run_as_root() -> None:
    lines = [ln.split() for ln in (COMPOSE.parent / "Dockerfile").read_text().splitlines() if ln.strip()]
    users = [ln[1] for ln in lines if ln[0] == "USER"]
    assert users == ["memcubed"]

"""The ``memcubed`` command: migrate, tenants create/list, keys create/revoke, against its own database."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.embedded import serve_in_thread
from tests.conftest import Databases, pg_sqlalchemy_url, sql

KEY = re.compile(r"API key \(shown once\): (mck_\S+)")


@pytest.fixture
def env(databases: Databases) -> dict[str, str]:
    return {"MEMCUBED_DATABASE_URL": pg_sqlalchemy_url(databases.create()), "COLUMNS": "200"}


def run(env: dict[str, str], data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_tenants_keys_and_a_working_key(env: dict[str, str], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    out = run(env, data_dir, "migrate")
    assert "latest migration" in out
    assert sql(env["MEMCUBED_DATABASE_URL"], "SELECT count(*) FROM tenants") == [(0,)]

    out = run(env, data_dir, "tenants", "create", "acme")
    match = re.search(r"tenant acme id=([0-9a-f-]{36})", out)
    assert match, out
    tenant_id = match.group(1)
    key_match = KEY.search(out)
    assert key_match, out
    tenant_key = key_match.group(1)

    out = run(env, data_dir, "tenants", "list")
    assert "acme" in out
    assert tenant_id in out

    # A duplicate name fails without writing.
    result = CliRunner().invoke(cli, ["tenants", "create", "acme", "--data-dir", str(data_dir)], env=env)
    assert result.exit_code != 0
    assert sql(env["MEMCUBED_DATABASE_URL"], "SELECT count(*) FROM tenants") == [(1,)]

    out = run(env, data_dir, "keys", "create", "acme")
    key_id_match = re.search(r"key id=([0-9a-f-]{36})", out)
    second_match = KEY.search(out)
    assert key_id_match and second_match, out
    second_key, second_key_id = second_match.group(1), key_id_match.group(1)
    out = run(env, data_dir, "keys", "create", tenant_id)  # by id as well as by name
    assert KEY.search(out)

    out = run(env, data_dir, "keys", "revoke", second_key_id)
    assert f"revoked {second_key_id}" in out

    settings = Settings(database_url=env["MEMCUBED_DATABASE_URL"], data_dir=data_dir,
                        admin_key="mck_cli_test_admin_" + uuid.uuid4().hex)
    with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/cubes", json={"name": "from-cli"}, headers={"Authorization": f"Bearer {tenant_key}"})
        assert r.status_code == 201, r.text
        assert r.json()["tenant_id"] == tenant_id
        r = http.get("/v1/cubes", headers={"Authorization": f"Bearer {second_key}"})
        assert r.status_code == 401
        r = http.get("/v1/tenants", headers={"Authorization": f"Bearer {settings.admin_key}"})
        assert [t["name"] for t in r.json()["tenants"]] == ["acme"]


def test_keys_create_shares_one_cube_read_only(env: dict[str, str], tmp_path: Path) -> None:
    tenant_key = KEY.search(run(env, tmp_path, "tenants", "create", "acme"))
    assert tenant_key, "no tenant key printed"
    settings = Settings(database_url=env["MEMCUBED_DATABASE_URL"], data_dir=tmp_path)
    with serve_in_thread(settings) as url, httpx.Client(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {tenant_key.group(1)}"}) as http:
        shared, private = (http.post("/v1/cubes", json={"name": n}).json()["id"] for n in ("shared", "private"))
        out = run(env, tmp_path, "keys", "create", "acme", "--cube", shared, "--permission", "read")
        assert f"permission=read cubes: {shared}" in out
        key = KEY.search(out)
        assert key, out
        reader = {"Authorization": f"Bearer {key.group(1)}"}
        assert [c["id"] for c in http.get("/v1/cubes", headers=reader).json()["cubes"]] == [shared]
        r = http.post(f"/v1/cubes/{shared}/memories", json={"memories": [{"content": "x"}]}, headers=reader)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "permission_denied")
        assert http.get(f"/v1/cubes/{private}", headers=reader).status_code == 404
    bad = CliRunner().invoke(cli, ["keys", "create", "acme", "--permission", "owner", "--data-dir", str(tmp_path)],
                             env=env)
    assert bad.exit_code == 2 and "owner" in bad.output


def test_keys_create_for_an_unknown_tenant_fails(env: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "nobody", "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code != 0
    assert "no tenant 'nobody'" in result.output


def test_first_start_creates_an_admin_key_in_the_data_dir(env: dict[str, str], tmp_path: Path) -> None:
    run(env, tmp_path, "tenants", "list")
    key_file = tmp_path / "admin_key"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o777 == 0o600
    admin_key = key_file.read_text().strip()
    assert admin_key.startswith("mck_")
    settings = Settings(database_url=env["MEMCUBED_DATABASE_URL"], data_dir=tmp_path)
    with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        r = http.get("/v1/tenants", headers={"Authorization": f"Bearer {admin_key}"})
        assert r.status_code == 200
        assert r.json() == {"tenants": []}
    # The same key is kept across starts.
    assert key_file.read_text().strip() == admin_key

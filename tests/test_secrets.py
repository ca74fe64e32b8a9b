"""Secrets: no raw API key at rest (an idempotent replay withholds it), idempotency records expire, a new
MEMCUBED_ADMIN_KEY revokes the previous one, and credentials are redacted from responses, job errors and logs."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from pathlib import Path

import httpx
import pytest
from psycopg import sql as pgsql

from app.db import make_engine, make_sessions, resolve_database_url
from app.embedded import serve_in_thread
from app.errors import ConfigurationError
from app.redact import install_log_redaction, redact, redact_json
from app.services.auth import AuthService
from app.services.base import Transactor
from tests.conftest import Databases, LiveServer, TenantCtx, assert_error, make_cube, make_settings, sql
from tests.evals.fake_llm import fake_llm_server
from tests.workers.helpers import consolidate, wait_job

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY")


def idem() -> dict[str, str]:
    return {"Idempotency-Key": f"idem-{uuid.uuid4()}"}


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def columns_holding(database_url: str, needle: str) -> list[str]:
    """Every text, JSON, array and bytea column of every table that holds ``needle`` somewhere."""
    found = []
    cols = sql(database_url, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema = 'public' AND data_type = ANY(%s)", (list(TEXT_TYPES),))
    assert len(cols) > 50, cols  # the scan reads the whole schema, not a few columns
    for table, column, kind in cols:
        where = "position(%s::bytea in {c}) > 0" if kind == "bytea" else "strpos({c}::text, %s) > 0"
        query = pgsql.SQL("SELECT count(*) FROM {t} WHERE " + where).format(
            t=pgsql.Identifier(table), c=pgsql.Identifier(column))
        [(n,)] = sql(database_url, query.as_string(), (needle.encode() if kind == "bytea" else needle,))
        if n:
            found.append(f"{table}.{column}")
    return found


def test_no_raw_api_key_is_stored_after_every_key_creating_route(live_server: LiveServer, admin: httpx.Client,
                                                                 tenant: TenantCtx, cube: str) -> None:
    db = live_server.settings.database_url or ""
    calls = [
        (admin, "/v1/tenants", {"name": f"secret-{uuid.uuid4().hex[:8]}"}),
        (admin, f"/v1/tenants/{tenant.id}/keys", {"name": "by the operator"}),
        (tenant.http, f"/v1/tenants/{tenant.id}/keys", {"name": "shared", "cube_ids": [cube], "permission": "read"}),
    ]
    raw_keys = []
    for http, path, body in calls:
        headers = idem()
        first = http.post(path, json=body, headers=headers)
        assert first.status_code == 201, first.text
        shown = first.json()
        assert shown["api_key"].startswith("mck_") and shown["api_key_withheld"] is False
        raw_keys.append(shown["api_key"])
        replay = http.post(path, json=body, headers=headers)
        assert replay.status_code == 201, replay.text
        assert replay.json() == {**shown, "api_key": None, "api_key_withheld": True}
        with live_server.client(shown["api_key"]) as new:  # the key shown once works
            assert new.get("/v1/cubes").status_code == 200
    for raw in [*raw_keys, tenant.key, live_server.admin_key]:
        assert columns_holding(db, raw) == [], "a raw API key is stored"
    # The response schema says why the key can be missing.
    schema = admin.get("/openapi.json").json()["components"]["schemas"]
    for name in ("TenantCreated", "KeyCreated"):
        assert "shown only in the first response" in schema[name]["properties"]["api_key"]["description"]
        assert "idempotent replay" in schema[name]["properties"]["api_key_withheld"]["description"]


def test_idempotency_records_expire_and_are_purged(live_server: LiveServer, admin: httpx.Client,
                                                   tenant: TenantCtx) -> None:
    db = live_server.settings.database_url or ""
    headers = idem()
    first = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "old"}, headers=headers).json()
    ttl = live_server.settings.idempotency_ttl_hours
    assert ttl == 24
    sql(db, "UPDATE idempotency_records SET created_at = now() - %s * interval '1 hour' WHERE idem_key = %s",
        (ttl + 1, headers["Idempotency-Key"]))
    # Expired: the same key is a new request (a new key, shown), and the old record is gone.
    again = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "old"}, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first["id"] and again.json()["api_key"].startswith("mck_")
    assert sql(db, "SELECT count(*) FROM idempotency_records WHERE created_at < now() - %s * interval '1 hour'",
               (ttl,)) == [(0,)]
    assert sql(db, "SELECT count(*) FROM idempotency_records WHERE idem_key = %s",
               (headers["Idempotency-Key"],)) == [(1,)]


def test_a_new_admin_key_revokes_the_previous_one(databases: Databases, tmp_path: Path) -> None:
    """Two starts on one database: the second with a rotated MEMCUBED_ADMIN_KEY."""
    first = make_settings(databases, tmp_path / "first")
    with serve_in_thread(first) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/v1/tenants", headers=bearer(first.admin_key)).status_code == 200
    rotated = "mck_rotated_" + secrets.token_hex(16)
    second = first.model_copy(update={"admin_key": rotated, "data_dir": tmp_path / "second"})
    with serve_in_thread(second) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/v1/tenants", headers=bearer(rotated)).status_code == 200
        assert_error(http.get("/v1/tenants", headers=bearer(first.admin_key)), 401, "unauthenticated")
    db = first.database_url or ""
    assert sql(db, "SELECT prefix, revoked_at IS NOT NULL FROM api_keys WHERE scope = 'admin' ORDER BY created_at") == [
        (str(first.admin_key)[:12], True), (rotated[:12], False)]
    assert sql(db, "SELECT details FROM audit_log WHERE action = 'key.revoke'") == [({"reason": "admin key rotated"},)]
    # A rotated-out key is not brought back by configuring it again: that is refused at start.
    engine = make_engine(resolve_database_url(first))
    try:
        sessions = make_sessions(engine)
        with pytest.raises(ConfigurationError, match="revoked admin key"):
            AuthService(sessions, Transactor(sessions)).rotate_admin_key(str(first.admin_key))
    finally:
        engine.dispose()


# -- redaction ------------------------------------------------------------------------------------------------

def test_redact_masks_url_credentials_and_tokens() -> None:
    assert redact("POST http://bob:s3cret@llm.local:8080/v1/chat/completions failed") == (
        "POST http://***@llm.local:8080/v1/chat/completions failed")
    assert redact("redis://:pw@redis:6379/0 and postgresql+psycopg://app:pw@db/app") == (
        "redis://***@redis:6379/0 and postgresql+psycopg://***@db/app")
    assert redact("Authorization: Bearer abc.def-ghi, then mck_AbC-123_x") == "Authorization: Bearer ***, then mck_***"
    assert redact("http://llm.local/v1 has no credentials") == "http://llm.local/v1 has no credentials"
    assert redact_json({"a": ["redis://u:p@h"], "n": 1}) == {"a": ["redis://***@h"], "n": 1}
    started = time.perf_counter()
    redact("a://b:" * 200_000)
    assert time.perf_counter() - started < 0.5  # linear on a hostile string


def test_a_job_error_as_stored_is_redacted() -> None:
    """The text the job runner stores for a failed try (``{type}: {exception}``) of a real httpx error."""
    request = httpx.Request("POST", "http://bob:s3cret@llm.local/v1/chat/completions")
    with pytest.raises(httpx.HTTPStatusError) as failed:
        httpx.Response(500, request=request).raise_for_status()
    stored = redact(f"{type(failed.value).__name__}: {failed.value}")
    assert "s3cret" not in stored and "http://***@llm.local/v1/chat/completions" in stored


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    log = logging.getLogger("memcubed.test")
    with caplog.at_level(logging.WARNING):
        log.warning("cannot reach %s", "redis://:hunter2@redis:6379/0")
        try:
            raise ValueError("bad url http://bob:s3cret@llm.local/v1")
        except ValueError:
            log.exception("failed with mck_%s", "abcdef")
    assert [r.getMessage() for r in caplog.records] == ["cannot reach redis://***@redis:6379/0", "failed with mck_***"]
    assert "s3cret" not in caplog.text and "http://***@llm.local/v1" in caplog.text


def test_llm_credentials_stay_out_of_responses_and_logs(databases: Databases, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """An LLM base URL with a password, on an LLM that fails: the 503 and the log lines show no password."""
    with fake_llm_server() as fake:
        fake.fail_first = [500] * 20
        llm_url = fake.url.replace("http://", "http://memcubed:llm-s3cret@")
        settings = make_settings(databases, tmp_path, llm_base_url=llm_url, llm_api_key="sk-llm-s3cret",
                                 summary_min_turns=2)
        with caplog.at_level(logging.WARNING), serve_in_thread(settings) as url, \
                httpx.Client(base_url=url, timeout=120, headers=bearer(settings.admin_key)) as admin:
            body = admin.post("/v1/tenants", json={"name": "llm"}).json()
            with httpx.Client(base_url=url, timeout=120, headers=bearer(body["api_key"])) as http:
                t = TenantCtx(id=body["id"], key=body["api_key"], http=http)
                cube = make_cube(t)
                r = http.post(f"/v1/cubes/{cube}/memories", json={"memories": [
                    {"content": "Alice's puppy is called Rex", "session_id": "s1"},
                    {"content": "Alice walks Rex every morning", "session_id": "s1"}]})
                assert r.status_code == 201, r.text
                r = http.post("/v1/answer", json={"query": "What is the name of Alice's puppy?", "cube_ids": [cube],
                                                  "budget": "mid", "use_cache": False})
                err = assert_error(r, 503, "not_ready")
                assert "llm-s3cret" not in r.text and "http://***@127.0.0.1" in err["message"]
                job = wait_job(http, consolidate(t, cube)["id"])  # its LLM summary fails and is logged
                assert job["status"] == "done", job
    assert any("LLM summary of session s1 failed" in rec.getMessage() for rec in caplog.records)
    assert "http://***@127.0.0.1" in caplog.text and "s3cret" not in caplog.text

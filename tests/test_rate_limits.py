"""Request rates per API key and per tenant: the request over a limit gets a 429 with ``Retry-After`` and the error
envelope, other tenants and admin keys are not limited, two API processes on one Redis share one budget, Redis
down falls back to counting in the process, and every refusal (429 and 413) is counted in ``/metrics``.

Limits are per minute here, so that a slow machine cannot spread a burst over two windows."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import memcubed
import pytest

from app.embedded import serve_in_thread
from tests.conftest import Databases, LiveServer, TenantCtx, make_cube, make_settings, new_tenant
from tests.test_observability import sample, scrape
from tests.test_redis_down import closed_port

KEY_LIMIT = "5/minute"
TENANT_LIMIT = "8/minute"


@pytest.fixture(scope="module")
def limited(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(databases, tmp_path_factory.mktemp("limited"), rate_limit_key=KEY_LIMIT,
                             rate_limit_tenant=TENANT_LIMIT, max_body_bytes=4096, max_memory_bytes=100)
    with serve_in_thread(settings) as url:
        assert settings.admin_key is not None
        yield LiveServer(url=url, admin_key=settings.admin_key, settings=settings)


@pytest.fixture
def admin_of(limited: LiveServer) -> Iterator[httpx.Client]:
    with limited.client(limited.admin_key) as client:
        yield client


def refusals(http: httpx.Client, kind: str) -> float:
    return sample(scrape(http), "memcubed_refusals_total", kind=kind)


def statuses(http: httpx.Client, n: int) -> list[int]:
    return [http.get("/v1/whoami").status_code for _ in range(n)]


def assert_rate_limited(r: httpx.Response, limit: str, scope: str, window: int = 60) -> None:
    assert r.status_code == 429, r.text
    assert r.json() == {"error": {"code": "rate_limited", "message": r.json()["error"]["message"],
                                  "details": {"limit": limit, "scope": scope}}}
    assert r.json()["error"]["message"].startswith(f"over the {scope}'s rate limit of {limit}; retry in ")
    # A moving window: the oldest counted request leaves it a window after it was made, a few seconds ago.
    assert window - 10 <= int(r.headers["Retry-After"]) <= window


def test_the_request_over_a_keys_limit_is_refused_and_counted(limited: LiveServer, admin_of: httpx.Client) -> None:
    t = new_tenant(limited, admin_of)
    before = refusals(t.http, "rate_limit")
    assert statuses(t.http, 5) == [200] * 5
    refused = t.http.get("/v1/whoami")
    assert_rate_limited(refused, KEY_LIMIT, "key")
    assert t.http.get("/v1/cubes").status_code == 429  # every authenticated route counts
    # Another tenant's key is not affected; unauthenticated routes are never limited.
    other = new_tenant(limited, admin_of)
    assert statuses(other.http, 5) == [200] * 5
    assert [t.http.get(path).status_code for path in ("/healthz", "/readyz", "/metrics", "/console")] == [200] * 4
    assert refusals(t.http, "rate_limit") == before + 2


def test_a_body_over_the_rate_is_refused_before_it_is_read(limited: LiveServer, admin_of: httpx.Client) -> None:
    """The refusal comes before the body is parsed (a flood of big bodies costs no parsing): a key over its rate
    gets the 429 even for a body that is not JSON, which otherwise is a 422; a request within the rate is counted
    once."""
    t = new_tenant(limited, admin_of)
    cube = make_cube(t)  # request 1
    bad = {"content": b"{" * 2000, "headers": {"Content-Type": "application/json"}}
    first = t.http.post(f"/v1/cubes/{cube}/memories", **bad)  # type: ignore[arg-type]
    assert (first.status_code, first.json()["error"]["code"]) == (422, "validation_error"), first.text  # request 2
    assert statuses(t.http, 3) == [200] * 3  # requests 3 to 5: each request counted once
    assert_rate_limited(t.http.post(f"/v1/cubes/{cube}/memories", **bad), KEY_LIMIT, "key")  # type: ignore[arg-type]
    bogus = t.http.post(f"/v1/cubes/{cube}/memories", json={"memories": []},
                        headers={"Authorization": "Bearer mck_not_a_key"})
    assert (bogus.status_code, bogus.json()["error"]["code"]) == (401, "unauthenticated"), bogus.text


def test_keys_of_one_tenant_share_the_tenants_limit(limited: LiveServer, admin_of: httpx.Client) -> None:
    t = new_tenant(limited, admin_of)
    r = admin_of.post(f"/v1/tenants/{t.id}/keys", json={"name": "second"})
    assert r.status_code == 201, r.text
    with limited.client(r.json()["api_key"]) as second:
        assert statuses(t.http, 5) == [200] * 5
        assert statuses(second, 3) == [200] * 3
        assert_rate_limited(second.get("/v1/whoami"), TENANT_LIMIT, "tenant")
    assert_rate_limited(t.http.get("/v1/whoami"), KEY_LIMIT, "key")  # its own limit is checked first


def test_admin_keys_are_exempt(admin_of: httpx.Client) -> None:
    assert [admin_of.get("/v1/tenants").status_code for _ in range(20)] == [200] * 20


def test_payload_too_large_is_counted_from_the_middleware_and_the_services(
        limited: LiveServer, admin_of: httpx.Client) -> None:
    t = new_tenant(limited, admin_of)
    before = refusals(t.http, "payload_too_large")
    cube = make_cube(t)
    whole = t.http.post(f"/v1/cubes/{cube}/memories", content=b"x" * 5000,
                        headers={"Content-Type": "application/json"})
    assert whole.status_code == 413 and whole.json()["error"]["details"] == {"limit": 4096}, whole.text
    content = t.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "y" * 101}]})
    assert content.status_code == 413 and content.json()["error"]["code"] == "payload_too_large", content.text
    assert refusals(t.http, "payload_too_large") == before + 2


def test_two_processes_on_one_redis_share_the_budget(databases: Databases, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:12]
    settings = make_settings(databases, tmp_path / "a", redis_url="redis://127.0.0.1:6379/0",
                             redis_queue=f"memcubed-test:{run}:jobs", rate_limit_prefix=f"memcubed-test:{run}:rl",
                             rate_limit_key="6/minute", rate_limit_tenant="100/minute")
    second = settings.model_copy(update={"data_dir": tmp_path / "b"})
    with serve_in_thread(settings) as url_a, serve_in_thread(second) as url_b:
        a = LiveServer(url=url_a, admin_key=settings.admin_key or "", settings=settings)
        b = LiveServer(url=url_b, admin_key=settings.admin_key or "", settings=second)
        with a.client(a.admin_key) as admin:
            t = new_tenant(a, admin)
        before = refusals(t.http, "rate_limit")
        with b.client(t.key) as on_b:
            got = [(t.http if i % 2 else on_b).get("/v1/whoami") for i in range(9)]
            assert [r.status_code for r in got] == [200] * 6 + [429] * 3
            assert_rate_limited(got[-1], "6/minute", "key")
            # Both processes are in this test's process: one counter, which rose by the 429s of both.
            assert refusals(on_b, "rate_limit") == before + 3
        t.http.close()


def test_redis_down_falls_back_to_counting_in_the_process(databases: Databases, tmp_path: Path) -> None:
    settings = make_settings(databases, tmp_path, redis_url=f"redis://127.0.0.1:{closed_port()}/0",
                             rate_limit_key="3/minute")
    with serve_in_thread(settings) as url:
        server = LiveServer(url=url, admin_key=settings.admin_key or "", settings=settings)
        with server.client(server.admin_key) as admin:
            t: TenantCtx = new_tenant(server, admin)
        assert statuses(t.http, 4) == [200] * 3 + [429]
        t.http.close()


def test_the_sdk_waits_out_a_429_and_succeeds(databases: Databases, tmp_path: Path) -> None:
    """With 2 requests a second, the third waits for its ``Retry-After`` of 1 s, after which both earlier requests
    have left the window: exactly one refusal, and every call succeeds."""
    settings = make_settings(databases, tmp_path, rate_limit_key="2/second")
    with serve_in_thread(settings) as url:
        server = LiveServer(url=url, admin_key=settings.admin_key or "", settings=settings)
        with server.client(server.admin_key) as admin:
            t = new_tenant(server, admin)
        before = refusals(t.http, "rate_limit")
        with memcubed.Client(url, api_key=t.key) as client:
            start = time.monotonic()
            assert {str(client.whoami().tenant_id) for _ in range(3)} == {t.id}
            assert time.monotonic() - start >= 1.0
        assert refusals(t.http, "rate_limit") == before + 1
        t.http.close()

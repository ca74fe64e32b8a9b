"""Fixtures for the SDK tests.

Two kinds: a scripted ``httpx.MockTransport`` (the network is replaced, the SDK code is not) for retry,
error and request-shape tests, and clients on the live server from ``tests/conftest.py`` (uvicorn over
real Postgres and the real embedder) for end-to-end tests of every method.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import memcubed
import pytest

from tests.sdk.sdk_helpers import NO_JITTER, LiveTenant, Recorder, SleepLog


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sleeps() -> SleepLog:
    return SleepLog()


@pytest.fixture
def mock_client(recorder: Recorder, sleeps: SleepLog) -> Iterator[memcubed.Client]:
    with memcubed.Client(
        "http://memcubed.test",
        api_key="mc_test",
        transport=httpx.MockTransport(recorder.handle),
        retry_policy=NO_JITTER,
        sleep=sleeps,
    ) as client:
        yield client


@pytest.fixture
async def mock_aclient(recorder: Recorder, sleeps: SleepLog) -> AsyncIterator[memcubed.AsyncClient]:
    async with memcubed.AsyncClient(
        "http://memcubed.test",
        api_key="mc_test",
        transport=httpx.MockTransport(recorder.ahandle),
        retry_policy=NO_JITTER,
        sleep=sleeps.asleep,
    ) as client:
        yield client


# --- live server ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sdk_admin(live_server: Any) -> Iterator[memcubed.Client]:
    """An admin-scope client on the live server."""
    with memcubed.Client(live_server.url, api_key=live_server.admin_key, max_retries=0) as client:
        yield client


@pytest.fixture
def live_tenant(live_server: Any, sdk_admin: memcubed.Client) -> LiveTenant:
    """A fresh tenant per test (through the SDK's admin surface), so tests never see each other's data."""
    created = sdk_admin.tenants.create(f"sdk-{uuid.uuid4().hex[:12]}")
    return LiveTenant(live_server.url, live_server.admin_key, created.id, created.api_key)


@pytest.fixture
def live_client(live_tenant: LiveTenant) -> Iterator[memcubed.Client]:
    with memcubed.Client(live_tenant.url, api_key=live_tenant.api_key) as client:
        yield client


@pytest.fixture
async def live_aclient(live_tenant: LiveTenant) -> AsyncIterator[memcubed.AsyncClient]:
    async with memcubed.AsyncClient(live_tenant.url, api_key=live_tenant.api_key) as client:
        yield client

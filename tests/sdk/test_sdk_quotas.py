"""Quotas and snapshot deletion through both clients against the live server."""

from __future__ import annotations

import httpx
import memcubed
import pytest

from tests.sdk.sdk_helpers import LiveTenant, Recorder


def test_quotas_and_snapshot_delete_through_the_sync_client(live_tenant: LiveTenant, live_client: memcubed.Client,
                                                            sdk_admin: memcubed.Client) -> None:
    client = live_client
    cube = client.cubes.create("kept")
    client.memories.add(cube.id, "The office is in Lyon")
    mine = client.tenants.quotas(live_tenant.tenant_id)
    assert mine.tenant_id == live_tenant.tenant_id
    assert [q.name for q in mine.quotas] == ["memories", "cubes", "snapshots", "adapter_bytes", "activation_bytes"]
    assert (mine["memories"].used, mine["cubes"].used, mine["snapshots"].used) == (1, 1, 0)
    assert mine["cubes"].limit == mine["cubes"].default and not mine["cubes"].overridden
    assert mine.request_limits["context_tokens"] == 32_768

    changed = sdk_admin.tenants.set_quotas(live_tenant.tenant_id, snapshots=1, cubes=None)
    assert (changed["snapshots"].limit, changed["snapshots"].overridden, changed["cubes"].overridden) == (1, True,
                                                                                                         False)
    with pytest.raises(memcubed.PermissionDeniedError):
        client.tenants.set_quotas(live_tenant.tenant_id, snapshots=100)

    first = client.snapshots.create(cube.id, label="first")
    with pytest.raises(memcubed.QuotaExceededError) as caught:
        client.snapshots.create(cube.id)
    assert (caught.value.status, caught.value.code) == (403, "quota_exceeded")
    assert caught.value.details == {"quota": "snapshots", "limit": 1, "used": 1, "requested": 1}
    assert isinstance(caught.value, memcubed.PermissionDeniedError)

    assert client.snapshots.delete(cube.id, first.id) is None
    assert client.snapshots.list(cube.id) == []
    with pytest.raises(memcubed.NotFoundError):
        client.snapshots.delete(cube.id, first.id)
    assert client.snapshots.create(cube.id).id != first.id


async def test_quotas_and_snapshot_delete_through_the_async_client(live_tenant: LiveTenant,
                                                                   live_aclient: memcubed.AsyncClient) -> None:
    client = live_aclient
    cube = await client.cubes.create("kept")
    snapshot = await client.snapshots.create(cube.id)
    assert (await client.tenants.quotas(live_tenant.tenant_id))["snapshots"].used == 1
    await client.snapshots.delete(cube.id, snapshot.id)
    assert (await client.tenants.quotas(live_tenant.tenant_id))["snapshots"].used == 0
    async with memcubed.AsyncClient(live_tenant.url, api_key=live_tenant.admin_key) as admin:
        lowered = await admin.tenants.set_quotas(live_tenant.tenant_id, cubes=1)
    assert lowered["cubes"].limit == 1
    with pytest.raises(memcubed.QuotaExceededError) as caught:
        await client.cubes.create("second")
    assert caught.value.details == {"quota": "cubes", "limit": 1, "used": 1, "requested": 1}


def test_a_403_is_a_quota_error_only_when_its_code_says_so(mock_client: memcubed.Client, recorder: Recorder) -> None:
    quota = {"error": {"code": "quota_exceeded", "message": "the tenant's cubes quota is 1: 1 used, 1 more requested",
                       "details": {"quota": "cubes", "limit": 1, "used": 1, "requested": 1}}}
    denied = {"error": {"code": "permission_denied", "message": "this route needs an admin API key", "details": {}}}
    recorder.script = [httpx.Response(403, json=quota), httpx.Response(403, json=denied)]
    with pytest.raises(memcubed.QuotaExceededError) as caught:
        mock_client.cubes.create("c")
    assert (caught.value.message, caught.value.details["limit"]) == (quota["error"]["message"], 1)
    with pytest.raises(memcubed.PermissionDeniedError) as refused:
        mock_client.tenants.set_quotas("t", cubes=1)
    assert type(refused.value) is memcubed.PermissionDeniedError
    assert recorder.calls == 2  # neither is retried
    assert recorder.json() == {"cubes": 1}

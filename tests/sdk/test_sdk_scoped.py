"""Scoped keys, the cube's forget policy and forget requests through both clients against the live server."""

from __future__ import annotations

import memcubed
import pytest

from tests.sdk.sdk_helpers import LiveTenant


def test_share_a_cube_read_only_and_forget_through_the_sync_client(live_tenant: LiveTenant,
                                                                   live_client: memcubed.Client) -> None:
    client = live_client
    shared, private = client.cubes.create("shared"), client.cubes.create("private")
    address = client.memories.add(shared.id, "My home address is 42 Elm Street")
    key = client.keys.create(live_tenant.tenant_id, "reader", cube_ids=[shared.id], permission="read")
    assert (key.cube_ids, key.permission, key.tenant_id) == ([shared.id], "read", live_tenant.tenant_id)
    with memcubed.Client(live_tenant.url, api_key=key.api_key) as reader:
        assert [c.id for c in reader.cubes.list()] == [shared.id]
        assert reader.memories.get(address.id).content == "My home address is 42 Elm Street"
        with pytest.raises(memcubed.PermissionDeniedError):
            reader.memories.add(shared.id, "A note")
        with pytest.raises(memcubed.NotFoundError):
            reader.cubes.get(private.id)
        with pytest.raises(memcubed.NotFoundError):
            reader.search("address", [shared.id, private.id])

    result = client.messages.add_detailed(shared.id, "s1", [{"role": "user", "content": "Please forget my address."}])
    assert (result.forgotten, [m.content for m in result.memories]) == ([address.id], ["[forget request: address]"])
    assert result.forget_request_id is not None
    listed = client.forget_requests.list(shared.id)
    assert [(r.id, r.subject, r.status, r.memory_ids) for r in listed] == [
        (result.forget_request_id, "address", "applied", [address.id])]
    assert client.memories.get(address.id).status == "archived"
    reverted = client.forget_requests.revert(result.forget_request_id)
    assert (reverted.status, client.memories.get(address.id).status) == ("reverted", "active")
    with pytest.raises(memcubed.ConflictError):
        client.forget_requests.revert(result.forget_request_id)


async def test_purge_policy_and_scoped_keys_through_the_async_client(live_tenant: LiveTenant,
                                                                     live_aclient: memcubed.AsyncClient) -> None:
    client = live_aclient
    cube = await client.cubes.create("purging")
    assert cube.forget_policy == "archive"
    phone = await client.memories.add(cube.id, "My phone number is 555-0134")
    writer = await client.keys.create(live_tenant.tenant_id, cube_ids=[cube.id], permission="write")
    async with memcubed.AsyncClient(live_tenant.url, api_key=writer.api_key) as w:
        with pytest.raises(memcubed.PermissionDeniedError):
            await w.cubes.update(cube.id, forget_policy="purge")
    assert (await client.cubes.update(cube.id, forget_policy="purge")).forget_policy == "purge"
    async with memcubed.AsyncClient(live_tenant.url, api_key=writer.api_key) as w:
        result = await w.messages.add_detailed(cube.id, "s1", [{"role": "user", "content": "Erase my phone number."}])
        assert result.forgotten == [phone.id]
        [request] = await w.forget_requests.list(cube.id)
        assert (request.status, request.policy, request.detector) == ("purged", "purge", "rules")
        with pytest.raises(memcubed.ConflictError):
            await w.forget_requests.revert(request.id)
    with pytest.raises(memcubed.NotFoundError):
        await client.memories.get(phone.id)

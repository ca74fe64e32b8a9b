"""``read_your_writes=True``: the client sends the last change number it wrote with every request, so any API
process behind a load balancer answers as if it had taken the write (the server side: tests/test_replicas.py)."""

from __future__ import annotations

import httpx
import memcubed

from tests.sdk.sdk_helpers import LiveTenant


class Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.path, request.headers.get("X-Memcubed-Min-Seq")))
        return super().handle_request(request)


def test_writes_raise_last_seq_and_later_requests_name_it(live_tenant: LiveTenant) -> None:
    transport = Recording()
    with memcubed.Client(live_tenant.url, api_key=live_tenant.api_key, read_your_writes=True,
                         transport=transport) as client:
        assert client.last_seq == 0
        cube = client.cubes.create("ryw")
        assert client.last_seq == 0  # creating a cube changes no index
        memory = client.memories.add(cube.id, "The spare tyre is under the boot floor")
        first = client.last_seq
        assert first > 0
        found = client.search("where is the spare tyre?", [cube.id], top_k=1)
        assert found.results[0].memory.id == memory.id
        client.memories.delete(memory.id)
        assert client.last_seq > first
    assert transport.sent[0] == ("/v1/cubes", None)
    assert transport.sent[2:] == [("/v1/search", str(first)), (f"/v1/memories/{memory.id}", str(first))]


def test_without_the_option_no_min_seq_is_sent(live_tenant: LiveTenant) -> None:
    transport = Recording()
    with memcubed.Client(live_tenant.url, api_key=live_tenant.api_key, transport=transport) as client:
        cube = client.cubes.create("plain")
        client.memories.add(cube.id, "The gate code is 4471")
        client.search("gate code", [cube.id])
        assert client.last_seq > 0  # still tracked: a caller may pass it on by hand
    assert {seq for _, seq in transport.sent} == {None}

"""Retries: which failures are retried, how often, how long the SDK waits, and that a retried POST carries
the same Idempotency-Key on every try (so the server applies the write once)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import memcubed
import pytest
from memcubed._retry import RetryPolicy, is_retryable_request, parse_retry_after

from tests.sdk.sdk_helpers import CUBE_ID, MEMORY_ID, NO_JITTER, Recorder, SleepLog


def _error(status: int, headers: dict[str, str] | None = None, code: str = "busy") -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": {"code": code, "message": f"status {status}", "details": {"n": status}}},
        headers={"X-Request-ID": f"rid-{status}", **(headers or {})},
    )


def _connect_error() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


# --- sync ---------------------------------------------------------------------------------------------


def test_post_retried_after_connection_error_and_503_with_one_idempotency_key(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [_connect_error(), _error(503)]
    memory = mock_client.memories.add(CUBE_ID, "hello")
    assert memory.id == MEMORY_ID
    assert recorder.calls == 3
    keys = [r.headers.get("Idempotency-Key") for r in recorder.requests]
    assert keys[0] is not None and len(keys[0]) == 36
    assert keys == [keys[0]] * 3
    # Every try sent the same body.
    assert recorder.bodies == [recorder.bodies[0]] * 3
    assert recorder.json(0) == {"memories": [{"content": "hello"}]}
    # rng() == 0: half of 0.5 * 2**attempt.
    assert sleeps.delays == [0.25, 0.5]


def test_separate_calls_get_fresh_idempotency_keys(mock_client: memcubed.Client, recorder: Recorder) -> None:
    mock_client.memories.add(CUBE_ID, "a")
    mock_client.memories.add(CUBE_ID, "a")
    first, second = (r.headers["Idempotency-Key"] for r in recorder.requests)
    assert first != second


def test_caller_idempotency_key_is_sent_as_given(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [_error(502)]
    mock_client.messages.add(CUBE_ID, "s1", [{"role": "user", "content": "hi"}], idempotency_key="turn-7")
    assert [r.headers["Idempotency-Key"] for r in recorder.requests] == ["turn-7", "turn-7"]


def test_get_requests_carry_no_idempotency_key(mock_client: memcubed.Client, recorder: Recorder) -> None:
    mock_client.cubes.get(CUBE_ID)
    assert "Idempotency-Key" not in recorder.requests[0].headers


def test_429_honours_retry_after_seconds(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [_error(429, {"Retry-After": "3"}, code="rate_limited")]
    cube = mock_client.cubes.get(CUBE_ID)
    assert cube.id == CUBE_ID
    assert recorder.calls == 2
    assert sleeps.delays == [3.0]


def test_retry_after_above_the_cap_falls_back_to_backoff(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [_error(429, {"Retry-After": "3600"})]
    mock_client.cubes.get(CUBE_ID)
    assert sleeps.delays == [0.25]


def test_exhausted_retries_raise_the_last_error_with_its_envelope(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [_error(503), _error(503), _error(504)]
    with pytest.raises(memcubed.ServerError) as caught:
        mock_client.memories.get(MEMORY_ID)
    err = caught.value
    assert recorder.calls == 3
    assert sleeps.delays == [0.25, 0.5]
    assert (err.status, err.code, err.message, err.details, err.request_id) == (
        504,
        "busy",
        "status 504",
        {"n": 504},
        "rid-504",
    )


def test_exhausted_rate_limit_raises_rate_limit_error_with_retry_after(
    mock_client: memcubed.Client, recorder: Recorder
) -> None:
    recorder.script = [_error(429, {"Retry-After": "1"})] * 3
    with pytest.raises(memcubed.RateLimitError) as caught:
        mock_client.cubes.list()
    assert caught.value.retry_after == 1.0
    assert recorder.calls == 3


def test_connection_errors_exhausted_raise_api_connection_error(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [_connect_error()] * 3
    with pytest.raises(memcubed.APIConnectionError) as caught:
        mock_client.cubes.list()
    assert not isinstance(caught.value, memcubed.APITimeoutError)
    assert caught.value.status is None
    assert recorder.calls == 3
    assert len(sleeps.delays) == 2


def test_timeouts_raise_api_timeout_error(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [httpx.ReadTimeout("slow")] * 3
    with pytest.raises(memcubed.APITimeoutError):
        mock_client.search("q", [CUBE_ID])
    assert recorder.calls == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 500])
def test_other_errors_are_not_retried(
    mock_client: memcubed.Client, recorder: Recorder, sleeps: SleepLog, status: int
) -> None:
    recorder.script = [_error(status)]
    with pytest.raises(memcubed.MemcubedError):
        mock_client.memories.update(MEMORY_ID, content="x")
    assert recorder.calls == 1
    assert sleeps.delays == []


def test_patch_and_delete_are_retried(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [_error(502), _error(503)]
    assert mock_client.memories.update(MEMORY_ID, content="new").version == 2
    recorder.script = [_connect_error()]
    assert mock_client.memories.delete(MEMORY_ID).status == "deleted"
    assert [r.method for r in recorder.requests] == ["PATCH", "PATCH", "PATCH", "DELETE", "DELETE"]


def test_post_without_idempotency_key_is_never_retried(recorder: Recorder, sleeps: SleepLog) -> None:
    recorder.script = [_error(503)]
    with memcubed.Client(
        "http://memcubed.test",
        transport=httpx.MockTransport(recorder.handle),
        idempotency_keys=False,
        retry_policy=NO_JITTER,
        sleep=sleeps,
    ) as client:
        with pytest.raises(memcubed.ServerError):
            client.memories.add(CUBE_ID, "once")
        assert recorder.calls == 1
        assert "Idempotency-Key" not in recorder.requests[0].headers
        # An explicit key still makes that one call safe to retry.
        recorder.script = [_error(503)]
        client.memories.add(CUBE_ID, "once", idempotency_key="k1")
        assert recorder.calls == 3


def test_max_retries_zero_sends_once(recorder: Recorder, sleeps: SleepLog) -> None:
    recorder.script = [_error(503)]
    with memcubed.Client(
        "http://memcubed.test", transport=httpx.MockTransport(recorder.handle), max_retries=0, sleep=sleeps
    ) as client:
        assert client.max_retries == 0
        with pytest.raises(memcubed.ServerError):
            client.health()
    assert recorder.calls == 1


def test_ready_is_not_retried(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [httpx.Response(503, json={"status": "not_ready", "checks": {"database": False}})]
    with pytest.raises(memcubed.ServerError) as caught:
        mock_client.ready()
    assert recorder.calls == 1
    assert caught.value.details == {"status": "not_ready", "checks": {"database": False}}


def test_import_from_a_seekable_file_resends_the_whole_body(
    mock_client: memcubed.Client, recorder: Recorder
) -> None:
    data = b'{"x": 1}\n' * 10_000  # several chunks
    fh = io.BytesIO(b"skipped" + data)
    fh.seek(len(b"skipped"))
    recorder.script = [_error(503)]
    result = mock_client.cubes.import_(CUBE_ID, fh)
    assert result.imported == 2
    assert recorder.bodies == [data, data]
    assert [r.headers["Content-Length"] for r in recorder.requests] == [str(len(data))] * 2
    assert recorder.requests[0].headers["Content-Type"] == "application/x-ndjson"
    assert recorder.requests[0].headers["Idempotency-Key"] == recorder.requests[1].headers["Idempotency-Key"]


def test_import_from_a_pipe_like_file_is_not_retried(
    mock_client: memcubed.Client, recorder: Recorder
) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def read(self, size: int = -1) -> bytes:
            return self._buf.read(size)

    recorder.script = [_error(503)]
    with pytest.raises(memcubed.ServerError):
        mock_client.cubes.import_(CUBE_ID, Pipe(b'{"x": 1}\n'))
    assert recorder.calls == 1
    assert "Content-Length" not in recorder.requests[0].headers
    assert recorder.bodies == [b'{"x": 1}\n']


def test_export_retried_before_the_body_starts(mock_client: memcubed.Client, recorder: Recorder) -> None:
    recorder.script = [_error(503)]
    out = io.BytesIO()
    assert mock_client.cubes.export(CUBE_ID, out) == 16
    assert out.getvalue() == b'{"a":1}\n{"b":2}\n'
    assert recorder.calls == 2


# --- async --------------------------------------------------------------------------------------------


async def test_async_post_retried_with_one_idempotency_key(
    mock_aclient: memcubed.AsyncClient, recorder: Recorder, sleeps: SleepLog
) -> None:
    recorder.script = [_connect_error(), _error(429, {"Retry-After": "2"}), _error(504)]
    with pytest.raises(memcubed.ServerError):
        await mock_aclient.memories.add_many(CUBE_ID, [{"content": "a"}, memcubed.MemoryIn(content="b")])
    assert recorder.calls == 3
    assert sleeps.delays == [0.25, 2.0]
    keys = {r.headers["Idempotency-Key"] for r in recorder.requests}
    assert len(keys) == 1
    assert recorder.json(0) == {"memories": [{"content": "a"}, {"content": "b"}]}


async def test_async_retry_succeeds(mock_aclient: memcubed.AsyncClient, recorder: Recorder) -> None:
    recorder.script = [_error(502)]
    response = await mock_aclient.search("seats", CUBE_ID)
    assert recorder.calls == 2
    assert response.results[0].score == 0.83


async def test_async_timeout(mock_aclient: memcubed.AsyncClient, recorder: Recorder) -> None:
    recorder.script = [httpx.ConnectTimeout("slow")] * 3
    with pytest.raises(memcubed.APITimeoutError):
        await mock_aclient.cubes.get(CUBE_ID)
    assert recorder.calls == 3


async def test_async_import_retry_resends_file(
    mock_aclient: memcubed.AsyncClient, recorder: Recorder, tmp_path: object
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "cube.jsonl"
    data = b'{"y": 2}\n' * 20_000
    path.write_bytes(data)
    recorder.script = [_connect_error()]
    result = await mock_aclient.cubes.import_(CUBE_ID, path)
    assert result.id_map == {"a": "b"}
    assert recorder.bodies == [data, data]


# --- policy -------------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_caps_and_jitters_within_the_upper_half() -> None:
    low = RetryPolicy(initial_delay=0.5, max_delay=4.0, rng=lambda: 0.0)
    high = RetryPolicy(initial_delay=0.5, max_delay=4.0, rng=lambda: 1.0)
    assert [low.backoff(n) for n in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert [high.backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert low.backoff(0, retry_after=7.0) == 7.0
    assert low.backoff(0, retry_after=61.0) == 0.25


def test_retryable_requests() -> None:
    assert is_retryable_request("GET", {})
    assert is_retryable_request("patch", {})
    assert is_retryable_request("DELETE", {})
    assert not is_retryable_request("POST", {})
    assert is_retryable_request("POST", {"idempotency-key": "k"})


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after("soon") is None
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=lambda: now) == 30.0
    earlier = (now - timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(earlier, now=lambda: now) == 0.0


def test_streamed_error_whose_body_is_lost_still_raises_the_status_error(
    mock_client: memcubed.Client, recorder: Recorder
) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            raise httpx.ReadError("reset")
            yield b""

    recorder.script = [httpx.Response(404, stream=Broken(), headers={"X-Request-ID": "r1"})]
    with pytest.raises(memcubed.NotFoundError) as caught:
        mock_client.cubes.export(CUBE_ID, io.BytesIO())
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (404, "http_404", "r1")
    assert recorder.calls == 1

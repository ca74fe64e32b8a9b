"""Activation tests run the real SmolLM2-135M on the CPU.

The converted model is kept in one directory for every server these tests start (and across runs), so the
~30 s GGUF conversion happens once per machine, not once per data dir. One torch thread: on a small shared
machine, more threads mostly wait on each other.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.activation.model import HFCausalLM, ModelSpec, load_model
from app.config import Settings
from app.embedded import serve_in_thread
from tests.conftest import TenantCtx

MODELS_DIR = Path(
    os.environ.get("MEMCUBED_TEST_MODELS_DIR", Path(tempfile.gettempdir()) / "memcubed-test-models")
)
os.environ.setdefault("MEMCUBED_ACTIVATION_MODELS_DIR", str(MODELS_DIR))
os.environ.setdefault("MEMCUBED_ACTIVATION_TORCH_THREADS", "1")

CONTEXT = (
    "You are a helpful assistant. Here is what you remember, one memory per line:\n"
    "- Alice is allergic to peanuts.\n- Alice moved to Berlin in 2021.\n- The weekly sync is on Tuesdays."
)


@pytest.fixture(scope="session")
def lm() -> HFCausalLM:
    """The model itself, for tests below the HTTP layer."""
    return load_model(ModelSpec(name="smollm2-135m-instruct", models_dir=MODELS_DIR, threads=1))


@pytest.fixture(scope="session", autouse=True)
def _converted_model(lm: HFCausalLM) -> None:
    """Convert the GGUF (first run on a machine) before any server needs it within an HTTP timeout."""


@contextmanager
def server(settings: Settings) -> Iterator[httpx.Client]:
    """A memcubed server on ``settings``, with an admin client."""
    with (
        serve_in_thread(settings) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {settings.admin_key}"}, timeout=120
        ) as admin,
    ):
        yield admin


def tenant_on(admin: httpx.Client, name: str) -> TenantCtx:
    r = admin.post("/v1/tenants", json={"name": name})
    assert r.status_code == 201, r.text
    body = r.json()
    http = httpx.Client(
        base_url=str(admin.base_url), headers={"Authorization": f"Bearer {body['api_key']}"}, timeout=120
    )
    return TenantCtx(id=body["id"], key=body["api_key"], http=http)


def use_key(admin: httpx.Client, key: str) -> httpx.Client:
    return httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {key}"}, timeout=120)

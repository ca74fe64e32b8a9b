"""memcubed: Python SDK for the memcubed long-term memory service.

>>> from memcubed import Client
>>> with Client("http://127.0.0.1:8080", api_key="mc_...") as client:
...     cube = client.cubes.create("assistant")
...     client.memories.add(cube.id, "The user prefers window seats.")
...     hits = client.search("seat preference", [cube.id])
"""

from ._async_client import AsyncClient
from ._client import Client
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    MemcubedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from ._models import (
    Activation,
    ActivationStats,
    Cube,
    Edge,
    Entity,
    EntityList,
    GenerateResponse,
    GraphNode,
    GraphPage,
    ImportResult,
    KeyCreated,
    KeyRevoked,
    Memory,
    MemoryHistory,
    MemoryIn,
    MemoryLink,
    MemoryLinks,
    MemoryPage,
    MemoryVersion,
    Message,
    ModelInfo,
    SearchFilters,
    SearchHit,
    SearchResponse,
    Tenant,
    TenantCreated,
    TierStats,
)
from ._retry import RetryPolicy
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Activation",
    "ActivationStats",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "Cube",
    "Edge",
    "Entity",
    "EntityList",
    "GenerateResponse",
    "GraphNode",
    "GraphPage",
    "ImportResult",
    "KeyCreated",
    "KeyRevoked",
    "MemcubedError",
    "Memory",
    "MemoryHistory",
    "MemoryIn",
    "MemoryLink",
    "MemoryLinks",
    "MemoryPage",
    "MemoryVersion",
    "Message",
    "ModelInfo",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "SearchFilters",
    "SearchHit",
    "SearchResponse",
    "ServerError",
    "Tenant",
    "TenantCreated",
    "TierStats",
    "ValidationError",
    "__version__",
]

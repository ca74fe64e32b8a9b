"""What a JSON response costs: FastAPI's default (pydantic-core ``dump_json`` of the route's response model) against
``ORJSONResponse`` (``jsonable_encoder`` then orjson) and the stdlib ``JSONResponse`` path, on a search response
with 10 hits. Decides whether a custom response class is worth it (it is not: see docs/benchmarks.md).

    python benchmarks/json_bench.py            # → benchmarks/results/json_bench.json
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.schemas.memories import MemoryOut, SearchHit, SearchResponse  # noqa: E402
from benchmarks.search_bench import machine, provenance  # noqa: E402 - after the path fix, as a script


def response() -> SearchResponse:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    memory = MemoryOut(
        id=uuid.UUID(int=1), cube_id=uuid.UUID(int=2), kind="plaintext", memory_type="fact",
        content="Caroline went to the LGBTQ support group on 7 May 2023 and said it was powerful. " * 2,
        content_hash="0" * 64, user_id="u1", agent_id=None, session_id="s1", occurred_at=now, created_at=now,
        updated_at=now, tags=["support", "group"], metadata={"speaker": "Caroline", "dia_id": "D1:3"},
        source={"type": "message"}, status="active", version=1, importance=0.5, access_count=3,
        last_accessed_at=now, embedding_model="all-MiniLM-L6-v2", embedding_dim=384)
    return SearchResponse(results=[SearchHit(memory=memory, score=0.8) for _ in range(10)], took_ms=3.2)


def main() -> None:
    resp = response()
    adapter = TypeAdapter(SearchResponse)
    ways: dict[str, Callable[[], bytes]] = {
        "fastapi default (pydantic dump_json)": lambda: adapter.dump_json(resp),
        "ORJSONResponse (jsonable_encoder + orjson)": lambda: orjson.dumps(
            jsonable_encoder(resp), option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY),
        "JSONResponse (jsonable_encoder + json)": lambda: json.dumps(
            jsonable_encoder(resp), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(),
    }
    same = {json.dumps(json.loads(f()), sort_keys=True) for f in ways.values()}
    assert len(same) == 1, "the three encoders disagree"
    rows = []
    for name, encode in ways.items():
        for _ in range(50):
            encode()
        start = time.thread_time()
        for _ in range(1000):
            encode()
        rows.append({"encoder": name, "cpu_ms_per_response": round((time.thread_time() - start), 4),
                     "bytes": len(encode())})
    report = {**provenance("python benchmarks/json_bench.py"), "machine": machine(),
              "payload": "SearchResponse with 10 hits", "results": rows,
              "tables": {"encoders": {"columns": ["encoder (search response, 10 hits)", "CPU ms per response", "bytes"],
                                      "formats": [None, "{:.3f}", "{:,}"],
                                      "rows": [[r["encoder"], r["cpu_ms_per_response"], r["bytes"]] for r in rows]}}}
    out = ROOT / "benchmarks" / "results" / "json_bench.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    for r in rows:
        print(f"{r['encoder']:44} {r['cpu_ms_per_response']:.3f} ms CPU  {r['bytes']} bytes")


if __name__ == "__main__":
    main()

"""Search and ingest benchmark for memcubed, over HTTP against a real server.

For each size N it seeds N generated memories into a fresh cube through ``POST /v1/cubes/{id}/memories``
in batches, times single-memory adds, then searches at each concurrency level and reports client-side
latency percentiles, QPS, the server's own ``took_ms`` and the server's RSS.

By default every size gets a fresh server started as a **subprocess** (``memcubed serve``) so that the
benchmark's client threads never share a GIL with the server, over a fresh database on the local Postgres
(``postgresql://postgres@127.0.0.1:5432``) when it answers, else over the embedded Postgres (pgserver).
``--url`` and ``--api-key`` benchmark a server that is already running instead.

    python benchmarks/search_bench.py --sizes 10000,100000 --concurrency 1,8 --out docs/benchmarks-search.md

``run()`` is the importable core (used by the smoke test); ``breakdown()`` times the search path's parts
in-process (query embedding, FAISS, Postgres fetch, response building) to show where the time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import random
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_ADMIN = os.environ.get("MEMCUBED_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")

# Goals from issue 3 (fast mode) and issue 6 (fine mode), on the project's 2-core machine, at 100k memories.
GOALS = {
    "search_p50_ms": 15.0,
    "search_p95_ms": 40.0,
    "fine_search_p95_ms": 60.0,
    "ingest_per_s": 200.0,
    "single_add_p50_ms": 30.0,
}
GOAL_SIZE = 100_000

# --------------------------------------------------------------------------------------------------
# Generated text: a seeded vocabulary of people, places, events, dates and preferences.
# --------------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words; ``_`` joins a multi-word entry."""
    return tuple(w.replace("_", " ") for w in text.split())


FIRST = _words("""Alice Bob Carla Daniel Elena Farid Grace Hiro Ingrid Jamal Keiko Liam Maya Nikolai Olivia
    Pedro Quinn Rosa Samir Tanya Umar Vera Wei Ximena Yusuf Zoe Aaron Beatriz Chen Dmitri Esther Felix Gita
    Hannah Ivan Julia Kofi Lena Marco Nadia Oscar Priya Rafael Sofia Tomas Uma Viktor Wanda Yara Zeynep Amir
    Bianca Caleb Divya Emil Fatima Gabriel Helga Ines Jonas""")
LAST = _words("""Anders Brooks Castillo Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Lopez Moreau
    Nakamura Okafor Petrov Quinteros Rossi Schmidt Tanaka Ueda Varga Weber Xu Yilmaz Zhang""")
CITIES = _words("""Berlin Lisbon Kyoto Toronto Nairobi Oslo Lima Seoul Dublin Prague Austin Porto Vienna
    Melbourne Denver Marseille Hanoi Tbilisi Bogota Reykjavik Krakow Seville Montreal Helsinki Istanbul
    Cape_Town Zurich Edinburgh Valencia Osaka Chicago Boston Munich Athens Budapest Copenhagen""")
COUNTRIES = _words("""Portugal Japan Canada Kenya Norway Peru Korea Ireland Iceland Georgia Vietnam Chile
    Morocco Argentina Greece Italy Mexico Scotland Finland Croatia""")
RELATIONS = _words("sister brother cousin mother father aunt uncle grandmother neighbour coworker roommate")
FOODS = _words("""peanuts shellfish sushi ramen lasagne falafel tacos dumplings paella curry kimchi risotto
    pho pierogi ceviche croissants goat_cheese strawberries mushrooms eggplant""")
DRINKS = _words("coffee green_tea espresso matcha oat_milk_lattes black_tea hot_chocolate kombucha")
INSTRUMENTS = _words("piano violin cello guitar drums saxophone ukulele trumpet flute accordion")
HOBBIES = _words("""pottery rock_climbing salsa_dancing watercolour_painting woodworking bouldering chess
    sourdough_baking birdwatching knitting photography calligraphy""")
JOBS = _words("""nurse data_engineer architect teacher pharmacist product_designer chef journalist electrician
    veterinarian accountant pilot physiotherapist translator""")
PETS = _words("dog cat rabbit parrot tortoise hamster ferret goldfish")
PET_NAMES = _words("Biscuit Pepper Luna Mochi Olive Ziggy Noodle Pickles Juniper Waffles Miso Clover")
COLORS = _words("red blue green silver black white yellow dark_grey")
VEHICLES = _words("hatchback electric_car cargo_bike motorbike camper_van road_bike")
EVENTS = ["wedding", "birthday party", "graduation ceremony", "housewarming", "retirement dinner",
          "baby shower", "engagement party", "anniversary dinner"]
VENUES = ["botanical garden", "old town hall", "community centre", "harbour restaurant", "rooftop bar",
          "public library", "yoga studio", "jazz club", "art museum", "city park"]
PROJECTS = _words("Atlas Beacon Comet Delta Ember Falcon Garnet Harbor Iris Juniper Kestrel Lumen")
FEELINGS = _words("relieved anxious excited frustrated proud exhausted optimistic confused grateful")
SUBJECTS = ["biology", "economics", "history", "computer science", "architecture", "nursing", "philosophy",
            "marine biology", "mechanical engineering"]
GENRES = ["science fiction", "historical fiction", "crime", "poetry", "biography", "fantasy",
          "travel writing"]
TOPICS = ["the Roman empire", "deep sea creatures", "a heist in Monaco", "the history of tea",
          "climate change", "a family in rural Ireland", "the first moon landing", "medieval castles",
          "jazz in New Orleans"]
SPORTS_RACES = ["marathon", "half marathon", "10k race", "triathlon", "cycling sportive", "open water swim"]
SEASONS = _words("spring summer autumn winter")
WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _words("January February March April May June July August September October November December")
TASKS = ["sorting donations", "teaching kids to read", "walking the dogs", "cooking lunch", "fixing bicycles",
         "answering the helpline", "planting trees"]

MEMORY_TEMPLATES = (
    "{name} moved to {city} in {month} {year} to start a new job as a {job} at a small company there.",
    "{name} is allergic to {food} and always asks the waiter about it before ordering at restaurants.",
    "On {weekday} {name} went {hobby} with their {relation} {name2} near the {venue} in {city}.",
    "{name} adopted a {pet} named {petname} from the animal shelter in {city} last {season}.",
    "{name} prefers {drink} over {drink2} in the morning and never drinks caffeine after {hour} pm.",
    "{name} has been learning to play the {instrument} for {n} months and practises every {weekday} evening.",
    "{name} ran the {city} {race} in {month} {year} and finished in {hours} hours and {mins} minutes.",
    "The {event} for {name}'s {relation} is planned for {month} {day} at the {venue} in {city}.",
    "{name} said they felt {feeling} after meeting {name2} about the {project} project on {weekday}.",
    "{name} is reading {genre} books lately; the last one was about {topic} and they loved it.",
    "{name} booked a flight to {city} for {month} {day}, {year}, to visit their {relation} {name2}.",
    "{name} volunteers at the {venue} every {weekday} morning and helps with {task}.",
    "{name} dislikes {food} but loves {food2}, especially the version served at a tiny place in {city}.",
    "{name} and {name2} first met at a {event} in {city} back in {year} and have been close friends since.",
    "{name} started a {hobby} class on {weekday}s at the {venue} near their apartment in {city}.",
    "{name} bought a {color} {vehicle} in {month} {year} after the old one broke down on the way to {city}.",
    "{name} works from home on {weekday}s and goes to the office in {city} the rest of the week.",
    "{name} is planning a hiking trip to {country} with {name2} for {season} {year}, mostly in the hills.",
    "{name}'s {relation} {name2} graduated with a degree in {subject} in {year} and now works as a {job}.",
    "{name} mentioned that their favourite dish is {food} cooked the way their {relation} makes it.",
    "{name} missed the {project} deadline on {month} {day} because their {pet} {petname} was sick.",
    "{name} gave {name2} a {color} scarf for their {event} and {name2} wore it the whole evening.",
    "Every {season} {name} spends two weeks in {country} visiting old friends and eating {food}.",
    "{name} fixed the leaking kitchen sink on {weekday} and then cooked {food} for {name2} and the kids.",
)

QUERY_TEMPLATES = (
    "Where did {name} move to?",
    "What is {name} allergic to?",
    "What instrument is {name} learning to play?",
    "When is the {event} for {name}'s {relation}?",
    "How did {name} meet {name2}?",
    "What pet did {name} adopt and what is its name?",
    "What does {name} like to drink in the morning?",
    "What did {name} do on {weekday} in {city}?",
    "Where is {name} planning to travel in {season}?",
    "What food does {name} love?",
    "How did {name} feel after the meeting about the {project} project?",
    "What kind of car or bike did {name} buy?",
    "Which race did {name} run in {city} and what was their time?",
    "What books has {name} been reading recently?",
    "Where does {name} volunteer and what do they do there?",
    "What did {name}'s {relation} study?",
    "Who is visiting {city} in {month}?",
    "Which hobby class did {name} sign up for?",
    "Why did {name} miss a deadline?",
    "What does {name} usually do on {weekday}s?",
)


def _person(rng: random.Random) -> str:
    first = rng.choice(FIRST)
    return f"{first} {rng.choice(LAST)}" if rng.random() < 0.35 else first


def _fill(template: str, rng: random.Random) -> str:
    values = {
        "name": _person(rng), "name2": rng.choice(FIRST), "city": rng.choice(CITIES),
        "country": rng.choice(COUNTRIES), "relation": rng.choice(RELATIONS), "food": rng.choice(FOODS),
        "food2": rng.choice(FOODS), "drink": rng.choice(DRINKS), "drink2": rng.choice(DRINKS),
        "instrument": rng.choice(INSTRUMENTS), "hobby": rng.choice(HOBBIES), "job": rng.choice(JOBS),
        "pet": rng.choice(PETS), "petname": rng.choice(PET_NAMES), "color": rng.choice(COLORS),
        "vehicle": rng.choice(VEHICLES), "event": rng.choice(EVENTS), "venue": rng.choice(VENUES),
        "project": rng.choice(PROJECTS), "feeling": rng.choice(FEELINGS), "subject": rng.choice(SUBJECTS),
        "genre": rng.choice(GENRES), "topic": rng.choice(TOPICS), "race": rng.choice(SPORTS_RACES),
        "season": rng.choice(SEASONS), "weekday": rng.choice(WEEKDAYS), "month": rng.choice(MONTHS),
        "task": rng.choice(TASKS), "year": rng.randint(2015, 2025), "day": rng.randint(1, 28),
        "hour": rng.randint(2, 6), "n": rng.randint(2, 30), "hours": rng.randint(2, 5),
        "mins": rng.randint(0, 59),
    }
    return template.format(**values)


class TextGenerator:
    """Deterministic memories and questions from templates and word lists (no external data)."""

    EPOCH = datetime(2022, 1, 1, tzinfo=UTC)

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def memory(self) -> dict[str, Any]:
        """One memory body: a 12-25 word sentence, a session id and an event time."""
        i = self.count
        self.count += 1
        content = _fill(self.rng.choice(MEMORY_TEMPLATES), self.rng)
        occurred = self.EPOCH + timedelta(minutes=self.rng.randint(0, 3 * 365 * 24 * 60))
        return {"content": content, "session_id": f"bench-session-{i // 25}",
                "occurred_at": occurred.isoformat().replace("+00:00", "Z")}

    def memories(self, n: int) -> list[dict[str, Any]]:
        return [self.memory() for _ in range(n)]

    def question(self) -> str:
        return _fill(self.rng.choice(QUERY_TEMPLATES), self.rng)

    def questions(self, n: int) -> list[str]:
        return [self.question() for _ in range(n)]


# --------------------------------------------------------------------------------------------------
# Measurement helpers
# --------------------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (linear interpolation), rounded to 0.01; 0 for no values."""
    return round(float(np.percentile(np.asarray(values, dtype=np.float64), q)), 2) if values else 0.0


def latency_stats(ms: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "p99_ms": pct(ms, 99),
            "mean_ms": round(float(np.mean(ms)), 2) if ms else 0.0}


def rss_mb(pid: int) -> tuple[float | None, float | None]:
    """Resident and peak resident memory (MiB) of a local process, from /proc; (None, None) elsewhere."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
    except OSError:
        return None, None

    def kb(key: str) -> float | None:
        raw = fields.get(key)
        return round(int(raw.split()[0]) / 1024, 1) if raw else None

    return kb("VmRSS"), kb("VmHWM")


def _check(r: httpx.Response, what: str) -> dict[str, Any]:
    if r.status_code >= 300:
        raise RuntimeError(f"{what} failed: HTTP {r.status_code}: {r.text[:500]}")
    body: dict[str, Any] = r.json()
    return body


def _client(url: str, key: str, timeout: float = 300.0) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)


def tenant_key(url: str, key: str) -> str:
    """A tenant key to benchmark with: ``key`` itself if it is a tenant key, else a new tenant's key."""
    with _client(url, key, 30) as http:
        r = http.post("/v1/tenants", json={"name": f"bench-{uuid.uuid4().hex[:10]}"})
        if r.status_code == 403:
            return key
        return str(_check(r, "create tenant")["api_key"])


ProgressFn = Callable[[int], None]


@contextlib.contextmanager
def _progress(enabled: bool, label: str, total: int) -> Iterator[ProgressFn]:
    """A rich progress bar (or nothing); yields a function that advances it."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn()) as bar:
        task = bar.add_task(label, total=total, rate="")
        started = time.perf_counter()
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:,.0f}/s")

        yield advance


# --------------------------------------------------------------------------------------------------
# The benchmark core
# --------------------------------------------------------------------------------------------------


def seed(http: httpx.Client, cube_id: str, gen: TextGenerator, size: int, batch: int,
         progress: bool = False) -> dict[str, float]:
    """Seed ``size`` memories in batches of ``batch``, sequentially; returns ingest throughput."""
    batch_ms: list[float] = []
    started = time.perf_counter()
    with _progress(progress, f"seeding {size:,} memories", size) as advance:
        left = size
        while left > 0:
            items = gen.memories(min(batch, left))
            t0 = time.perf_counter()
            body = _check(http.post(f"/v1/cubes/{cube_id}/memories", json={"memories": items}), "batch add")
            batch_ms.append((time.perf_counter() - t0) * 1000)
            if len(body["memories"]) != len(items):
                raise RuntimeError(f"batch add returned {len(body['memories'])} memories for {len(items)}")
            left -= len(items)
            advance(len(items))
    seconds = time.perf_counter() - started
    return {"memories": size, "batch": batch, "seconds": round(seconds, 2),
            "memories_per_s": round(size / seconds, 1), "batch_p50_ms": pct(batch_ms, 50),
            "batch_p95_ms": pct(batch_ms, 95)}


def single_adds(http: httpx.Client, cube_id: str, gen: TextGenerator, n: int) -> dict[str, float]:
    """Latency of ``n`` one-memory POSTs, one after another."""
    ms: list[float] = []
    for _ in range(n):
        item = gen.memory()
        t0 = time.perf_counter()
        _check(http.post(f"/v1/cubes/{cube_id}/memories", json={"memories": [item]}), "single add")
        ms.append((time.perf_counter() - t0) * 1000)
    return {"n": n, **latency_stats(ms)}


def search_phase(url: str, key: str, cube_id: str, queries: Sequence[str], concurrency: int,
                 mode: str = "fast", top_k: int = 10) -> dict[str, float]:
    """Send every query once, spread over ``concurrency`` threads that each keep one HTTP connection.

    Latency is client side (request sent → response parsed), so it includes the server's query embedding,
    the HTTP stack and JSON; ``took_ms`` is the server's own measure of its search service.
    """
    latencies: list[float] = []
    took: list[float] = []
    hits: list[int] = []
    errors: list[BaseException] = []
    dropped: list[str] = []
    counter = itertools.count()
    ready = threading.Barrier(concurrency + 1)

    def post(http: httpx.Client, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """One search; a connection the server drops is counted in ``dropped`` and retried (3 times)."""
        for attempt in range(4):
            t0 = time.perf_counter()
            try:
                res = _check(http.post("/v1/search", json=body), "search")
                return (time.perf_counter() - t0) * 1000, res
            except httpx.TransportError as exc:
                dropped.append(repr(exc))
                if attempt == 3:
                    raise
        raise AssertionError("unreachable")

    def worker() -> None:
        try:
            with _client(url, key, 60) as http:
                body = {"query": queries[0], "cube_ids": [cube_id], "top_k": top_k, "mode": mode}
                post(http, body)  # opens the connection before timing
                ready.wait()
                while (i := next(counter)) < len(queries):
                    body = {"query": queries[i], "cube_ids": [cube_id], "top_k": top_k, "mode": mode}
                    ms, res = post(http, body)
                    latencies.append(ms)
                    took.append(float(res["took_ms"]))
                    hits.append(len(res["results"]))
        except BaseException as exc:  # surfaced in the caller's thread below
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"search at concurrency {concurrency} failed: {errors[0]}") from errors[0]
    return {"concurrency": concurrency, "queries": len(latencies), **latency_stats(latencies),
            "qps": round(len(latencies) / wall, 1), "took_ms_p50": pct(took, 50),
            "took_ms_p95": pct(took, 95),
            "hits_mean": round(float(np.mean(hits)), 2) if hits else 0.0, "dropped_connections": len(dropped)}


def run(url: str, api_key: str, size: int, *, batch: int = 500, queries: int = 300,
        concurrency: Sequence[int] = (1, 8), mode: str = "fast", top_k: int = 10, single: int = 200,
        warmup: int = 30, seed_value: int = 0, rss_pid: int | None = None, progress: bool = False,
        cube_name: str | None = None) -> dict[str, Any]:
    """Benchmark one size on a running server with a **tenant** key: seed a fresh cube, time adds and search.

    Returns ``{"size", "mode", "top_k", "cube_id", "ingest", "single_add", "search": {concurrency: stats},
    "rss_mb", "rss_peak_mb"}``; ``rss_pid`` is the server's process id when it runs on this machine.
    """
    gen = TextGenerator(seed_value)
    load_start = _loadavg()
    with _client(url, api_key) as http:
        name = cube_name or f"bench-{size}-{uuid.uuid4().hex[:8]}"
        cube_id = str(_check(http.post("/v1/cubes", json={"name": name, "description": "search benchmark"}),
                             "create cube")["id"])
        ingest = seed(http, cube_id, gen, size, batch, progress)
        rss, _ = rss_mb(rss_pid) if rss_pid else (None, None)
        adds = single_adds(http, cube_id, gen, single) if single else {"n": 0}
    qgen = TextGenerator(seed_value + 1)
    if warmup:
        search_phase(url, api_key, cube_id, qgen.questions(warmup), 1, mode, top_k)
    question_set = qgen.questions(queries)
    search: dict[int, dict[str, float]] = {}
    label = f"searching ({mode}) at concurrency {list(concurrency)}"
    with _progress(progress, label, len(concurrency)) as step:
        for c in concurrency:
            search[c] = search_phase(url, api_key, cube_id, question_set, c, mode, top_k)
            step(1)
    _, peak = rss_mb(rss_pid) if rss_pid else (None, None)
    return {"size": size, "mode": mode, "top_k": top_k, "cube_id": cube_id, "ingest": ingest,
            "single_add": adds, "search": search, "rss_mb": rss, "rss_peak_mb": peak,
            "loadavg_1m": {"start": load_start, "end": _loadavg()}}


def _loadavg() -> float | None:
    """The 1-minute load average: on a shared 2-core machine, the context of every figure."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# --------------------------------------------------------------------------------------------------
# Where a search's time goes: each part timed alone, in-process, over the same components.
# --------------------------------------------------------------------------------------------------


def breakdown(size: int, queries: Sequence[str], database_url: str | None = None, cube_id: str | None = None,
              top_k: int = 10, repeats: int = 200, model: str = "all-MiniLM-L6-v2") -> dict[str, Any]:
    """Time the parts of one fast search separately: query embedding, FAISS search over ``size`` vectors
    (random, normalised: a flat index costs the same whatever the data), and, given the benchmark's database,
    the Postgres reads (cube check + fetch of the top-k rows) and building the response JSON."""
    import faiss

    from app.vector.embedder import load_embedder
    from app.vector.index import CubeIndex

    out: dict[str, Any] = {"size": size, "repeats": repeats}
    qs = [queries[i % len(queries)] for i in range(repeats)]
    embedder = load_embedder(model)
    for q in qs[:10]:
        embedder.encode_one(q)
    ms: list[float] = []
    qvecs = []
    for q in qs:
        t0 = time.perf_counter()
        qvecs.append(embedder.encode_one(q))
        ms.append((time.perf_counter() - t0) * 1000)
    out["embed"] = latency_stats(ms)

    import torch

    out["torch_threads"] = threads = torch.get_num_threads()
    if threads > 1:  # the same with one intra-op thread: on a busy 2-core machine OpenMP spinning hurts
        torch.set_num_threads(1)
        try:
            ms = []
            for q in qs:
                t0 = time.perf_counter()
                embedder.encode_one(q)
                ms.append((time.perf_counter() - t0) * 1000)
        finally:
            torch.set_num_threads(threads)
        out["embed_1_thread"] = latency_stats(ms)
    out["faiss_threads"] = faiss.omp_get_max_threads()
    rng = np.random.default_rng(0)
    index = CubeIndex(embedder.dim)
    for start in range(0, size, 50_000):
        n = min(50_000, size - start)
        vecs = rng.standard_normal((n, embedder.dim), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        index.index.add_with_ids(vecs, np.arange(start + 1, start + n + 1, dtype=np.int64))
    ms = []
    for v in qvecs:
        t0 = time.perf_counter()
        index.search(v, top_k)
        ms.append((time.perf_counter() - t0) * 1000)
    out["faiss"] = latency_stats(ms)
    one = rng.standard_normal((1, embedder.dim), dtype=np.float32)
    ms = []
    for _ in range(20):  # what one single add does to the index besides appending: remove_ids (+ rev map)
        vid = np.asarray([size + 10], dtype=np.int64)
        t0 = time.perf_counter()
        index.add(vid, one)
        ms.append((time.perf_counter() - t0) * 1000)
    out["faiss_add_one"] = latency_stats(ms)
    del index

    if database_url and cube_id:
        try:
            out.update(_breakdown_postgres(database_url, uuid.UUID(cube_id), top_k, repeats))
        except Exception as exc:  # e.g. this checkout's models differ from the server's schema
            out["postgres_error"] = repr(exc)[:300]
    return out


def _breakdown_postgres(database_url: str, cube_id: uuid.UUID, top_k: int, repeats: int) -> dict[str, Any]:
    from sqlalchemy import select

    from app.config import to_psycopg_url
    from app.db import make_engine, make_sessions
    from app.models import Memory
    from app.repositories import cubes
    from app.repositories import memories as repo
    from app.schemas.memories import SearchHit, SearchResponse
    from app.services.memories import memory_out

    engine = make_engine(to_psycopg_url(database_url))
    sessions = make_sessions(engine)
    try:
        with sessions() as s:
            tenant_id = s.scalar(select(Memory.tenant_id).where(Memory.cube_id == cube_id).limit(1))
            all_ids = list(s.scalars(select(Memory.vec_id).where(Memory.cube_id == cube_id)))
        if tenant_id is None:
            return {}
        rng = random.Random(0)
        pg_ms: list[float] = []
        build_ms: list[float] = []
        for _ in range(repeats):
            ids = rng.sample(all_ids, min(top_k, len(all_ids)))
            t0 = time.perf_counter()
            with sessions() as s:
                cubes.live_cube_ids(s, tenant_id, [cube_id])
                rows = repo.active_by_vec_ids(s, ids)
            t1 = time.perf_counter()
            hits = [SearchHit(memory=memory_out(rows[v]), score=0.5) for v in ids if v in rows]
            resp = SearchResponse(results=hits, took_ms=1.0)
            resp.model_dump_json()
            t2 = time.perf_counter()
            pg_ms.append((t1 - t0) * 1000)
            build_ms.append((t2 - t1) * 1000)
        return {"postgres": latency_stats(pg_ms), "response": latency_stats(build_ms)}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# A server of our own: a fresh database on the local Postgres (or embedded), `memcubed serve` as a subprocess.
# --------------------------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    url: str
    admin_key: str
    pid: int
    data_dir: Path
    database_url: str | None
    log_path: Path


def _pg_url(admin_url: str, dbname: str) -> str:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    user, host = info.get("user") or "postgres", info.get("host") or "127.0.0.1"
    port = info.get("port") or 5432
    return f"postgresql://{user}@{host}:{port}/{dbname}"


@contextlib.contextmanager
def bench_database(admin_url: str = DEFAULT_PG_ADMIN) -> Iterator[str | None]:
    """A fresh ``memcubed_bench_*`` database on the local Postgres, dropped at the end (None: no answer)."""
    import psycopg

    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
    except psycopg.OperationalError:
        yield None
        return
    name = f"memcubed_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(data_dir: Path, database_url: str | None, start_timeout: float = 300.0,
                   extra_env: dict[str, str] | None = None, extra_args: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """``memcubed serve`` in its own process (no GIL shared with the benchmark), SIGTERM at the end;
    ``extra_args`` go to ``serve`` (e.g. ``--workers 2``)."""
    port = _free_port()
    admin_key = "mck_bench_" + secrets.token_urlsafe(18)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMCUBED_")}
    # Benchmarks measure the service, not admission control: no rate limit unless extra_env sets one.
    env.update({"MEMCUBED_ADMIN_KEY": admin_key, "MEMCUBED_DATA_DIR": str(data_dir),
                "MEMCUBED_RATE_LIMIT_ENABLED": "false"})
    if database_url:
        env["MEMCUBED_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    log_path = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", "import sys; from app.cli import main; sys.argv[0] = 'memcubed'; main()",
           "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir), *extra_args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text()[-3000:]
                raise RuntimeError(f"memcubed serve exited with {proc.returncode}:\n{tail}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"memcubed serve not ready after {start_timeout:.0f} s; see {log_path}")
            time.sleep(0.3)
        yield ServerProcess(url, admin_key, proc.pid, data_dir, database_url, log_path)
    except BaseException:
        alive = "running" if proc.poll() is None else f"exited with {proc.returncode}"
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if '" 20' not in ln]
        print(f"memcubed serve ({alive}); last lines of its log:\n" + "\n".join(lines[-40:]), file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def git_commit() -> str:
    """The checkout's commit, with ``-dirty`` when tracked files changed: the figures' code, to the line."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(command: str) -> dict[str, Any]:
    """What ``benchmarks/render.py`` shows beside every figure: the command, commit, date and load average."""
    return {"command": command, "commit": git_commit(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load": [round(x, 2) for x in os.getloadavg()]}


def machine() -> dict[str, Any]:
    """nproc, RAM, CPU model, load average: the context every figure needs on a shared machine."""
    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(),
                            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
        info["ram_gib"] = round(int(mem[1]) / 1024 / 1024, 1)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        info["loadavg"] = os.getloadavg()
    return info


def _mark(value: float | None, goal: float, higher_is_better: bool = False) -> str:
    if value is None:
        return "—"
    ok = value >= goal if higher_is_better else value <= goal
    return "✅" if ok else "❌"


def goal_rows(rep: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, value, goal, met) rows for one size; search goals apply at 100k memories."""
    at_goal_size = rep["size"] >= GOAL_SIZE
    scale = "" if at_goal_size else f" (goal is at {GOAL_SIZE // 1000}k)"
    c1 = rep["search"].get(1) or next(iter(rep["search"].values()))
    rows = [
        ("batched ingest, memories/s", f"{rep['ingest']['memories_per_s']:,.0f}",
         f"≥ {GOALS['ingest_per_s']:.0f}",
         _mark(rep["ingest"]["memories_per_s"], GOALS["ingest_per_s"], True)),
    ]
    if rep["single_add"].get("n"):
        rows.append(("single add p50, ms", f"{rep['single_add']['p50_ms']:.1f}",
                     f"≤ {GOALS['single_add_p50_ms']:.0f}",
                     _mark(rep["single_add"]["p50_ms"], GOALS["single_add_p50_ms"])))
    if rep["mode"] == "fine":
        rows.append((f"fine search p95 (c={c1['concurrency']}), ms", f"{c1['p95_ms']:.1f}",
                     f"≤ {GOALS['fine_search_p95_ms']:.0f}{scale}",
                     _mark(c1["p95_ms"], GOALS["fine_search_p95_ms"])))
    else:
        rows.append((f"search p50 (c={c1['concurrency']}), ms", f"{c1['p50_ms']:.1f}",
                     f"≤ {GOALS['search_p50_ms']:.0f}{scale}", _mark(c1["p50_ms"], GOALS["search_p50_ms"])))
        rows.append((f"search p95 (c={c1['concurrency']}), ms", f"{c1['p95_ms']:.1f}",
                     f"≤ {GOALS['search_p95_ms']:.0f}{scale}", _mark(c1["p95_ms"], GOALS["search_p95_ms"])))
    return rows


def markdown(reports: Sequence[dict[str, Any]], command: str, mach: dict[str, Any], backend: str) -> str:
    """The figures as a markdown section: command, date, machine, then one block per size."""
    load = mach.get("loadavg")
    lines = [
        "## Search benchmark",
        "",
        f"- Command: `{command}`",
        f"- Date: {mach.get('date') or datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {mach.get('nproc')} CPUs ({mach.get('cpu', 'unknown CPU')}), "
        f"{mach.get('ram_gib', '?')} GiB RAM, "
        f"Python {mach.get('python')}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in load) if load else 'n/a'}",
        f"- Server: {backend}",
        "- Latency is client side over HTTP (keep-alive), so it includes the server's query embedding, "
        "FastAPI and JSON; `took_ms` is the server's own time inside the search service.",
        "- The machine is shared with other work: figures are noisy; the load averages below say how busy "
        "it was.",
        "",
    ]
    for rep in reports:
        ing, add = rep["ingest"], rep["single_add"]
        lines += [
            f"### {rep['size']:,} memories, mode `{rep['mode']}`, top_k {rep['top_k']}",
            "",
            f"Ingest: {ing['memories']:,} memories in batches of {ing['batch']} took "
            f"{ing['seconds']:.1f} s = "
            f"**{ing['memories_per_s']:,.0f} memories/s** (batch p50 {ing['batch_p50_ms']:.0f} ms, "
            f"p95 {ing['batch_p95_ms']:.0f} ms).",
        ]
        if add.get("n"):
            lines.append(f"Single add ({add['n']} one-memory POSTs): p50 **{add['p50_ms']:.1f} ms**, "
                         f"p95 {add['p95_ms']:.1f} ms, p99 {add['p99_ms']:.1f} ms.")
        load = rep.get("loadavg_1m") or {}
        if load.get("start") is not None:
            n = mach.get("nproc")
            lines.append(f"1-min load average, {n} CPUs: {load['start']:.2f} at the start of this size, "
                         f"{load['end']:.2f} at its end (above {n}: contended).")
        if rep.get("rss_mb") is not None:
            lines.append(f"Server RSS after seeding: **{rep['rss_mb']:,.0f} MiB** "
                         f"(peak over the whole run {rep['rss_peak_mb']:,.0f} MiB).")
        lines += ["", "| concurrency | queries | p50 ms | p95 ms | p99 ms | mean ms | QPS | "
                  "server took_ms p50 | "
                  "took_ms p95 |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c, s in sorted(rep["search"].items()):
            lines.append(f"| {c} | {s['queries']} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | "
                         f"{s['p99_ms']:.1f} | "
                         f"{s['mean_ms']:.1f} | {s['qps']:.1f} | {s['took_ms_p50']:.1f} | "
                         f"{s['took_ms_p95']:.1f} |")
        drops = {c: s.get("dropped_connections", 0) for c, s in rep["search"].items()}
        if any(drops.values()):
            lines += ["", "Connections the server dropped mid-search (retried, not timed): " +
                      ", ".join(f"{n} at concurrency {c}" for c, n in sorted(drops.items())) + "."]
        lines += ["", "| goal | measured | target | met |", "|---|---:|---:|:-:|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in goal_rows(rep)]
        lines.append("")
        if rep.get("breakdown_error"):
            lines += [f"(The in-process breakdown failed: `{rep['breakdown_error']}`.)", ""]
        if rep.get("breakdown"):
            lines += breakdown_markdown(rep["breakdown"], rep)
    return "\n".join(lines) + "\n"


def breakdown_markdown(bd: dict[str, Any], rep: dict[str, Any]) -> list[str]:
    """The in-process timing of a search's parts, next to the server's took_ms and the client's latency."""
    lines = [f"Where a search's time goes at {bd['size']:,} vectors (each part timed alone, in-process, "
             f"{bd['repeats']} repeats; torch threads {bd['torch_threads']}, "
             f"FAISS threads {bd['faiss_threads']}):",
             "", "| part | p50 ms | p95 ms |", "|---|---:|---:|"]
    names = {"embed": "query embedding (MiniLM, encode_one)",
             "faiss": "FAISS exact search (IndexIDMap2 over IndexFlatIP)",
             "postgres": "Postgres: cube check + fetch top-k rows",
             "response": "build response models + JSON",
             "faiss_add_one": "FAISS add of one vector (remove_ids + add; single-add path)"}
    total = 0.0
    for key in ("embed", "faiss", "postgres", "response"):
        if key in bd:
            lines.append(f"| {names[key]} | {bd[key]['p50_ms']:.2f} | {bd[key]['p95_ms']:.2f} |")
            total += bd[key]["p50_ms"]
    lines.append(f"| **sum of parts** | **{total:.2f}** | |")
    c1 = rep["search"].get(1)
    if c1:
        lines.append(f"| server took_ms (c=1) | {c1['took_ms_p50']:.2f} | {c1['took_ms_p95']:.2f} |")
        lines.append(f"| client latency (c=1) | {c1['p50_ms']:.2f} | {c1['p95_ms']:.2f} |")
        lines.append(f"| → HTTP + FastAPI + auth outside took_ms (c=1, p50 difference) | "
                     f"{c1['p50_ms'] - c1['took_ms_p50']:.2f} | |")
    if "postgres_error" in bd:
        lines.append(f"| Postgres part not measured: `{bd['postgres_error'][:120]}` | | |")
    if "embed_1_thread" in bd:
        lines.append(f"| query embedding with 1 torch thread instead of {bd['torch_threads']} | "
                     f"{bd['embed_1_thread']['p50_ms']:.2f} | {bd['embed_1_thread']['p95_ms']:.2f} |")
    if "faiss_add_one" in bd:
        lines.append(f"| {names['faiss_add_one']} | {bd['faiss_add_one']['p50_ms']:.2f} | "
                     f"{bd['faiss_add_one']['p95_ms']:.2f} |")
    return [*lines, ""]


def print_table(reports: Sequence[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="memcubed search benchmark")
    cols = ("size", "mode", "ingest/s", "add p50", "c", "p50", "p95", "p99", "QPS", "took p50", "RSS MiB")
    for col in cols:
        table.add_column(col, justify="right")
    for rep in reports:
        for c, s in sorted(rep["search"].items()):
            table.add_row(f"{rep['size']:,}", rep["mode"], f"{rep['ingest']['memories_per_s']:,.0f}",
                          f"{rep['single_add'].get('p50_ms', 0):.1f}", str(c), f"{s['p50_ms']:.1f}",
                          f"{s['p95_ms']:.1f}", f"{s['p99_ms']:.1f}", f"{s['qps']:.1f}",
                          f"{s['took_ms_p50']:.1f}",
                          "—" if rep.get("rss_mb") is None else f"{rep['rss_mb']:,.0f}")
    Console().print(table)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "").replace("k", "000")) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", type=_ints, default=[10_000, 100_000],
                   help="memories per run, e.g. 10000,100000")
    p.add_argument("--batch", type=int, default=500, help="memories per batched POST (≤ 1000)")
    p.add_argument("--queries", type=int, default=300, help="timed queries per concurrency level")
    p.add_argument("--concurrency", type=_ints, default=[1, 8], help="concurrency levels, e.g. 1,8")
    p.add_argument("--mode", default="fast", help="search mode passed through to /v1/search (fast, fine)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--single-adds", type=int, default=200, help="one-memory POSTs timed after seeding")
    p.add_argument("--warmup", type=int, default=30, help="untimed queries before timing")
    p.add_argument("--seed", type=int, default=0, help="text generator seed")
    p.add_argument("--url", help="benchmark this running server instead of starting one")
    p.add_argument("--api-key", help="with --url: an admin key (a tenant is created) or a tenant key")
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid on this machine, for RSS")
    p.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN,
                   help="Postgres to create the throwaway database on; embedded Postgres if none answers")
    p.add_argument("--embedded", action="store_true",
                   help="use the embedded Postgres even if the local one answers")
    p.add_argument("--breakdown", action="store_true",
                   help="also time the search path's parts in-process (embedding, FAISS, Postgres, response)")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for the started server, e.g. OMP_NUM_THREADS=1 (repeatable)")
    p.add_argument("--out", type=Path, help="write the markdown section here")
    p.add_argument("--json", type=Path, dest="json_out", help="write the raw figures as JSON here")
    p.add_argument("--render", type=Path, nargs="+", metavar="JSON",
                   help="run nothing: write --out from the figures in these --json files (one section each)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.url and not args.api_key:
        p.error("--url needs --api-key")
    return args


def _one_size(args: argparse.Namespace, size: int, url: str, key: str, pid: int | None,
              database_url: str | None) -> dict[str, Any]:
    rep = run(url, tenant_key(url, key), size, batch=args.batch, queries=args.queries,
              concurrency=args.concurrency, mode=args.mode, top_k=args.top_k, single=args.single_adds,
              warmup=args.warmup, seed_value=args.seed, rss_pid=pid, progress=not args.no_progress)
    print_table([rep])
    if args.breakdown:
        qs = TextGenerator(args.seed + 1).questions(200)
        try:
            rep["breakdown"] = breakdown(size + args.single_adds, qs, database_url, rep["cube_id"],
                                         args.top_k)
        except Exception as exc:  # the HTTP figures stand on their own; keep them
            print(f"breakdown failed: {exc!r}", file=sys.stderr)
            rep["breakdown_error"] = repr(exc)[:300]
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shown = list(argv if argv is not None else sys.argv[1:])
    command = "python benchmarks/search_bench.py " + shlex.join(shown)
    if args.render:
        sections = []
        for path in args.render:
            saved = json.loads(path.read_text())
            reps = [{**r, "search": {int(c): v for c, v in r["search"].items()}} for r in saved["reports"]]
            sections.append(markdown(reps, saved["command"], saved["machine"], saved.get("backend", "?")))
        text = "\n".join(sections)
        if args.out:
            args.out.write_text(text)
        else:
            print(text)
        return 0
    mach = machine()
    reports: list[dict[str, Any]] = []
    backend = "given by --url"
    for size in args.sizes:
        if args.url:
            reports.append(_one_size(args, size, args.url, args.api_key, args.server_pid, None))
            _write(args, reports, command, mach, backend)
            continue
        with contextlib.ExitStack() as stack:
            dburl = None if args.embedded else stack.enter_context(bench_database(args.pg_admin_url))
            backend = ("`memcubed serve` subprocess over " +
                       ("the local Postgres (fresh database)" if dburl
                        else "the embedded Postgres (pgserver)") +
                       ", one fresh server and database per size, default settings")
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memcubed-bench-")))
            extra = dict(kv.split("=", 1) for kv in args.server_env)
            if extra:
                backend += "; server environment " + ", ".join(f"`{k}={v}`" for k, v in extra.items())
            srv = stack.enter_context(server_process(data_dir, dburl, extra_env=extra))
            reports.append(_one_size(args, size, srv.url, srv.admin_key, srv.pid, dburl))
        _write(args, reports, command, mach, backend)  # after each size, so a later failure loses nothing
    print_table(reports)
    _write(args, reports, command, mach, backend)
    return 0


def _write(args: argparse.Namespace, reports: list[dict[str, Any]], command: str, mach: dict[str, Any],
           backend: str) -> None:
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(reports, command, mach, backend))
        print(f"wrote {args.out}")
    if args.json_out:
        report = {"command": command, "machine": mach, "backend": backend, "reports": reports}
        args.json_out.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())

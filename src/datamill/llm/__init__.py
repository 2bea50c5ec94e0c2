"""The LLM layer: one async client for any OpenAI-compatible endpoint and the embedded local model,
a disk cache, structured (JSON-schema) output, prompt templates as files, and embeddings. A reasoning
model's thinking is kept apart from its answer (``datamill.llm.reasoning``).

    from datamill.llm import LLMClient, LLMConfig, generate_json, prompts

    async with LLMClient(LLMConfig(backend="openai", base_url="http://127.0.0.1:8000/v1")) as llm:
        answer = await llm.chat(prompts.render("paraphrase", text=doc))
        print(answer.text, llm.usage.to_dict())

Heavy runtimes (llama-cpp-python, sentence-transformers) load only when first used.
"""

from datamill.llm.cache import Cache, make_key
from datamill.llm.client import (
    Completion,
    LLMClient,
    LLMConfig,
    LLMError,
    LLMUnreachable,
    NoAnswer,
    Usage,
    run_sync,
)
from datamill.llm.structured import StructuredOutputError, extract_json, generate_json

__all__ = [
    "Cache",
    "Completion",
    "LLMClient",
    "LLMConfig",
    "LLMError",
    "LLMUnreachable",
    "NoAnswer",
    "StructuredOutputError",
    "Usage",
    "extract_json",
    "generate_json",
    "make_key",
    "run_sync",
]

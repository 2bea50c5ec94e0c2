"""The tokenizers behind ``count_tokens``/``cutoff_len``, ``mix`` by tokens and the report:
``get_tokenizer(spec)`` (one per spec and process; ``embedded``, a tokenizer.json or a .gguf — see
``datamill.select.tokens``) and ``record_tokens`` (prompt / response / total of a record)."""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Any

from datamill.errors import DatamillError
from datamill.record import Record

_CACHE: dict[str, Tokenizer] = {}
_LOCK = threading.Lock()


class Tokenizer:
    """``count(text) -> int`` over one of the supported backends (see the module docstring)."""

    def __init__(self, spec: str):
        self.spec = spec
        self.name, self._encode, self._count = _load(spec)

    def count(self, text: str) -> int:
        return self._count(text) if text else 0

    def encode(self, text: str) -> list[int]:
        return list(self._encode(text)) if text else []


def _load(spec: str) -> tuple[str, Any, Any]:
    """(name, encode, count) of the tokenizer ``spec`` names."""
    if spec == "embedded":
        from datamill.llm.embedded import default_model_path

        return _load_gguf(default_model_path())
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.exists():
        raise DatamillError(
            f"tokenizer not found: {spec} (give 'embedded', a tokenizer.json file or directory, or a .gguf file)"
        )
    if path.suffix == ".gguf":
        return _load_gguf(path)
    try:
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError:
        raise DatamillError("a tokenizer.json needs the tokenizers package: pip install tokenizers") from None
    try:
        tok = HFTokenizer.from_file(str(path))
    except Exception as e:  # the tokenizers error type is not exported
        raise DatamillError(f"{path}: not a Hugging Face tokenizer.json ({e})") from None
    tok.no_padding()  # some files pad or truncate to a fixed length: we want the true count
    tok.no_truncation()
    encode = lambda text: tok.encode(text, add_special_tokens=False).ids  # noqa: E731
    return path.parent.name or path.name, encode, lambda text: len(encode(text))


def _load_gguf(path: Path) -> tuple[str, Any, Any]:
    try:
        import llama_cpp
    except ImportError:
        raise DatamillError("a GGUF tokenizer needs llama-cpp-python: pip install 'datamill[llm]'") from None
    from datamill.llm.embedded import _quiet_llama_logs

    _quiet_llama_logs()
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    atexit.register(llm.close)  # freeing it during interpreter teardown prints an ignored exception
    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    def count(text: str) -> int:
        # with no room for tokens llama.cpp returns minus how many there are: no buffer to fill. (The
        # wrapper's tokenize allocates one of the training context's size per call: 1.5x slower.)
        data = text.encode("utf-8")
        return -llama_cpp.llama_tokenize(vocab, data, len(data), None, 0, False, False)

    return path.stem, lambda text: llm.tokenize(text.encode("utf-8"), add_bos=False, special=False), count


def get_tokenizer(spec: str = "embedded") -> Tokenizer:
    """One tokenizer per spec and process (workers load it lazily, once)."""
    with _LOCK:
        if spec not in _CACHE:
            _CACHE[spec] = Tokenizer(spec)
        return _CACHE[spec]


def record_tokens(record: Record, tok: Tokenizer, per_turn: int = 0) -> dict[str, int]:
    """{"prompt", "response", "total"} tokens of one record (see the module docstring)."""
    if record.text is not None:
        n = tok.count(record.text)
        return {"prompt": 0, "response": n, "total": n}
    prompt = tok.count(record.system or "") + (per_turn if record.system else 0)
    response = 0
    pair_record = record.chosen is not None or record.rejected is not None
    for m in record.messages:
        n = tok.count(m.content) + per_turn
        if m.role in ("assistant", "function") and not pair_record:
            response += n
        else:
            prompt += n
    pair = [tok.count(m.content) + per_turn for m in (record.chosen, record.rejected) if m is not None]
    response += max(pair, default=0)
    return {"prompt": prompt, "response": response, "total": prompt + response}

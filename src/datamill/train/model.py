"""The base model and tokenizer: a local model directory the user names, or the embedded Gemma 3 270M
converted once from the shipped GGUF into a cached transformers checkpoint; CUDA with bf16 when present,
else CPU in float32; QLoRA's 4-bit base only where bitsandbytes and CUDA are."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamill.errors import DatamillError

EMBEDDED = "embedded"


@dataclass(frozen=True)
class Device:
    name: str  # cuda | cpu
    bf16: bool

    @property
    def dtype(self) -> Any:
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32


def pick_device() -> Device:
    """CUDA (bf16 where the GPU supports it) when present, else CPU in float32 (bf16 on CPU is slower)."""
    import torch

    if torch.cuda.is_available():
        return Device("cuda", torch.cuda.is_bf16_supported())
    return Device("cpu", False)


def cache_root() -> Path:
    """``$DATAMILL_CACHE`` or ~/.cache/datamill: where the converted embedded model is kept."""
    return Path(os.environ.get("DATAMILL_CACHE") or Path.home() / ".cache" / "datamill")


def embedded_checkpoint() -> Path:
    """The embedded Gemma 3 270M as a transformers checkpoint, converted from the shipped Q4_K_M GGUF on
    first use (about a minute and 2.6 GB of memory on CPU; needs the ``gguf`` package) and cached under
    ``cache_root()/models``. Written to a temporary folder and renamed under a lock, so a kill -9 or a
    second process never leaves a half-written model."""
    from datamill.llm.embedded import default_model_path

    gguf = default_model_path()
    target = cache_root() / "models" / f"{gguf.stem}-transformers"
    if (target / "config.json").is_file():
        return target
    try:
        import gguf as _  # noqa: F401  transformers reads GGUF through it
    except ImportError:
        raise DatamillError(
            "converting the embedded model needs the gguf package: pip install 'datamill[train]'"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").is_file():
            return target
        tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
        try:
            convert_gguf(gguf, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(gguf: Path, out: Path) -> float:
    """Dequantize a Gemma 3 GGUF into a bf16 transformers checkpoint in ``out``; returns the seconds taken.
    The GGUF of a base model carries no chat template: Gemma 3's own is added (TRL's training variant, which
    marks the answer with ``{% generation %}`` so SFT can train on answers only), and generation stops at
    ``<end_of_turn>`` as well as ``<eos>``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.chat_template_utils import gemma3_training_chat_template

    start = time.monotonic()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    model.hf_quantizer = None  # the weights are dequantized: nothing quantized is left to refuse saving
    model.config.__dict__.pop("quantization_config", None)
    tok.chat_template = gemma3_training_chat_template
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    model.generation_config.eos_token_id = [tok.eos_token_id, end_of_turn]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return time.monotonic() - start


def resolve(model: str | None) -> str:
    """A model directory (or a Hugging Face name transformers can resolve itself); None: the embedded one."""
    if model is None or model == EMBEDDED:
        return str(embedded_checkpoint())
    path = Path(model).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise DatamillError(f"{model}: not a transformers model directory (no config.json)")
    return str(path.resolve()) if path.exists() else model  # absolute: train.json names it for a later eval


def load_tokenizer(path: str, needs_template: bool = True) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise DatamillError(f"cannot load a tokenizer from {path}: {e}") from None
    if needs_template and not tok.chat_template:
        raise DatamillError(
            f"{path}: the tokenizer has no chat template; sft, dpo and kto apply one (pt does not) — "
            "use an instruct model's tokenizer or add a chat_template to its tokenizer_config.json"
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def require_qlora(device: Device) -> Any:
    """The 4-bit quantization config QLoRA loads the base with; a DatamillError where it cannot run."""
    if device.name != "cuda":
        raise DatamillError(
            "--method qlora needs a CUDA GPU (bitsandbytes' 4-bit kernels); this machine has none. "
            "Use --method lora: the same adapter on a full-precision base"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise DatamillError("--method qlora needs bitsandbytes: pip install bitsandbytes") from None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if device.bf16 else torch.float16,
    )


def load_model(path: str, device: Device, quantization: Any = None) -> Any:
    """The causal LM at ``path`` on ``device`` (4-bit when ``quantization`` is given)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": device.dtype}
    if quantization is not None:
        kwargs |= {"quantization_config": quantization, "device_map": {"": 0}}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise DatamillError(f"cannot load a causal language model from {path}: {e}") from None
    return model if quantization is not None else model.to(device.name)

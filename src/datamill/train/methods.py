"""The fine-tuning methods as PEFT configs (``full`` trains every weight: no adapter), with the learning
rate each usually wants: an adapter of a few thousand parameters needs a far larger step than the full
model, and preference stages a smaller one than SFT."""

from __future__ import annotations

from typing import Any, Literal

Method = Literal["lora", "qlora", "prompt_tuning", "prefix_tuning", "full"]
METHODS: tuple[str, ...] = ("lora", "qlora", "prompt_tuning", "prefix_tuning", "full")
LEARNING_RATE = {"lora": 2e-4, "qlora": 2e-4, "prompt_tuning": 3e-2, "prefix_tuning": 1e-2, "full": 2e-5}
PREFERENCE_SCALE = 0.1  # dpo / kto: a tenth of the SFT rate (LLaMA-Factory's examples: 5e-6 vs 1e-4 for LoRA)


def default_lr(method: str, stage: str) -> float:
    return LEARNING_RATE[method] * (PREFERENCE_SCALE if stage in ("dpo", "kto") else 1.0)


def peft_config(method: str, lora_r: int = 8, virtual_tokens: int = 20) -> Any:
    """The PEFT config of ``method``; None for ``full``."""
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, PromptTuningInit

    if method in ("lora", "qlora"):
        return LoraConfig(
            r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    if method == "prompt_tuning":  # start from real token embeddings: a random start is far off their scale
        return PromptTuningConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=virtual_tokens, prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB
        )
    if method == "prefix_tuning":
        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=virtual_tokens)
    if method == "full":
        return None
    raise ValueError(f"unknown method {method!r}")

"""``evaluate``: a base model, optionally with a trained RUN's adapter (or a fully fine-tuned RUN), on held-out
data — the loss and perplexity on the answer tokens (every token of pretraining text), token-weighted over
the whole set; then greedy generations scored against the references (``scores``) and, with a judge, the
tuned model's win rate against its base on the same prompts (``judging``) — into ``eval.json``.

Answer tokens are found as TRL's prompt-completion form does: the chat template rendered for the prompt
with the generation prompt, then for prompt + answer; what the second adds is the answer."""

from __future__ import annotations

import gc
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from datamill.errors import DatamillError
from datamill.record import Record
from datamill.train import data, forms, scores
from datamill.train import model as models
from datamill.train.run import versions


@dataclass
class EvalConfig:
    __pydantic_config__ = ConfigDict(extra="forbid")  # a recipe's eval: block is checked against the fields

    model: str | None = None  # the base; None: the adapter run's base, else the embedded model
    adapter: str | None = None  # a RUN folder of `datamill train`
    fmt: str | None = None
    limit: int | None = None  # the first N records only
    cutoff_len: int = 1024
    max_new_tokens: int = 256
    batch_size: int = 4
    generate: bool = True
    judge: str | None = None  # embedded | an endpoint's base URL: win rate of the adapter against its base
    judge_model: str | None = None
    judge_key_env: str | None = None
    lm_eval: list[str] | None = None  # lm-evaluation-harness task names, on the base and with the adapter
    lm_eval_include: list[str] | None = None  # the folders holding those task YAMLs (local data only)


@dataclass
class Item:
    """One held-out example: ``prompt`` messages and the ``answer`` messages scored (or ``text`` for
    pretraining), and the ``reference`` generations are compared with (None: loss only)."""

    prompt: list[dict[str, Any]] | None
    answer: list[dict[str, Any]] | None
    text: str | None = None
    reference: str | None = None


def item(rec: Record) -> Item | None:
    """The item a record gives (an undesirable KTO answer or a record without an answer gives none)."""
    if rec.kind == "pretrain":
        return Item(None, None, text=rec.text) if rec.text else None
    reference = rec.meta.get("reference")
    if rec.kind == "preference":
        if rec.chosen is None or not rec.messages:
            return None
        prompt, answer = forms.conversation(rec), forms.to_turns([rec.chosen])
    elif rec.kind == "kto" and not rec.label:
        return None
    else:
        split = forms.split_last_answer(rec)
        if split is None:
            return None
        prompt, answer = split
    if not isinstance(reference, str):
        reference = str(answer[0].get("content") or "")
    return Item(prompt, answer, reference=reference or None)


def locate(model: str | None, adapter: str | None) -> tuple[str, str | None]:
    """(base model path, adapter path or None). A fully fine-tuned RUN is itself the model; a LoRA / prompt /
    prefix RUN names its base in train.json, which ``model`` overrides."""
    if adapter is None:
        return models.resolve(model), None
    run = Path(adapter)
    if (run / "adapter_config.json").is_file():
        info = run / "train.json"
        trained_on = json.loads(info.read_text(encoding="utf-8")).get("model") if info.is_file() else None
        return models.resolve(model or trained_on), str(run)
    if (run / "config.json").is_file():
        return str(run), None
    raise DatamillError(
        f"{adapter}: neither an adapter (adapter_config.json) nor a model (config.json); train into it first"
    )


def encode(tokenizer: Any, it: Item, cutoff_len: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) with -100 over the prompt, cut to ``cutoff_len`` tokens."""
    if it.text is not None:
        ids = tokenizer(it.text, add_special_tokens=True)["input_ids"] + [tokenizer.eos_token_id]
        ids = ids[:cutoff_len]
        return ids, list(ids)
    prompt = chat_ids(tokenizer, it.prompt, add_generation_prompt=True)
    full = chat_ids(tokenizer, it.prompt + it.answer)[:cutoff_len]
    n = min(len(prompt), len(full))
    return full, [-100] * n + full[n:]


def chat_ids(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=False
    )
    return list(out)


def _batches(seq: list[Any], size: int) -> list[list[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def heldout_loss(model: Any, tokenizer: Any, items: list[Item], config: EvalConfig, device: str) -> dict[str, Any]:
    """Token-weighted mean negative log-likelihood of the answer tokens, and its perplexity."""
    import torch

    encoded = [encode(tokenizer, it, config.cutoff_len) for it in items]
    total, tokens = 0.0, 0
    pad = tokenizer.pad_token_id
    for batch in _batches(encoded, config.batch_size):
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=device)
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=device)
        counted = int((labels[:, 1:] != -100).sum())
        if not counted:
            continue
        with torch.no_grad():
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        total += float(loss) * counted  # the model's loss is the mean over the batch's counted tokens
        tokens += counted
    if not tokens:
        raise DatamillError("no answer token left to score (every answer cut off by --cutoff-len?)")
    mean = total / tokens
    return {"mean": round(mean, 6), "perplexity": round(math.exp(mean), 4), "tokens": tokens, "items": len(items)}


def generate(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, Any]]], config: EvalConfig, device: str
) -> list[str]:
    """Greedy answers, left-padded in batches."""
    import torch

    out: list[str] = []
    pad = tokenizer.pad_token_id
    for batch in _batches([chat_ids(tokenizer, p, add_generation_prompt=True) for p in prompts], config.batch_size):
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
        with torch.no_grad():
            made = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=config.max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        out.extend(tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in made)
    return out


def evaluate(data_path: str | Path, config: EvalConfig) -> dict[str, Any]:
    """Score ``config``'s model on ``data_path``'s held-out records; returns what eval.json holds."""
    device = models.pick_device()
    base, adapter = locate(config.model, config.adapter)
    if config.judge and adapter is None:
        raise DatamillError("--judge compares an adapter with its base: give --adapter RUN (a lora/prompt/prefix run)")
    if config.lm_eval:  # the task files are checked before any model loads
        from datamill.train import harness

        tasks = harness.task_configs(config.lm_eval, config.lm_eval_include or [])
    files = data.data_files(data_path, "heldout")
    recs, seen, bad = data.records(files, config.fmt, config.limit)
    made = [(rec, it) for rec in recs if (it := item(rec)) is not None]
    if not made:
        raise DatamillError(f"{data_path}: no held-out record with an answer or text to score")
    items = [it for _, it in made]
    has_chat = any(it.prompt is not None for it in items)
    tokenizer = models.load_tokenizer(adapter or base, needs_template=has_chat)
    tokenizer.padding_side = "left"
    model = models.load_model(base, device)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    result: dict[str, Any] = {
        "model": base,
        "adapter": adapter,
        "data": {
            "paths": [str(f) for f in files],
            **data.fingerprint(files),
            "records": seen,
            "quarantined": bad,
            "items": len(items),
        },
        "config": asdict(config),
        "device": {"name": device.name, "bf16": device.bf16},
        "versions": versions(),
    }
    started = time.monotonic()
    result["loss"] = heldout_loss(model, tokenizer, items, config, device.name)
    result["loss"]["on"] = "answer tokens" if has_chat else "all tokens"
    result["loss"]["seconds"] = round(time.monotonic() - started, 2)
    asked = [(rec, it) for rec, it in made if it.prompt is not None and it.reference]
    if config.generate and asked:
        started = time.monotonic()
        outputs = generate(model, tokenizer, [it.prompt for _, it in asked], config, device.name)
        samples = []
        for (rec, it), text in zip(asked, outputs, strict=True):
            prompt = next((m["content"] for m in reversed(it.prompt) if m["role"] == "user"), "")
            samples.append(
                {
                    "id": rec.id,
                    "prompt": prompt,
                    "reference": it.reference,
                    "output": text,
                    **scores.score(text, it.reference),
                }
            )
        result["generation"] = {
            "items": len(samples),
            "max_new_tokens": config.max_new_tokens,
            "seconds": round(time.monotonic() - started, 2),
        }
        result |= scores.summarize(samples)
        if config.judge:
            result["judge"] = _judge_against_base(model, tokenizer, asked, outputs, samples, config, device.name)
        result["samples"] = samples
    if config.lm_eval:  # lm-eval loads the models itself: this copy goes first
        del model
        gc.collect()
        pairs = _harness_models(config, base, adapter, device)
        include = config.lm_eval_include or []
        result["lm_eval"] = harness.run(
            config.lm_eval, include, tasks, pairs, limit=config.limit, batch_size=config.batch_size
        )
    return result


def _harness_models(config: EvalConfig, base: str, adapter: str | None, device: Any) -> list[tuple[str, dict]]:
    """lm-eval ``hf`` model args for the ``base`` and, when there is one, the ``tuned`` model: base + adapter, or a
    fully fine-tuned RUN against the base its train.json names."""
    common = {"device": device.name, "dtype": str(device.dtype).removeprefix("torch.")}
    if adapter is not None:
        tuned = {"pretrained": base, "peft": adapter, "tokenizer": adapter}
        return [("base", {**common, "pretrained": base}), ("tuned", {**common, **tuned})]
    info = Path(config.adapter or "") / "train.json"
    if config.adapter and info.is_file():  # a full run: ``base`` is the RUN itself, trained from train.json's model
        trained_on = models.resolve(json.loads(info.read_text(encoding="utf-8")).get("model"))
        return [("base", {**common, "pretrained": trained_on}), ("tuned", {**common, "pretrained": base})]
    return [("base", {**common, "pretrained": base})]


def _judge_against_base(
    model: Any,
    tokenizer: Any,
    asked: list[tuple[Record, Item]],
    tuned: list[str],
    samples: list[dict[str, Any]],
    config: EvalConfig,
    device: str,
) -> dict[str, Any]:
    """The base model's answers (the adapter switched off) and the judge's verdict on each pair."""
    from datamill.prefs.candidates import prompt_text
    from datamill.train import judging

    started = time.monotonic()
    with model.disable_adapter():
        base = generate(model, tokenizer, [it.prompt for _, it in asked], config, device)
    report = judging.win_rate(
        [prompt_text(rec) for rec, _ in asked],
        tuned,
        base,
        judging.judge_config(config.judge, config.judge_model, config.judge_key_env),
    )
    for sample, answer, winner, margin in zip(samples, base, report.pop("winners"), report.pop("margins"), strict=True):
        sample |= {"base_output": answer, "judge_winner": winner, "judge_margin": margin}
    report["seconds"] = round(time.monotonic() - started, 2)
    return report

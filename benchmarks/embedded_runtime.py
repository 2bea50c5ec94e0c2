"""The embedded model's runtime: llama-cpp-python vs transformers (GGUF loading), same model, same
prompts, greedy decoding, on this machine's CPU.

    .venv/bin/pip install gguf          # transformers needs it to read GGUF files
    .venv/bin/python benchmarks/embedded_runtime.py [--tokens 64] [--threads 1]

Prints load time, prompt and generation tokens/s and peak RSS for each, and the ratio. Each runtime
runs in its own subprocess so their memory does not mix.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PROMPTS = [
    "Question: What is the capital of France?\nAnswer:",
    "问题：长城有多长？\n回答：",
    "Write one sentence about the sea.\n",
]


def run_llama(tokens: int, threads: int) -> dict:
    from llama_cpp import Llama

    from datamill.llm.embedded import default_model_path

    start = time.perf_counter()
    llm = Llama(str(default_model_path()), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
    load = time.perf_counter() - start
    gen = prompt = 0
    gen_s = 0.0
    for text in PROMPTS:
        t = time.perf_counter()
        out = llm.create_completion(text, max_tokens=tokens, temperature=0.0)
        gen_s += time.perf_counter() - t
        gen += out["usage"]["completion_tokens"]
        prompt += out["usage"]["prompt_tokens"]
    llm.close()
    return {"load_s": load, "tokens": gen, "prompt_tokens": prompt, "seconds": gen_s}


def run_transformers(tokens: int, threads: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datamill.llm.embedded import default_model_path

    torch.set_num_threads(threads)
    path = default_model_path()
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, torch_dtype=torch.float32)
    model.eval()
    load = time.perf_counter() - start
    gen = prompt = 0
    gen_s = 0.0
    with torch.inference_mode():
        for text in PROMPTS:
            ids = tok(text, return_tensors="pt")
            t = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=tokens, do_sample=False, min_new_tokens=tokens)
            gen_s += time.perf_counter() - t
            gen += out.shape[1] - ids["input_ids"].shape[1]
            prompt += ids["input_ids"].shape[1]
    return {"load_s": load, "tokens": int(gen), "prompt_tokens": int(prompt), "seconds": gen_s}


def child(which: str, tokens: int, threads: int) -> None:
    result = (run_llama if which == "llama-cpp-python" else run_transformers)(tokens, threads)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", choices=["llama-cpp-python", "transformers"])
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.tokens, args.threads)
    results = {}
    for which in ("llama-cpp-python", "transformers"):
        cmd = [sys.executable, __file__, "--child", which, "--tokens", str(args.tokens), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(f"{which}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results[which] = r
        print(
            f"{which:17s} load {r['load_s']:6.2f} s  generate {r['tokens'] / r['seconds']:6.1f} tok/s "
            f"({r['tokens']} tokens, {len(PROMPTS)} prompts)  peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    if len(results) == 2:
        a, b = results["llama-cpp-python"], results["transformers"]
        ratio = (a["tokens"] / a["seconds"]) / (b["tokens"] / b["seconds"])
        print(f"llama-cpp-python / transformers generation speed: {ratio:.1f}x")


if __name__ == "__main__":
    main()

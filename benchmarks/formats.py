"""Benchmark: alpaca → sharegpt with ``datamill convert`` vs Hugging Face ``datasets``.

    python benchmarks/formats.py                # 1,000,000 records (default)
    python benchmarks/formats.py --n 100000     # quicker

What it does, in one run:

1. Generates N synthetic alpaca records (JSONL) into the work dir (default ``benchmarks/_work/``,
   git-ignored), deterministically from ``--seed``: English, Chinese and mixed text of varied,
   long-tailed lengths, an ``input`` on ~40% of records, a ``system`` prompt on ~20% and a
   ``history`` of [user, assistant] pairs on ~15%. An existing file with the same N and seed is
   reused.
2. Converts that file with each tool in a fresh subprocess, timing it and sampling the peak RSS of
   the child's whole process tree (``/proc`` polling via psutil; cross-checked with ``ru_maxrss``
   from ``os.wait4``):
   a. datamill — ``datamill.convert(IN, OUT, "sharegpt")`` (what ``datamill convert IN OUT --to
      sharegpt`` runs; ``--datamill-cli`` times the real CLI instead);
   b. datasets — ``load_dataset("json", ..., cache_dir=<fresh temp dir>)`` + ``.map(alpaca→sharegpt,
      remove_columns=[alpaca columns])`` + ``.to_json(OUT)``.
3. Checks both outputs have N lines and that sampled records (``--sample``, 0 = all) hold the same
   system prompt and conversation turns in both outputs and as computed from the input, then
   prints a table with seconds, records/s, peak RSS and the datamill/datasets throughput ratio.

Exit status: 0 when all checks pass, 1 when an output has the wrong line count or records differ.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_WORK = HERE / "_work"
GENERATOR_VERSION = 1  # bump when the generated data changes, so stale files are not reused
ALPACA_COLUMNS = ("instruction", "input", "output", "history")  # `system` is kept as a column

# --------------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------------

EN_WORDS = """the of and to in is that for it as with was on be by this are from or an at which
have not but they one all were we when your can said there use each she do how their if will up
other about out many then them these so some her would make like him into time has look two more
write go see number no way could people my than first water been call who oil its now find long
down day did get come made may part model data training dataset token prompt answer question
function return value list string number table file system memory network server client request
response error result python code example explain summarize translate classify describe compare
write improve rewrite list steps reason because therefore however example following given input
output sentence paragraph article story poem email letter recipe plan schedule budget report""".split()  # noqa: SIM905

EN_STARTS = [
    "Explain", "Summarize", "Write", "Translate", "Describe", "List", "Give", "Rewrite", "Classify",
    "Compare", "Generate", "Suggest", "Find", "Identify", "Create", "Outline",
]

ZH_PHRASES = """请解释 下面的 句子 机器学习 是 人工智能 的 一个 分支 它 使 计算机 能够 从 数据 中 学习
我们 需要 考虑 以下 几个 方面 首先 其次 最后 总之 这个 问题 的 答案 取决于 具体 情况 例如 在 大多数
情况下 模型 会 根据 输入 生成 输出 训练 数据 的 质量 非常 重要 请 用 简洁 的 语言 回答 翻译 成 英文
写 一篇 关于 春天 的 短文 北京 上海 广州 深圳 天气 很 好 今天 明天 昨天 学生 老师 学校 医院 公司
经济 发展 社会 文化 历史 科学 技术 创新 环境 保护 健康 饮食 运动 睡眠 时间 管理 效率 计划 目标
用户 助手 对话 指令 回复 推理 步骤 计算 结果 代码 函数 变量 数组 字符串 错误 调试 优化 性能""".split()  # noqa: SIM905

EN_SYSTEMS = [
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in at most three sentences.",
    "You are an expert Python programmer. Explain your reasoning step by step.",
    "You are a careful translator between English and Chinese.",
]
ZH_SYSTEMS = [
    "你是一个乐于助人的助手。",
    "你是一名专业的翻译，请准确地在中英文之间翻译。",
    "你是一位耐心的老师，请一步一步地解释。",
]

CODE_SNIPPETS = [
    'def add(a, b):\n    """Return the sum."""\n    return a + b\n',
    "for i in range(10):\n\tprint(i, end=\", \")\n",
    'SELECT name, count(*) FROM users WHERE city = "Beijing" GROUP BY name;\n',
    "{\"key\": [1, 2, 3], \"path\": \"C:\\\\data\\\\file.txt\"}\n",
    "if (x < 0 && y > 0) { return -1; } // edge case\n",
]


def _en_corpus(rng: random.Random, chars: int) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        r = rng.random()
        if r < 0.03:
            s = "\n```python\n" + rng.choice(CODE_SNIPPETS) + "```\n"
        elif r < 0.06:
            s = f'"{rng.choice(EN_WORDS)} {rng.choice(EN_WORDS)}" '
        else:
            words = rng.choices(EN_WORDS, k=rng.randint(4, 24))
            words[0] = words[0].capitalize()
            s = " ".join(words) + rng.choice([". ", ". ", ". ", "? ", "! ", ".\n", ".\n\n", "; ", ": "])
        parts.append(s)
        size += len(s)
    return "".join(parts)


def _zh_corpus(rng: random.Random, chars: int, english_share: float = 0.0) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        k = rng.randint(4, 20)
        words = [rng.choice(EN_WORDS) if rng.random() < english_share else rng.choice(ZH_PHRASES)
                 for _ in range(k)]
        s = "".join(words) + rng.choice(["，", "。", "。", "？", "！", "：", "；", "。\n", "“引用”", "（注释）"])
        parts.append(s)
        size += len(s)
    return "".join(parts)


class Generator:
    """Deterministic alpaca rows; text is sliced out of pre-built corpora so 1M rows take seconds."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        crng = random.Random(seed ^ 0x5EED)
        self.corpora = {
            "en": _en_corpus(crng, 4_000_000),
            "zh": _zh_corpus(crng, 1_500_000),
            "mix": _zh_corpus(crng, 1_000_000, english_share=0.25),
        }

    def text(self, lang: str, median: float, sigma: float, lo: int, hi: int) -> str:
        rng = self.rng
        corpus = self.corpora[lang]
        n = int(min(hi, max(lo, rng.lognormvariate(0, sigma) * median)))
        start = rng.randrange(len(corpus) - n)
        s = corpus[start:start + n].strip()
        return s or "ok"

    def row(self) -> dict[str, Any]:
        rng = self.rng
        r = rng.random()
        lang_q, lang_a = ("en", "en") if r < 0.55 else ("zh", "zh") if r < 0.85 else \
            rng.choice([("zh", "en"), ("en", "zh"), ("mix", "mix")])
        scale_q = 1.0 if lang_q == "en" else 0.45  # Chinese says the same in fewer characters
        scale_a = 1.0 if lang_a == "en" else 0.45
        instruction = self.text(lang_q, 60 * scale_q, 0.8, 6, 1500)
        if lang_q == "en" and rng.random() < 0.5:
            instruction = f"{rng.choice(EN_STARTS)} {instruction[0].lower()}{instruction[1:]}"
        row: dict[str, Any] = {
            "instruction": instruction,
            "input": self.text(lang_q, 150 * scale_q, 1.0, 5, 4000) if rng.random() < 0.4 else "",
            "output": self.text(lang_a, 350 * scale_a, 1.0, 10, 8000),
        }
        if rng.random() < 0.2:
            if rng.random() < 0.7:
                row["system"] = rng.choice(EN_SYSTEMS if lang_q == "en" else ZH_SYSTEMS)
            else:
                row["system"] = self.text(lang_q, 200 * scale_q, 0.6, 20, 1200)
        if rng.random() < 0.15:
            row["history"] = [
                [self.text(lang_q, 60 * scale_q, 0.8, 4, 1000), self.text(lang_a, 250 * scale_a, 1.0, 8, 4000)]
                for _ in range(rng.randint(1, 4))
            ]
        return row


def ensure_input(work: Path, n: int, seed: int, regen: bool = False) -> Path:
    """The alpaca JSONL for (n, seed); generated once, reused while its sidecar says it matches."""
    import orjson

    path = work / f"alpaca_n{n}_seed{seed}.jsonl"
    meta_path = path.with_suffix(".meta.json")
    want = {"n": n, "seed": seed, "generator_version": GENERATOR_VERSION}
    if not regen and path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in want} == want and meta.get("bytes") == path.stat().st_size:
            print(f"reusing {path} ({n:,} records, {path.stat().st_size / 1e6:,.0f} MB)")
            return path
    work.mkdir(parents=True, exist_ok=True)
    print(f"generating {n:,} alpaca records → {path} …", flush=True)
    t0 = time.perf_counter()
    gen = Generator(seed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb", buffering=1 << 20) as f:
        for _ in range(n):
            f.write(orjson.dumps(gen.row()) + b"\n")
    os.replace(tmp, path)
    meta_path.write_text(json.dumps({**want, "bytes": path.stat().st_size}) + "\n")
    print(f"  done in {time.perf_counter() - t0:.1f}s, {path.stat().st_size / 1e6:,.0f} MB")
    return path


# --------------------------------------------------------------------------------------------------
# The two converters (run inside a child process: `formats.py _child TOOL ...`)
# --------------------------------------------------------------------------------------------------

def alpaca_to_sharegpt(ex: dict[str, Any]) -> dict[str, Any]:
    """Same semantics as datamill: history pairs as human/gpt turns, then human: instruction + "\\n"
    + input (input only when non-empty), gpt: output. ``system`` stays a column."""
    conv = []
    for user, assistant in ex.get("history") or ():
        conv.append({"from": "human", "value": user})
        conv.append({"from": "gpt", "value": assistant})
    conv.append({"from": "human", "value": "\n".join(p for p in (ex["instruction"], ex.get("input")) if p)})
    conv.append({"from": "gpt", "value": ex["output"]})
    return {"conversations": conv}


def alpaca_to_sharegpt_batched(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    n = len(batch["instruction"])
    histories = batch.get("history") or [None] * n
    inputs = batch.get("input") or [None] * n
    out = []
    for hist, ins, inp, outp in zip(histories, batch["instruction"], inputs, batch["output"], strict=True):
        out.append(alpaca_to_sharegpt({"history": hist, "instruction": ins, "input": inp, "output": outp})
                   ["conversations"])
    return {"conversations": out}


def child_datamill(src: str, dst: str) -> dict[str, Any]:
    import datamill

    t0 = time.perf_counter()
    s = datamill.convert(src, dst, "sharegpt")
    t1 = time.perf_counter()
    return {"seconds": t1 - t0, "read": s.read, "written": s.written, "quarantined": s.quarantined,
            "warnings": dict(s.warnings), "detected": s.detected,
            "version": datamill.__version__}


def child_datasets(src: str, dst: str, cache_dir: str, num_proc: int, batched: bool) -> dict[str, Any]:
    import datasets

    nproc = num_proc if num_proc > 1 else None
    t0 = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=src, split="train", cache_dir=cache_dir, num_proc=nproc)
    t1 = time.perf_counter()
    remove = [c for c in ALPACA_COLUMNS if c in ds.column_names]
    fn = alpaca_to_sharegpt_batched if batched else alpaca_to_sharegpt
    ds = ds.map(fn, batched=batched, remove_columns=remove, num_proc=nproc)
    t2 = time.perf_counter()
    # force_ascii=False: write UTF-8 like datamill does (pandas' default escapes every CJK char)
    ds.to_json(dst, num_proc=nproc, force_ascii=False)
    t3 = time.perf_counter()
    return {"seconds": t3 - t0, "read": ds.num_rows, "written": ds.num_rows,
            "phases": {"load_dataset": t1 - t0, "map": t2 - t1, "to_json": t3 - t2},
            "version": datasets.__version__}


def child_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="formats.py _child")
    p.add_argument("tool", choices=["datamill", "datasets"])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--result", required=True)
    p.add_argument("--cache-dir")
    p.add_argument("--num-proc", type=int, default=1)
    p.add_argument("--batched", action="store_true")
    a = p.parse_args(argv)
    if a.tool == "datamill":
        res = child_datamill(a.src, a.dst)
    else:
        res = child_datasets(a.src, a.dst, a.cache_dir, a.num_proc, a.batched)
    Path(a.result).write_text(json.dumps(res))


# --------------------------------------------------------------------------------------------------
# Measuring a child process
# --------------------------------------------------------------------------------------------------

def _proc_status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of one process in kB, from /proc (0, 0 if it is gone)."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"RssAnon:"):
                    anon = int(line.split()[1])
                    break
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return rss, anon


def run_measured(cmd: list[str], env: dict[str, str], log: Path, interval: float = 0.05) -> dict[str, Any]:
    """Run ``cmd``; wall time, peak summed RSS/RssAnon of its process tree, ru_maxrss, exit code."""
    import psutil

    peak_rss = peak_anon = 0
    samples = 0
    with open(log, "wb") as logf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        root = psutil.Process(proc.pid)
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                wall = time.perf_counter() - t0
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            try:
                pids = [proc.pid] + [c.pid for c in root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pids = [proc.pid]
            rss = anon = 0
            for p in pids:
                r, a = _proc_status_kb(p)
                rss += r
                anon += a
            peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
            samples += 1
            time.sleep(interval)
    return {"wall": wall, "returncode": proc.returncode, "cpu": ru.ru_utime + ru.ru_stime,
            "peak_rss_mb": peak_rss / 1024,
            "peak_anon_mb": peak_anon / 1024, "ru_maxrss_mb": ru.ru_maxrss / 1024, "samples": samples}


def warm_cache(path: Path) -> None:
    """Read the input once so every tool starts with it in the page cache."""
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def bench_tool(tool: str, src: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    dst = work / f"out_{tool}_sharegpt.jsonl"
    dst.unlink(missing_ok=True)
    result_file = work / f".result_{tool}.json"
    result_file.unlink(missing_ok=True)
    log = work / f"formats_{tool}.log"
    tmp = Path(tempfile.mkdtemp(prefix=f"hf_{tool}_", dir=work))  # fresh cache per run
    env = dict(os.environ, HF_HOME=str(tmp / "hf_home"), HF_DATASETS_CACHE=str(tmp / "cache"),
               HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    if tool == "datamill" and args.datamill_cli:
        exe = Path(sys.executable).with_name("datamill")
        cmd = [str(exe) if exe.exists() else "datamill", "convert", str(src), str(dst), "--to", "sharegpt"]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "_child", tool, str(src), str(dst),
               "--result", str(result_file), "--cache-dir", str(tmp / "cache"), "--num-proc", str(args.num_proc)]
        if args.hf_batched:
            cmd.append("--batched")
    warm_cache(src)
    print(f"running {tool}: {' '.join(cmd)}", flush=True)
    try:
        m = run_measured(cmd, env, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if m["returncode"] != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{tool} failed with exit code {m['returncode']}; last output ({log}):\n{tail}")
    inner = json.loads(result_file.read_text()) if result_file.exists() else {}
    result_file.unlink(missing_ok=True)
    m.update(inner)
    m.setdefault("seconds", m["wall"])  # the CLI cannot report its own time: use wall time
    m["peak_mb"] = max(m["peak_rss_mb"], m["ru_maxrss_mb"])
    m["out"] = str(dst)
    print(f"  {m['seconds']:.1f}s (wall {m['wall']:.1f}s, CPU {m['cpu']:.1f}s), peak RSS {m['peak_mb']:.0f} MB"
          + (f", phases {', '.join(f'{k} {v:.1f}s' for k, v in m['phases'].items())}" if "phases" in m else ""),
          flush=True)
    return m


# --------------------------------------------------------------------------------------------------
# Checking the outputs
# --------------------------------------------------------------------------------------------------

Normal = tuple[str | None, list[tuple[str, str]]]


def expected_from_alpaca(row: dict[str, Any]) -> Normal:
    conv = alpaca_to_sharegpt(row)["conversations"]
    return row.get("system") or None, [(t["from"], t["value"]) for t in conv]


def normalize_sharegpt(row: dict[str, Any]) -> Normal:
    """(system, turns). datamill writes the system prompt as a leading ``system`` turn (as LLaMA-Factory
    reads it); the datasets map keeps it as a ``system`` column — both mean the same."""
    turns = [(t["from"], t["value"]) for t in row.get("conversations") or []]
    system = row.get("system")
    if turns and turns[0][0] == "system":
        system, turns = turns[0][1], turns[1:]
    return system or None, turns


def _short(x: Any, width: int = 160) -> str:
    s = repr(x)
    return s if len(s) <= width else s[:width] + f"… ({len(s):,} chars)"


def describe_diff(a: Normal, b: Normal, name_a: str, name_b: str) -> str:
    """Where two (system, turns) first differ, with the differing text around that point."""
    if a[0] != b[0]:
        return f"system differs\n      {name_a}: {_short(a[0])}\n      {name_b}: {_short(b[0])}"
    ta, tb = a[1], b[1]
    if len(ta) != len(tb):
        return (f"{len(ta)} vs {len(tb)} turns\n      {name_a}: {_short([t[0] for t in ta])}\n"
                f"      {name_b}: {_short([t[0] for t in tb])}")
    for k, (x, y) in enumerate(zip(ta, tb, strict=True)):
        if x == y:
            continue
        if x[0] != y[0]:
            return f"turn {k + 1} role: {name_a} {x[0]!r}, {name_b} {y[0]!r}"
        at = next((i for i, (c, d) in enumerate(zip(x[1], y[1], strict=False)) if c != d), min(len(x[1]), len(y[1])))
        lo = max(0, at - 40)
        return (f"turn {k + 1} ({x[0]}) text differs at char {at} (lengths {len(x[1])} vs {len(y[1])})\n"
                f"      {name_a}: …{_short(x[1][lo:at + 60])}\n      {name_b}: …{_short(y[1][lo:at + 60])}")
    return "equal"


def verify(src: Path, outputs: dict[str, str], n: int, sample: int, seed: int) -> bool:
    import orjson

    names = list(outputs)
    if sample and sample < n:
        check = set(random.Random(seed + 1).sample(range(n), sample))
        what = f"{sample:,} sampled records"
    else:
        check = None
        what = f"all {n:,} records"
    print(f"verifying line counts and {what} …", flush=True)
    counts = [0] * (1 + len(names))
    mismatches: list[str] = []
    n_mismatch = {k: 0 for k in names} | {"datamill vs datasets": 0}
    compared = 0
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(path, "rb")) for path in [src, *(outputs[k] for k in names)]]
        for i, lines in enumerate(itertools.zip_longest(*files)):
            for j, line in enumerate(lines):
                if line is not None:
                    counts[j] += 1
            if (check is not None and i not in check) or any(line is None for line in lines):
                continue
            compared += 1
            exp = expected_from_alpaca(orjson.loads(lines[0]))
            got = {k: normalize_sharegpt(orjson.loads(line)) for k, line in zip(names, lines[1:], strict=True)}
            for k in names:
                if got[k] != exp:
                    n_mismatch[k] += 1
                    if len(mismatches) < 6:
                        mismatches.append(f"record #{i} (line {i + 1}): {k} output != expected conversion "
                                          f"of the input: {describe_diff(exp, got[k], 'expected', k)}")
            if len(names) == 2 and got[names[0]] != got[names[1]]:
                n_mismatch["datamill vs datasets"] += 1
                if len(mismatches) < 6:
                    a, b = names
                    mismatches.append(f"record #{i} (line {i + 1}): {a} != {b}: "
                                      f"{describe_diff(got[a], got[b], a, b)}")
    ok = True
    for name, c in zip(["input", *names], counts, strict=True):
        good = c == n
        ok &= good
        print(f"  {name:9} {c:>12,} lines  {'ok' if good else f'MISMATCH: expected {n:,}'}")
    bad = {k: v for k, v in n_mismatch.items() if v}
    if bad:
        ok = False
        print(f"  CONTENT MISMATCH in {compared:,} compared records: "
              + ", ".join(f"{k}: {v:,}" for k, v in bad.items()))
        for m in mismatches:
            print("  " + m)
    else:
        print(f"  content ok: {compared:,} records have the same system + conversations in "
              f"{' and '.join(names)} and match the input")
    return ok


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------

def git_state() -> str:
    """HEAD, plus "+dirty" when src/ has uncommitted changes (the benchmark times the working tree)."""
    root = HERE.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+dirty" if dirty else "")


def table(rows: list[dict[str, Any]], n: int) -> str:
    head = ["tool", "seconds", "records/s", "peak RSS MB", "peak anon MB", "wall s", "CPU s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(head))) + "|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['seconds']:.1f} | {n / r['seconds']:,.0f} | {r['peak_mb']:,.0f} | "
                     f"{r['peak_anon_mb']:,.0f} | {r['wall']:.1f} | {r['cpu']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="records to generate (default 1,000,000)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK, help="where data and outputs go")
    p.add_argument("--num-proc", type=int, default=1,
                   help="processes for datasets' load/map/to_json (default 1; datamill convert is single-process)")
    p.add_argument("--tools", default="datamill,datasets", help="comma-separated subset of datamill,datasets")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool; the median time is reported")
    p.add_argument("--sample", type=int, default=20_000, help="records to compare (0 = all)")
    p.add_argument("--datamill-cli", action="store_true",
                   help="time the real `datamill convert` CLI (wall time incl. start-up) instead of datamill.convert()")
    p.add_argument("--hf-batched", action="store_true", help="use a batched map function for datasets")
    p.add_argument("--regen", action="store_true", help="regenerate the input even if it exists")
    p.add_argument("--keep-outputs", action="store_true", help="keep the converted files (≈ input size each)")
    args = p.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := set(tools) - {"datamill", "datasets"}:
        p.error(f"unknown tools: {', '.join(sorted(unknown))}")

    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    src = ensure_input(work, args.n, args.seed, args.regen)
    if args.num_proc > 1 and "datamill" in tools:
        print(f"note: --num-proc {args.num_proc} applies to datasets only; datamill convert is single-process")

    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average is {load:.1f} before starting; other processes on this machine will "
              "slow both tools (compare the CPU s column, or use --repeat)")
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    for _ in range(args.repeat):  # interleaved, so background noise hits every tool alike
        for tool in tools:
            runs[tool].append(bench_tool(tool, src, work, args))
    results: dict[str, dict[str, Any]] = {}
    for tool, rs in runs.items():
        mid = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]  # the median run
        results[tool] = dict(mid, tool=tool, seconds=statistics.median(r["seconds"] for r in rs),
                             cpu=statistics.median(r["cpu"] for r in rs),
                             wall=statistics.median(r["wall"] for r in rs),
                             peak_mb=max(r["peak_mb"] for r in rs), peak_anon_mb=max(r["peak_anon_mb"] for r in rs),
                             runs=[{k: r[k] for k in ("seconds", "wall", "cpu", "peak_mb")} for r in rs])

    ok = verify(src, {t: results[t]["out"] for t in tools}, args.n, args.sample, args.seed)

    versions = {"python": platform.python_version(), "datamill git": git_state()}
    for pkg in ("pyarrow", "orjson", *tools):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "?"
    print()
    print(f"alpaca → sharegpt, {args.n:,} records, input {src.stat().st_size / 1e6:,.0f} MB, "
          f"num_proc={args.num_proc}{', batched map' if args.hf_batched else ''}, {os.cpu_count()} CPUs, "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(table([results[t] for t in tools], args.n))
    summary: dict[str, Any] = {"n": args.n, "seed": args.seed, "num_proc": args.num_proc,
                               "input_bytes": src.stat().st_size, "versions": versions,
                               "results": results, "checks_ok": ok}
    if "datamill" in results and "datasets" in results:
        ratio = results["datasets"]["seconds"] / results["datamill"]["seconds"]
        summary["throughput_ratio"] = ratio
        dm = results["datamill"]
        print(f"\ndatamill / datasets throughput: {ratio:.2f}x  (target ≥ 1x: {'met' if ratio >= 1 else 'NOT met'})")
        print(f"datamill peak RSS: {dm['peak_mb']:.0f} MB  (target < 500 MB: "
              f"{'met' if dm['peak_mb'] < 500 else 'NOT met'})")
        if dm.get("quarantined"):
            print(f"warning: datamill quarantined {dm['quarantined']:,} records")
    (work / "formats_results.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nresults: {work / 'formats_results.json'}; logs: {work}/formats_<tool>.log")
    if not args.keep_outputs:
        for t in tools:
            Path(results[t]["out"]).unlink(missing_ok=True)
    print("checks: " + ("ok" if ok else "FAILED (see mismatches above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child_main(sys.argv[2:])
    else:
        sys.exit(main())

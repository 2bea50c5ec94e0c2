"""Benchmark: a 3-step mapper/filter pipeline with ``datamill run`` vs datatrove and Data-Juicer.

    .venv/bin/python benchmarks/pipeline.py                 # N = 1,000,000 (default)
    .venv/bin/python benchmarks/pipeline.py --n 100000      # quicker
    .venv/bin/python benchmarks/pipeline.py --peers datatrove --no-small

Peers run from their own venv (default ``benchmarks/_work/peer-venv``, git-ignored), never from the
project venv::

    python3.11 -m venv benchmarks/_work/peer-venv
    benchmarks/_work/peer-venv/bin/pip install datatrove py-data-juicer aiohttp psutil orjson

(py-data-juicer 1.6.1 imports aiohttp without declaring it; on its first run it also installs ray and
torch into that venv by itself, ~5 GB.)

What it does, in one run:

1. Generates N synthetic pretraining records ``{"text": ...}`` (English, Chinese and mixed
   Chinese/English; lengths log-uniform over 20..2000 characters; ~18% carry ``{{name}}`` /
   ``{{ author }}`` / ``{{unknown}}`` placeholders) deterministically from ``--seed`` into
   ``benchmarks/_work/pretrain_n{N}_seed{S}.jsonl`` (reused when present with the same N, seed and
   generator version), plus the same records split in two files for datatrove's 2-task run
   (datatrove shards by file, so one file can only ever feed one task).
2. The pipeline, identical in every tool and in this order:
     a. mapper  — fill ``{{name}}`` and ``{{author}}`` (``{{ x }}`` with spaces too; unknown keys stay)
     b. filter  — keep text with >= 50 characters
     c. filter  — keep text with <= 300 words, where a CJK character counts as one word and any
                  other run of non-space characters as one word (datamill's ``length_filter``
                  definition; the peers get the same regex)
   datamill: a recipe ``fill_placeholders`` → ``length_filter unit: chars min: 50`` →
   ``length_filter unit: words max: 300``, output ``format: pretrain`` (``{"text"}`` lines), run as
   ``datamill run RECIPE -o OUT --workers W``.
   datatrove: ``LocalPipelineExecutor([JsonlReader, FillPlaceholders(PipelineStep),
   LambdaFilter(chars), LambdaFilter(words), JsonlWriter(text only, uncompressed)], tasks=W,
   workers=W)``.
   Data-Juicer: ``DefaultExecutor`` on a config with its built-in ``replace_content_mapper`` (one
   regex per key) and ``text_length_filter``, plus ``cjk_words_num_filter`` — its
   ``words_num_filter`` with only the word count swapped for the regex above, because the
   built-in splits on whitespace (a Chinese sentence is one "word") and its tokenizer mode needs a
   model download. ``np = W``.
3. Every tool runs as a fresh subprocess with the input in the page cache; wall time, records/s
   (input records / wall) and the peak of the summed RSS (and RssAnon) of the whole process tree
   (/proc, polled every 100 ms) are recorded, with the CPU seconds of the tree and the share of
   the CPUs other processes used meanwhile ("other%"). Before each run the script waits for the
   machine to be idle; a run during which other jobs used > 10% of the CPUs is measured again
   (twice at most, then kept and flagged). datamill also runs at N/10 to show memory flatness.
4. Each output is checked against a reference computed here in plain Python: the number of kept
   records and an order-independent digest of the kept texts must match.
5. Prints a table and the datamill/peer ratios; writes ``benchmarks/_work/pipeline_results_n{N}.json``.

Exit status 0 when every run succeeded and every output matched the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_WORK = HERE / "_work"
GENERATOR_VERSION = 1  # bump when the generated data changes, so stale files are not reused

# The pipeline's parameters (shared by datamill's recipe, the peers and the reference).
VALUES = {"name": "Datamill Assistant", "author": "the datamill team"}
MIN_CHARS = 50
MAX_WORDS = 300
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")  # as datamill.ops.placeholders
WORD = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")  # as datamill.clean.length


def fill(text: str) -> str:
    if "{{" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: VALUES.get(m.group(1), m.group(0)), text)


def keep_chars(text: str) -> bool:
    return len(text) >= MIN_CHARS


def keep_words(text: str) -> bool:
    return len(WORD.findall(text)) <= MAX_WORDS


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
improve rewrite steps reason because therefore however following given input output sentence
paragraph article story poem email letter recipe plan schedule budget report pipeline filter
language corpus quality document crawl language-model pre-training web-page e.g. U.S. 2024 3.14""".split()  # noqa: SIM905

ZH_PHRASES = """机器学习 是 人工智能 的 一个 分支 它 使 计算机 能够 从 数据 中 学习 我们 需要 考虑
以下 几个 方面 首先 其次 最后 总之 这个 问题 的 答案 取决于 具体 情况 例如 在 大多数 情况下 模型 会
根据 输入 生成 输出 训练 数据 的 质量 非常 重要 请 用 简洁 的 语言 回答 翻译 成 英文 写 一篇 关于
春天 的 短文 北京 上海 广州 深圳 天气 很 好 今天 明天 昨天 学生 老师 学校 医院 公司 经济 发展 社会
文化 历史 科学 技术 创新 环境 保护 健康 饮食 运动 睡眠 时间 管理 效率 计划 目标 用户 助手 对话 指令
回复 推理 步骤 计算 结果 代码 函数 变量 数组 字符串 错误 调试 优化 性能 網頁 資料 語言 﨑""".split()  # noqa: SIM905
ZH_PUNCT = ["，", "。", "。", "？", "！", "：", "；", "。\n", "“引用”", "（注释）", "、"]
EN_PUNCT = [". ", ". ", ". ", "? ", "! ", ".\n", ".\n\n", "; ", ": ", ", "]


def _en_corpus(rng: random.Random, chars: int) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        words = rng.choices(EN_WORDS, k=rng.randint(4, 24))
        words[0] = words[0].capitalize()
        s = " ".join(words) + rng.choice(EN_PUNCT)
        if rng.random() < 0.03:
            s += "\n```python\nfor i in range(10):\n\tprint(i)\n```\n"
        parts.append(s)
        size += len(s)
    return "".join(parts)


def _zh_corpus(rng: random.Random, chars: int, english_share: float = 0.0) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        words = []
        for _ in range(rng.randint(4, 20)):
            if rng.random() < english_share:
                words.append(f" {rng.choice(EN_WORDS)} ")
            else:
                words.append(rng.choice(ZH_PHRASES))
        s = "".join(words) + rng.choice(ZH_PUNCT)
        parts.append(s)
        size += len(s)
    return "".join(parts)


PLACEHOLDER_CHOICES = [  # (cumulative probability, placeholder)
    (0.10, "{{name}}"),
    (0.15, "{{ author }}"),
    (0.17, "{{name}} / {{author}}"),
    (0.18, "{{unknown}}"),
]


class Generator:
    """Deterministic documents sliced out of pre-built corpora, so 1M records take seconds."""

    KINDS = (("en", 0.5), ("zh", 0.3), ("mix", 0.2))

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        crng = random.Random(seed ^ 0x5EED)
        self.corpora = {
            "en": _en_corpus(crng, 4_000_000),
            "zh": _zh_corpus(crng, 2_000_000),
            "mix": _zh_corpus(crng, 2_000_000, english_share=0.3),
        }
        self.lo, self.hi = math.log(20), math.log(2000)

    def text(self) -> str:
        rng = self.rng
        r = rng.random()
        kind = "en" if r < 0.5 else "zh" if r < 0.8 else "mix"
        length = min(2000, max(20, int(math.exp(rng.uniform(self.lo, self.hi)))))
        p = rng.random()
        ph = next((s for cum, s in PLACEHOLDER_CHOICES if p < cum), "")
        body_len = max(1, length - len(ph) - (2 if ph else 0))
        corpus = self.corpora[kind]
        start = rng.randrange(0, len(corpus) - body_len)
        body = corpus[start : start + body_len]
        if not body.strip():
            body = "x" * body_len
        if ph:
            at = rng.randrange(0, len(body) + 1)
            body = f"{body[:at]} {ph} {body[at:]}"
        return body


def generate(n: int, seed: int, work: Path) -> tuple[Path, list[Path]]:
    """The input file (and a 2-file split of it for datatrove), reused when already there."""
    path = work / f"pretrain_n{n}_seed{seed}.jsonl"
    split_dir = work / f"pretrain_n{n}_seed{seed}_split2"
    meta_path = path.with_suffix(".meta.json")
    want = {"n": n, "seed": seed, "generator": GENERATOR_VERSION}
    shards = [split_dir / f"part-{i}.jsonl" for i in range(2)]
    if path.exists() and meta_path.exists() and all(s.exists() for s in shards):
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in want} == want and meta.get("size") == path.stat().st_size:
            print(f"reusing {path} ({path.stat().st_size / 1e6:,.0f} MB)", flush=True)
            return path, shards
    print(f"generating {n:,} records into {path} …", flush=True)
    t0 = time.perf_counter()
    gen = Generator(seed)
    split_dir.mkdir(parents=True, exist_ok=True)
    half = (n + 1) // 2
    tmp = path.with_name(f".{path.name}.tmp")
    with (
        open(tmp, "w", encoding="utf-8") as f,
        open(shards[0], "w", encoding="utf-8") as s0,
        open(shards[1], "w", encoding="utf-8") as s1,
    ):
        for i in range(n):
            line = json.dumps({"text": gen.text()}, ensure_ascii=False) + "\n"
            f.write(line)
            (s0 if i < half else s1).write(line)
    tmp.replace(path)
    meta_path.write_text(json.dumps({**want, "size": path.stat().st_size}) + "\n")
    print(f"  {time.perf_counter() - t0:.1f} s, {path.stat().st_size / 1e6:,.0f} MB", flush=True)
    return path, shards


# --------------------------------------------------------------------------------------------------
# Reference and output checks
# --------------------------------------------------------------------------------------------------


def _loads():
    try:
        import orjson

        return orjson.loads
    except ImportError:
        return json.loads


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def reference(path: Path) -> dict[str, Any]:
    """Expected kept count and order-independent digest of the kept texts, computed here."""
    cache = path.with_suffix(f".ref-v{GENERATOR_VERSION}.json")
    if cache.exists():
        return json.loads(cache.read_text())
    loads = _loads()
    n = kept = chars_dropped = words_dropped = filled = 0
    digest = 0
    with open(path, "rb") as f:
        for line in f:
            n += 1
            text = loads(line)["text"]
            new = fill(text)
            filled += new != text
            if not keep_chars(new):
                chars_dropped += 1
            elif not keep_words(new):
                words_dropped += 1
            else:
                kept += 1
                digest = (digest + _h(new)) % (1 << 64)
    out = {
        "input": n,
        "kept": kept,
        "digest": f"{digest:016x}",
        "filled": filled,
        "dropped_chars": chars_dropped,
        "dropped_words": words_dropped,
    }
    cache.write_text(json.dumps(out) + "\n")
    return out


def output_digest(files: list[Path]) -> dict[str, Any]:
    loads = _loads()
    kept = 0
    digest = 0
    for p in files:
        with open(p, "rb") as f:
            for line in f:
                if line.strip():
                    kept += 1
                    digest = (digest + _h(loads(line)["text"])) % (1 << 64)
    return {"kept": kept, "digest": f"{digest:016x}", "files": len(files)}


# --------------------------------------------------------------------------------------------------
# Measuring a subprocess tree
# --------------------------------------------------------------------------------------------------


def _proc_status_kb(pid: int) -> tuple[int, int]:
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return rss, anon


def _tree(root: int) -> tuple[list[int], dict[int, float]]:
    """``root`` and all its descendants (one scan of /proc), with each one's CPU seconds so far."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        pid = int(name)
        children.setdefault(int(fields[1]), []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree, {pid: cpu.get(pid, 0.0) for pid in tree}


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def run_measured(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None, interval: float = 0.1
) -> dict[str, Any]:
    """Run ``cmd``: wall time, peak summed RSS / RssAnon of its whole process tree, CPU seconds of
    the tree, and how much CPU the rest of the machine used meanwhile."""
    peak_rss = peak_anon = 0
    max_procs = 0
    cpu_seen: dict[int, float] = {}  # per process, the last CPU time seen (covers processes nobody reaps)
    busy0 = _busy_cpu_seconds()
    self0 = time.process_time()
    with open(log, "wb") as logf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                wall = time.perf_counter() - t0
                code = os.waitstatus_to_exitcode(status)
                break
            pids, cpu = _tree(proc.pid)
            cpu_seen.update(cpu)
            rss = anon = 0
            for p in pids:
                r, a = _proc_status_kb(p)
                rss += r
                anon += a
            peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
            max_procs = max(max_procs, len(pids))
            time.sleep(interval)
    cpu = max(ru.ru_utime + ru.ru_stime, sum(cpu_seen.values()))
    # CPU time the machine spent on anything but this tree (and this poller): other jobs sharing
    # the cores make the timing unreliable, so it is reported next to every run (and retried).
    foreign = max(0.0, _busy_cpu_seconds() - busy0 - cpu - (time.process_time() - self0))
    return {
        "wall": wall,
        "returncode": code,
        "cpu": cpu,
        "peak_rss_mb": peak_rss / 1024,
        "peak_anon_mb": peak_anon / 1024,
        "ru_maxrss_mb": ru.ru_maxrss / 1024,
        "max_procs": max_procs,
        "foreign_cpu_pct": 100 * foreign / (wall * (os.cpu_count() or 1)),
    }


def _busy_cpu_seconds() -> float:
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def wait_idle(max_wait: float, threshold: float = 10.0) -> float:
    """Wait until the machine has been idle (busy < threshold % of all cores) for 3 samples of 2 s,
    so another job's load does not end up in the timings; gives up after ``max_wait`` seconds."""
    import psutil

    start = time.perf_counter()
    quiet = 0
    told = False
    while quiet < 3:
        load = psutil.cpu_percent(interval=2.0)
        quiet = quiet + 1 if load < threshold else 0
        waited = time.perf_counter() - start
        if quiet == 0 and not told and waited > 5:
            print(f"  waiting for the machine to be idle (busy {load:.0f}%) …", flush=True)
            told = True
        if waited > max_wait:
            print(f"  still busy after {waited:.0f} s; measuring anyway", flush=True)
            break
    return time.perf_counter() - start


def warm_cache(*paths: Path) -> None:
    for path in paths:
        with open(path, "rb") as f:
            while f.read(16 << 20):
                pass


# --------------------------------------------------------------------------------------------------
# The tools
# --------------------------------------------------------------------------------------------------

RECIPE = """\
# Generated by benchmarks/pipeline.py: the 3-step pipeline the peers replicate.
name: bench-pipeline
seed: 0
inputs:
  - {{path: {input}, format: pretrain}}
steps:
  - op: fill_placeholders
    values: {{name: {name}, author: {author}}}
  - op: length_filter
    part: text
    unit: chars
    min: {min_chars}
  - op: length_filter
    part: text
    unit: words
    max: {max_words}
output:
  path: out
  format: pretrain
  container: jsonl
"""


def write_recipe(src: Path, work: Path, n: int) -> Path:
    path = work / f"pipeline_n{n}.yaml"
    path.write_text(
        RECIPE.format(
            input=json.dumps(str(src)),
            name=json.dumps(VALUES["name"]),
            author=json.dumps(VALUES["author"]),
            min_chars=MIN_CHARS,
            max_words=MAX_WORDS,
        )
    )
    return path


def datamill_exe() -> str:
    exe = ROOT / ".venv" / "bin" / "datamill"
    if exe.exists():
        return str(exe)
    exe = Path(sys.executable).with_name("datamill")
    return str(exe) if exe.exists() else "datamill"


def _rel(p: Path | str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(p).relative_to(ROOT))
    return str(p)


def bench(
    tool: str, workers: int, n: int, src: Path, shards: list[Path], work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    label = f"{tool} (N={n:,}, workers={workers})"
    out = work / f"out_{tool}_n{n}_w{workers}"
    shutil.rmtree(out, ignore_errors=True)  # datamill skips a run whose finished output is present
    tmp = Path(tempfile.mkdtemp(prefix=f"tmp_{tool}_", dir=work))
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        HF_HOME=str(tmp / "hf_home"),
        HF_DATASETS_CACHE=str(tmp / "hf_cache"),
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        TMPDIR=str(tmp),
    )
    peer_py = str(args.peer_venv / "bin" / "python")
    if tool == "datamill":
        recipe = write_recipe(src, work, n)
        cmd = [datamill_exe(), "run", str(recipe), "-o", str(out), "--workers", str(workers)]
        shown = f"datamill run {_rel(recipe)} -o {_rel(out)} --workers {workers}"
        outputs = lambda: sorted(out.glob("data-*.jsonl"))  # noqa: E731
    elif tool == "datatrove":
        inputs = [src] if workers == 1 else shards
        cmd = [
            peer_py,
            str(Path(__file__).resolve()),
            "_peer",
            "datatrove",
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--logs",
            str(tmp / "logs"),
            *map(str, inputs),
        ]
        shown = " ".join(_rel(c) for c in cmd)
        outputs = lambda: sorted(out.glob("*.jsonl"))  # noqa: E731
    elif tool == "data-juicer":
        cmd = [
            peer_py,
            str(Path(__file__).resolve()),
            "_peer",
            "data-juicer",
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--logs",
            str(tmp / "work"),
            str(src),
        ]
        shown = " ".join(_rel(c) for c in cmd)
        outputs = lambda: sorted(p for p in out.glob("*.jsonl") if not p.name.endswith("_stats.jsonl"))  # noqa: E731
    else:
        raise SystemExit(f"unknown tool {tool}")
    warm_cache(*([src] if tool != "datatrove" or workers == 1 else shards))
    log = work / f"log_{tool}_n{n}_w{workers}.txt"
    waited = 0.0
    for attempt in range(args.retries + 1):
        waited += wait_idle(args.max_wait_idle) if args.max_wait_idle > 0 else 0.0
        print(f"running {label}: {shown}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            m = run_measured(cmd, env, log, cwd=ROOT)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if m["returncode"] != 0 or m["foreign_cpu_pct"] <= args.max_other_load:
            break
        print(
            f"  {m['wall']:.1f} s, but other jobs used {m['foreign_cpu_pct']:.0f}% of the CPUs meanwhile"
            + ("; measuring again" if attempt < args.retries else "; keeping it (flagged)"),
            flush=True,
        )
    m["attempts"] = attempt + 1
    row: dict[str, Any] = {
        "tool": tool,
        "workers": workers,
        "n": n,
        "command": shown,
        "log": _rel(log),
        "waited_idle_s": waited,
        **m,
    }
    if m["returncode"] != 0:
        tail = log.read_text(errors="replace")[-3000:]
        print(f"  FAILED (exit {m['returncode']}); log tail:\n{tail}", flush=True)
        row["error"] = tail
        return row
    row.update(output_digest(outputs()))
    row["records_per_s"] = n / m["wall"]
    if tool == "datamill":
        with contextlib.suppress(OSError, ValueError):
            row["stats_kept"] = json.loads((out / "stats.json").read_text())["kept"]
    print(
        f"  {m['wall']:.1f} s, {row['records_per_s']:,.0f} rec/s, peak RSS {m['peak_rss_mb']:,.0f} MB "
        f"(anon {m['peak_anon_mb']:,.0f} MB, {m['max_procs']} procs), kept {row['kept']:,}, "
        f"CPU {m['cpu']:.1f} s, other load {m['foreign_cpu_pct']:.0f}%",
        flush=True,
    )
    if not args.keep_outputs:
        shutil.rmtree(out, ignore_errors=True)
    return row


# --------------------------------------------------------------------------------------------------
# Peer children (run inside the peer venv; must not import datamill)
# --------------------------------------------------------------------------------------------------


def peer_datatrove(inputs: list[str], out: str, workers: int, logs: str) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.base import PipelineStep
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    class FillPlaceholders(PipelineStep):
        name = "fill placeholders"
        type = "✂️ - FORMAT"

        def run(self, data, rank: int = 0, world_size: int = 1):
            for doc in data:
                self.stat_update("total")
                with self.track_time():
                    doc.text = fill(doc.text)
                yield doc

    folder = str(Path(inputs[0]).parent)
    if len(inputs) == 1:
        reader = JsonlReader(folder, glob_pattern=Path(inputs[0]).name, text_key="text", compression=None)
    else:
        reader = JsonlReader(folder, glob_pattern="part-*.jsonl", text_key="text", compression=None)
    pipeline = [
        reader,
        FillPlaceholders(),
        LambdaFilter(lambda doc: keep_chars(doc.text)),
        LambdaFilter(lambda doc: keep_words(doc.text)),
        JsonlWriter(
            out, output_filename="${rank}.jsonl", compression=None, adapter=lambda self, doc: {"text": doc.text}
        ),
    ]
    LocalPipelineExecutor(pipeline, tasks=workers, workers=workers, logging_dir=logs, skip_completed=False).run()


def peer_data_juicer(src: str, out: str, workers: int, work: str) -> None:
    from data_juicer.config import init_configs
    from data_juicer.core import DefaultExecutor
    from data_juicer.ops.base_op import OPERATORS
    from data_juicer.ops.filter.words_num_filter import WordsNumFilter
    from data_juicer.utils.constant import Fields, StatsKeys

    @OPERATORS.register_module("cjk_words_num_filter")
    class CjkWordsNumFilter(WordsNumFilter):
        """words_num_filter, counting words like datamill: one per CJK character, one per other
        run of non-space characters (the built-in counts whitespace-separated tokens)."""

        def compute_stats_batched(self, samples, context=False):
            for text, stat in zip(samples[self.text_key], samples[Fields.stats], strict=True):
                if StatsKeys.num_words not in stat:
                    stat[StatsKeys.num_words] = len(WORD.findall(text))
            return samples

    Path(work).mkdir(parents=True, exist_ok=True)
    keys = list(VALUES)
    config = {
        "project_name": "bench-pipeline",
        "dataset_path": src,
        "export_path": str(Path(out) / "data.jsonl"),
        "work_dir": work,
        "np": workers,
        "text_keys": "text",
        "open_tracer": False,
        "process": [
            {
                "replace_content_mapper": {
                    "pattern": [r"\{\{\s*" + k + r"\s*\}\}" for k in keys],
                    "repl": [VALUES[k] for k in keys],
                }
            },
            {"text_length_filter": {"min_len": MIN_CHARS}},
            {"cjk_words_num_filter": {"min_num": 0, "max_num": MAX_WORDS}},
        ],
    }
    cfg_path = Path(work) / "dj_config.yaml"
    cfg_path.write_text(json.dumps(config, ensure_ascii=False, indent=2))  # JSON is YAML
    cfg = init_configs(args=["--config", str(cfg_path)])
    DefaultExecutor(cfg).run()


def peer_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pipeline.py _peer")
    p.add_argument("tool", choices=["datatrove", "data-juicer"])
    p.add_argument("inputs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--logs", required=True)
    a = p.parse_args(argv)
    if a.tool == "datatrove":
        peer_datatrove(a.inputs, a.out, a.workers, a.logs)
    else:
        peer_data_juicer(a.inputs[0], a.out, a.workers, a.logs)


def peer_versions(peer_py: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json\nout = {}\n"
        "for d in ('datatrove', 'py-data-juicer', 'datasets', 'pyarrow'):\n"
        "    try: out[d] = m.version(d)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(out))"
    )
    try:
        res = subprocess.run([str(peer_py), "-c", code], capture_output=True, text=True, timeout=60)
        return json.loads(res.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]], ref_by_n: dict[int, dict[str, Any]]) -> bool:
    ok = True
    head = (
        f"{'tool':<12} {'N':>10} {'workers':>7} {'seconds':>9} {'records/s':>11} {'peak RSS MB':>12} "
        f"{'anon MB':>9} {'kept':>10} {'CPU s':>7} {'other%':>6}  check"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['tool']:<12} {r['n']:>10,} {r['workers']:>7} {'FAILED':>9}")
            ok = False
            continue
        ref = ref_by_n[r["n"]]
        match = r["kept"] == ref["kept"] and r["digest"] == ref["digest"]
        if "stats_kept" in r:
            match = match and r["stats_kept"] == ref["kept"]
        ok = ok and match
        r["matches_reference"] = match
        print(
            f"{r['tool']:<12} {r['n']:>10,} {r['workers']:>7} {r['wall']:>9.1f} {r['records_per_s']:>11,.0f} "
            f"{r['peak_rss_mb']:>12,.0f} {r['peak_anon_mb']:>9,.0f} {r['kept']:>10,} {r['cpu']:>7.1f} "
            f"{r['foreign_cpu_pct']:>6.0f}  "
            f"{'ok' if match else 'MISMATCH'}"
        )
    for n, ref in sorted(ref_by_n.items()):
        print(
            f"reference N={n:,}: kept {ref['kept']:,} (placeholders filled in {ref['filled']:,}; dropped "
            f"{ref['dropped_chars']:,} < {MIN_CHARS} chars, {ref['dropped_words']:,} > {MAX_WORDS} words), "
            f"digest {ref['digest']}"
        )
    return ok


def print_ratios(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    by = {(r["tool"], r["workers"]): r for r in rows if r["n"] == n and "error" not in r}
    ratios: dict[str, Any] = {}
    print()
    for peer in ("datatrove", "data-juicer"):
        for w in sorted({r["workers"] for r in rows}):
            dm, pr = by.get(("datamill", w)), by.get((peer, w))
            if dm and pr:
                t = dm["records_per_s"] / pr["records_per_s"]
                m = dm["peak_rss_mb"] / pr["peak_rss_mb"]
                ratios[f"{peer}_w{w}"] = {"throughput": t, "peak_rss": m}
                print(f"datamill/{peer} at {w} worker(s): throughput x{t:.2f}, peak RSS x{m:.2f}")
    small = [r for r in rows if r["tool"] == "datamill" and r["n"] != n and "error" not in r]
    for s in small:
        big = by.get(("datamill", s["workers"]))
        if big:
            print(
                f"datamill peak RSS, workers={s['workers']}: N={s['n']:,} {s['peak_rss_mb']:,.0f} MB → "
                f"N={n:,} {big['peak_rss_mb']:,.0f} MB (x{big['peak_rss_mb'] / s['peak_rss_mb']:.2f} "
                f"for x{n / s['n']:.0f} input)"
            )
            ratios[f"rss_growth_w{s['workers']}"] = big["peak_rss_mb"] / s["peak_rss_mb"]
    return ratios


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_peer":
        peer_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="records (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--workers", default="1,2", help="worker counts to run (default 1,2)")
    ap.add_argument("--peers", default="datatrove,data-juicer", help="comma list; '' for datamill only")
    ap.add_argument("--peer-venv", type=Path, default=DEFAULT_WORK / "peer-venv")
    ap.add_argument("--no-small", action="store_true", help="skip the N/10 datamill runs (memory flatness)")
    ap.add_argument("--keep-outputs", action="store_true")
    ap.add_argument(
        "--max-other-load",
        type=float,
        default=10.0,
        help="re-measure a run when other processes used more than this %% of the CPUs",
    )
    ap.add_argument("--retries", type=int, default=2, help="re-measurements per run (default 2)")
    ap.add_argument(
        "--max-wait-idle",
        type=float,
        default=3600,
        help="before each run wait up to this many seconds for other load to stop (0: don't)",
    )
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    workers = [int(w) for w in args.workers.split(",") if w]
    peers = [p for p in args.peers.split(",") if p]
    if peers and not (args.peer_venv / "bin" / "python").exists():
        raise SystemExit(f"no peer venv at {args.peer_venv}; see the docstring, or pass --peers ''")

    src, shards = generate(args.n, args.seed, work)
    t0 = time.perf_counter()
    refs = {args.n: reference(src)}
    print(f"reference: kept {refs[args.n]['kept']:,} of {args.n:,} ({time.perf_counter() - t0:.1f} s)", flush=True)
    small = None
    if not args.no_small and args.n >= 10:
        small, _ = generate(args.n // 10, args.seed, work)
        refs[args.n // 10] = reference(small)

    rows: list[dict[str, Any]] = []
    for w in workers:
        rows.append(bench("datamill", w, args.n, src, shards, work, args))
    for peer in peers:
        for w in workers:
            rows.append(bench(peer, w, args.n, src, shards, work, args))
    if small is not None:
        for w in workers:
            rows.append(bench("datamill", w, args.n // 10, small, [], work, args))

    ok = print_table(rows, refs)
    ratios = print_ratios(rows, args.n)
    env = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "datamill": importlib.metadata.version("datamill") if _has("datamill") else "?",
        **({"peers": peer_versions(args.peer_venv / "bin" / "python")} if peers else {}),
    }
    print(f"\nenvironment: {json.dumps(env)}")
    result = {
        "n": args.n,
        "seed": args.seed,
        "input": _rel(src),
        "input_mb": src.stat().st_size / 1e6,
        "reference": {str(k): v for k, v in refs.items()},
        "rows": rows,
        "ratios": ratios,
        "env": env,
        "ok": ok,
    }
    (work / f"pipeline_results_n{args.n}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"results: {_rel(work / f'pipeline_results_n{args.n}.json')}")
    sys.exit(0 if ok else 1)


def _has(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()

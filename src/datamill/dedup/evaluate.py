"""Ground truth for near-duplicate detection: the T0 files in ``../shared/data/t0``.

Each file is one prompt template applied to examples of one source dataset (ag_news, glue_mrpc,
app_reviews, common_gen). Records rendered from the same source example by different templates
are real near-duplicates. ``t0_source_key`` recovers the source example from a record:

- ag_news: the article (the longest line of the prompt);
- app_reviews: the review (the quoted text, or the completion of ``generate_review``);
- common_gen: the target sentence (the completion, or the sentence quoted in the prompt of
  ``sentence_to_concepts`` / ``topics_from_the_sentence``);
- glue_mrpc: the first sentence of the pair (second prompt line, or after the ``:`` of the
  ``generate_*`` templates).

Pair metrics count, over all unordered pairs of records, those predicted in one cluster and those
sharing a source key; they are computed from the contingency table, never pair by pair.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import orjson

SPACE = re.compile(r"\s+")
END = "<|endoftext|>"


def _clean(text: str) -> str:
    return SPACE.sub(" ", text.replace(END, "")).strip().lower()


def t0_source_key(template: str, prompt: str, completion: str, boilerplate: frozenset[str] = frozenset()) -> str:
    """``dataset:source text`` for a record of the T0 file named ``template`` (its stem);
    ``boilerplate`` holds the template's own prompt lines (those most records of the file share)."""
    lines = [x for x in prompt.split("\n") if x.strip()]
    if template.startswith("ag_news"):
        article = [x for x in lines if x.strip() not in boilerplate] or lines
        return "ag_news:" + _clean(max(article, key=len))
    if template.startswith("app_reviews"):
        if template.endswith("generate_review"):
            return "app_reviews:" + _clean(completion)
        quoted = re.search(r'"(.*)"', prompt, flags=re.S)
        return "app_reviews:" + _clean(quoted.group(1) if quoted else prompt)
    if template.startswith("common_gen"):
        m = re.search(r"sentence:\s*(.*?)(?:;\s*\n|\n|$)", prompt)
        if template.endswith(("sentence_to_concepts", "topics_from_the_sentence")) and m:
            return "common_gen:" + _clean(m.group(1))
        return "common_gen:" + _clean(completion)
    if template.startswith("glue_mrpc"):
        if template.endswith(("generate_paraphrase", "generate_sentence")):
            return "glue_mrpc:" + _clean(lines[0].split(":", 1)[1])
        return "glue_mrpc:" + _clean(lines[1])
    raise ValueError(f"unknown T0 template {template!r}")


def load_t0(folder: str | Path) -> Iterator[tuple[str, str, str, str]]:
    """(template, prompt, completion, source key) for every record, files in sorted order."""
    for path in sorted(Path(folder).glob("*.jsonl")):
        with open(path, "rb") as f:
            rows = [orjson.loads(line) for line in f]
        lines = Counter(x.strip() for r in rows for x in set(r["prompt"].split("\n")) if x.strip())
        boilerplate = frozenset(x for x, n in lines.items() if n > len(rows) // 2)
        for r in rows:
            yield (
                path.stem,
                r["prompt"],
                r["completion"],
                t0_source_key(path.stem, r["prompt"], r["completion"], boilerplate),
            )


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


def pair_scores(predicted: Sequence[object], truth: Sequence[object]) -> dict[str, float]:
    """Precision, recall and F1 over record pairs: ``predicted[i]`` is record i's cluster label
    (unique labels for singletons), ``truth[i]`` its source key."""
    if len(predicted) != len(truth):
        raise ValueError("predicted and truth differ in length")
    tp = _pairs(Counter(zip(predicted, truth, strict=True)).values())
    pred = _pairs(Counter(predicted).values())
    true = _pairs(Counter(truth).values())
    precision = tp / pred if pred else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs_true": true, "pairs_predicted": pred}

"""A learned quality classifier that scores text at classifier speed: hashed word 1-2 grams (a CJK
character is a word, so Chinese gets character uni- and bigrams), optionally character n-grams, and a
linear model — logistic regression for good/bad labels, ridge regression for 0-5 scores (the
FineWeb-Edu way: an LLM scores a sample, the classifier learns the scores).

Hashing keeps no vocabulary, so a model is its feature settings plus one weight vector: ``model.json``
(settings, training counts, held-out metrics) and ``weights.npz`` (plain float arrays) in a folder.
Loading reads JSON and numbers (``numpy.load(allow_pickle=False)``): a model folder from anyone cannot
run code, and does not depend on the scikit-learn version that trained it.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from datamill.clean.text import script_lang
from datamill.errors import DatamillError

FORMAT = "datamill-quality-classifier"
VERSION = 1
# a CJK character is a token of its own; other runs of letters and digits are words
TOKEN = r"(?u)[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
Kind = Literal["binary", "score"]


class QualityModelError(DatamillError):
    """A model folder is missing, incomplete or not a quality classifier; or training data is unusable."""


@dataclass(frozen=True)
class Features:
    """How text becomes a hashed vector: word n-grams, and character n-grams when ``char_ngrams`` is set
    (no better on the labelled split, 2.5-8x slower: docs/cleaning.md)."""

    n_features: int = 2**20
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = None
    max_chars: int = 3000  # only the head of a long document is read, as language id does
    lowercase: bool = True

    @cached_property
    def _vectorizers(self) -> list[Any]:
        from sklearn.feature_extraction.text import HashingVectorizer

        common = {"n_features": self.n_features, "alternate_sign": False, "lowercase": self.lowercase, "norm": None}
        out = [HashingVectorizer(ngram_range=self.word_ngrams, token_pattern=TOKEN, **common)]
        if self.char_ngrams:
            out.append(HashingVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, **common))
        return out

    def transform(self, texts: Sequence[str]) -> Any:
        """A sparse (len(texts), n_features) matrix: the sum of the l2-normalized word and char vectors.

        Normalizing here rather than in scikit-learn, and without its parameter checks, makes scoring one
        record (what a pipeline filter does) 2x faster; the numbers are the same."""
        from sklearn import config_context

        heads = [t[: self.max_chars] for t in texts]
        with config_context(skip_parameter_validation=True, assume_finite=True):
            parts = [_l2_rows(v.transform(heads)) for v in self._vectorizers]
        out = parts[0]
        for x in parts[1:]:
            out = out + x
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Features:
        char = d.get("char_ngrams")
        return cls(
            n_features=int(d["n_features"]),
            word_ngrams=tuple(d["word_ngrams"]),
            char_ngrams=tuple(char) if char else None,
            max_chars=int(d["max_chars"]),
            lowercase=bool(d["lowercase"]),
        )


def _l2_rows(x: Any) -> Any:
    """Scale each row of a CSR matrix to unit length, in place (empty rows stay empty)."""
    counts = np.diff(x.indptr)
    sums = np.bincount(np.repeat(np.arange(x.shape[0]), counts), weights=x.data**2, minlength=x.shape[0])
    norms = np.sqrt(sums)
    norms[norms == 0] = 1.0
    x.data /= np.repeat(norms, counts)
    return x


@dataclass
class QualityModel:
    """A trained classifier. ``scores(texts)``: P(good) for ``binary``, a 0-5 score for ``score``."""

    kind: Kind
    features: Features
    coef: np.ndarray
    intercept: float
    threshold: float  # binary: the probability that counts as good; score: the score that does (3)
    part: str = "all"
    languages: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # training counts, held-out metrics, speed

    def __post_init__(self) -> None:
        # stored as float32; scored in float64, the features' type (a float32 vector is copied up per call)
        self.coef = np.asarray(self.coef, dtype=np.float64)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros(0)
        raw = np.asarray(self.features.transform(texts) @ self.coef, dtype=np.float64) + self.intercept
        if self.kind == "binary":
            from scipy.special import expit  # the logistic function, without overflow warnings

            return expit(raw)
        return np.clip(raw, 0.0, 5.0)

    def score(self, text: str) -> float:
        return float(self.scores([text])[0])

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` and ``weights.npz`` into ``directory`` (created; other files left alone)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(d / "weights.npz", coef=self.coef.astype(np.float32), intercept=np.float64(self.intercept))
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "threshold": self.threshold,
            "part": self.part,
            "languages": self.languages,
            "features": self.features.to_dict(),
            **self.info,
        }
        (d / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return d / "model.json"

    @classmethod
    def load(cls, directory: str | Path) -> QualityModel:
        d = Path(directory)
        meta_path, weights_path = d / "model.json", d / "weights.npz"
        if not meta_path.is_file():
            raise QualityModelError(f"{d}: no model.json here (train one with `datamill quality train`)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise QualityModelError(f"{meta_path}: cannot read ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise QualityModelError(f"{meta_path}: not a datamill quality classifier")
        if meta.get("version") != VERSION:
            raise QualityModelError(f"{meta_path}: model version {meta.get('version')}, this datamill reads {VERSION}")
        if not weights_path.is_file():
            raise QualityModelError(f"{d}: weights.npz is missing")
        if meta.get("kind") not in ("binary", "score"):
            raise QualityModelError(f"{meta_path}: unknown model kind {meta.get('kind')!r}")
        try:
            features = Features.from_dict(meta["features"])
            with np.load(weights_path, allow_pickle=False) as w:
                coef, intercept = w["coef"], float(w["intercept"])
        except (KeyError, TypeError, ValueError, OSError) as e:  # a bad zip is an OSError or ValueError
            raise QualityModelError(f"{d}: damaged model ({e!r})") from None
        if coef.shape != (features.n_features,):
            raise QualityModelError(f"{weights_path}: {coef.shape} weights for {features.n_features} features")
        known = {"format", "version", "kind", "threshold", "part", "languages", "features"}
        return cls(
            kind=meta["kind"],
            features=features,
            coef=coef,
            intercept=intercept,
            threshold=float(meta["threshold"]),
            part=meta.get("part", "all"),
            languages=meta.get("languages"),
            info={k: v for k, v in meta.items() if k not in known},
        )


def language_of(text: str) -> str:
    """``zh`` / ``en`` by script (CJK share, Latin prose), ``other`` otherwise."""
    return script_lang(text, min_letters=1, strict=False) or "other"


def iter_texts(
    paths: Iterable[str | Path],
    part: str = "all",
    languages: Sequence[str] | None = None,
    skipped: Counter | None = None,
) -> Iterator[tuple[str, str]]:
    """(text, source file) of every record in ``paths`` (any dataset ``datamill.read`` reads); what is
    skipped is counted in ``skipped``: ``quarantined`` rows, ``empty`` texts, texts in ``other_language``."""
    from datamill.dataset import Quarantined, read

    skipped = Counter() if skipped is None else skipped
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise QualityModelError(f"{path}: no such file")
        for rec in read(path):
            if isinstance(rec, Quarantined):
                skipped["quarantined"] += 1
                continue
            text = rec.part(part).strip()
            if not text:
                skipped["empty"] += 1
            elif languages and language_of(text) not in languages:
                skipped["other_language"] += 1
            else:
                yield text, str(path)


def read_texts(
    paths: Iterable[str | Path], part: str = "all", languages: Sequence[str] | None = None
) -> tuple[list[str], Counter[str]]:
    """Every text of ``paths`` (see :func:`iter_texts`) and the counts of what was skipped."""
    skipped: Counter[str] = Counter()
    return [t for t, _ in iter_texts(paths, part, languages, skipped)], skipped


def read_scores(path: str | Path, languages: Sequence[str] | None = None) -> tuple[list[str], list[float]]:
    """Texts and their 0-5 scores from a JSONL file of ``{"text", "score"}`` rows (``quality annotate``)."""
    path = Path(path)
    if not path.is_file():
        raise QualityModelError(f"{path}: no such file")
    texts, scores = [], []
    for n, line in enumerate(path.open(encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, score = row["text"], float(row["score"])
        except (ValueError, KeyError, TypeError) as e:
            raise QualityModelError(f"{path}:{n}: not a {{'text', 'score'}} row ({e!r})") from None
        if not isinstance(text, str) or not 0 <= score <= 5:
            raise QualityModelError(f"{path}:{n}: needs a text and a score from 0 to 5")
        if text.strip() and (not languages or language_of(text) in languages):
            texts.append(text)
            scores.append(score)
    return texts, scores


def split_indices(strata: Sequence[Any], test_share: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of a train / held-out split with each stratum (label, score, source) shared out alike;
    a stratum of two or more texts has at least one held out."""
    if not 0 < test_share < 1:
        raise QualityModelError(f"test share must be between 0 and 1, not {test_share}")
    rng = random.Random(seed)
    by: dict[Any, list[int]] = {}
    for i, key in enumerate(strata):
        by.setdefault(key, []).append(i)
    train, test = [], []
    for key in sorted(by, key=str):
        idx = by[key]
        rng.shuffle(idx)
        k = max(1, round(len(idx) * test_share)) if len(idx) > 1 else 0
        test += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(test)


def binary_metrics(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float | int]:
    """Precision, recall and F1 of the positive (good) class, and accuracy."""
    t, p = np.asarray(truth, bool), np.asarray(predicted, bool)
    tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float((t == p).mean()) if len(t) else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "accuracy": round(accuracy, 4),
        "n": len(t),
        "positives": int(t.sum()),
    }


def score_metrics(truth: Sequence[float], predicted: Sequence[float], threshold: float) -> dict[str, Any]:
    """MAE, accuracy of the rounded score, and precision / recall / F1 of ``score >= threshold``."""
    t, p = np.asarray(truth, float), np.asarray(predicted, float)
    out: dict[str, Any] = {
        "mae": round(float(np.abs(t - p).mean()), 4) if len(t) else 0.0,
        "rounded_accuracy": round(float((np.round(t) == np.round(p)).mean()), 4) if len(t) else 0.0,
    }
    out.update({f"{k}_at_threshold": v for k, v in binary_metrics(t >= threshold, p >= threshold).items()})
    return out


def _metrics(model: QualityModel, truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    if model.kind == "binary":
        good, bad = (
            binary_metrics(truth >= 0.5, predicted >= model.threshold),
            binary_metrics(truth < 0.5, predicted < model.threshold),
        )
        return {**good, **{f"bad_{k}": bad[k] for k in ("precision", "recall", "f1")}}
    return score_metrics(truth, predicted, model.threshold)


def evaluate(model: QualityModel, texts: Sequence[str], truth: Sequence[float]) -> dict[str, Any]:
    """Held-out metrics of ``model`` on ``texts`` whose true labels (1 good / 0 bad) or scores are
    ``truth``: overall, per language, and the scoring speed (docs/s)."""
    start = time.perf_counter()
    predicted = model.scores(texts)
    seconds = time.perf_counter() - start
    t = np.asarray(truth, float)
    langs = np.array([language_of(x) for x in texts])
    out = _metrics(model, t, predicted)
    out["by_lang"] = {
        lang: _metrics(model, t[langs == lang], predicted[langs == lang]) for lang in sorted(set(langs.tolist()))
    }
    out["docs_per_s"] = round(len(texts) / seconds, 1) if seconds > 0 else None
    return out


def fit(kind: Kind, texts: Sequence[str], targets: Sequence[float], features: Features, seed: int = 0) -> Any:
    """(weights, intercept) of the linear model on hashed ``texts``: logistic regression by SGD for
    labels (classes weighted to balance), ridge regression for scores."""
    from sklearn.linear_model import Ridge, SGDClassifier

    x, y = features.transform(texts), np.asarray(targets, float)
    if kind == "binary":
        clf = SGDClassifier(
            loss="log_loss", alpha=1e-5, max_iter=50, tol=1e-4, class_weight="balanced", average=True, random_state=seed
        )
        clf.fit(x, y.astype(int))
        return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])
    reg = Ridge(alpha=0.1, solver="sparse_cg", random_state=seed).fit(x, y)
    return reg.coef_.astype(np.float32), float(reg.intercept_)


def _train(
    kind: Kind,
    texts: Sequence[str],
    targets: Sequence[float],
    strata: Sequence[Any],
    counts: dict[str, Any],
    features: Features | None,
    test_share: float,
    seed: int,
    threshold: float,
    part: str,
    languages: list[str] | None,
) -> QualityModel:
    features = features or Features()
    train, test = split_indices(strata, test_share, seed)
    start = time.perf_counter()
    coef, intercept = fit(kind, [texts[i] for i in train], [targets[i] for i in train], features, seed)
    fit_seconds = time.perf_counter() - start
    model = QualityModel(kind, features, coef, intercept, threshold, part, languages)
    metrics = evaluate(model, [texts[i] for i in test], [targets[i] for i in test])
    speed = metrics.pop("docs_per_s")
    trained = {**counts, "train": len(train), "test": len(test), "test_share": test_share, "seed": seed}
    model.info = {
        "trained": {**trained, "fit_seconds": round(fit_seconds, 3)},
        "metrics": metrics,
        "speed": {"docs_per_s": speed, "held_out_docs": len(test)},
    }
    return model


def train_binary(
    positives: Sequence[str],
    negatives: Sequence[str],
    features: Features | None = None,
    *,
    test_share: float = 0.1,
    seed: int = 0,
    threshold: float = 0.5,
    part: str = "all",
    languages: list[str] | None = None,
) -> QualityModel:
    """Learn good (positives) vs bad (negatives). A held-out share of each is scored: precision,
    recall and F1 of the good class (overall and per language) go into ``model.info["metrics"]``."""
    for name, texts in (("positive", positives), ("negative", negatives)):
        if len(texts) < 2:
            got = "no" if not texts else "only one"
            raise QualityModelError(f"{got} {name} text: each class needs at least 2 (one to learn, one to test)")
    texts = [*positives, *negatives]
    labels = [1] * len(positives) + [0] * len(negatives)
    counts = {"positives": len(positives), "negatives": len(negatives)}
    return _train("binary", texts, labels, labels, counts, features, test_share, seed, threshold, part, languages)


def train_scores(
    texts: Sequence[str],
    scores: Sequence[float],
    features: Features | None = None,
    *,
    test_share: float = 0.1,
    seed: int = 0,
    threshold: float = 3.0,
    part: str = "all",
    languages: list[str] | None = None,
) -> QualityModel:
    """Learn 0-5 scores (an LLM's, from ``quality annotate``) by regression. Held-out MAE, accuracy of
    the rounded score and P / R / F1 of ``score >= threshold`` go into ``model.info["metrics"]``."""
    if len(texts) != len(scores):
        raise QualityModelError(f"{len(texts)} texts but {len(scores)} scores")
    if len(texts) < 4:
        raise QualityModelError(f"{len(texts)} scored texts: too few to learn from and test on (at least 4)")
    if len(set(scores)) < 2:
        raise QualityModelError(f"every text has the score {scores[0]:g}: nothing to learn")
    rounded = [round(s) for s in scores]
    counts = {"texts": len(texts), "score_counts": {str(k): v for k, v in sorted(Counter(rounded).items())}}
    return _train("score", texts, scores, rounded, counts, features, test_share, seed, threshold, part, languages)

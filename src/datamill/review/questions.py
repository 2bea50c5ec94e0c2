"""Questions asked beside the task (``review start --questions questions.yaml``), like Argilla's:
``label`` (one of a label set), ``multi_label`` (any of a set), ``rating`` (1–N per rubric criterion),
``text`` (free text), ``edit`` (the record's answer, corrected) and ``ranking`` (rank the record's
``meta.candidates`` 1–N). The file is read with ``yaml.safe_load`` and checked before a project exists;
every error names the file and the question.

Each answer is turned into comparable *values* (:func:`values`) — the task's own decision plus one value
per label, criterion or candidate — which agreement, gold accuracy and the disagreement flag all use."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from datamill.io.yaml_file import read_yaml
from datamill.review.store import ReviewError

KINDS = ("label", "multi_label", "rating", "text", "edit", "ranking")
MAX_TEXT = 20_000
NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


class _Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    title: str | None = None
    description: str = ""
    required: bool = True


def _distinct(values: list[str], what: str) -> list[str]:
    if any(not v.strip() for v in values):
        raise ValueError(f"{what} must not be blank")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} name one twice")
    return values


class LabelQuestion(_Question):
    kind: Literal["label", "multi_label"]
    labels: list[str] = Field(min_length=2, max_length=50)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        return _distinct(v, "labels")


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    description: str = ""


class RatingQuestion(_Question):
    kind: Literal["rating"]
    criteria: list[Criterion] = Field(min_length=1, max_length=20)
    scale: int = Field(5, ge=2, le=10)

    @field_validator("criteria", mode="before")
    @classmethod
    def _criteria(cls, v: Any) -> Any:
        """``[helpfulness, safety]`` or ``{helpfulness: "1 = no help … 5 = solves it"}`` (a rubric)."""
        if isinstance(v, dict):
            return [{"name": k, "description": d or ""} for k, d in v.items()]
        return [{"name": c} if isinstance(c, str) else c for c in v] if isinstance(v, list) else v

    @field_validator("criteria")
    @classmethod
    def _unique(cls, v: list[Criterion]) -> list[Criterion]:
        _distinct([c.name for c in v], "criteria")
        return v


class PlainQuestion(_Question):
    """text, edit and ranking: no options of their own (a ranking ranks the item's candidates)."""

    kind: Literal["text", "edit", "ranking"]


Question = Annotated[LabelQuestion | RatingQuestion | PlainQuestion, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Question)


def load(path: Path, task: str) -> list[dict[str, Any]]:
    """The questions of ``path`` as plain dicts (what the project stores), or ReviewError naming the
    file and the question."""
    data = read_yaml(path, "questions", ReviewError)
    if isinstance(data, dict) and set(data) == {"questions"}:
        data = data["questions"]
    if not isinstance(data, list) or not data:
        raise ReviewError(f"{path}: expected a list of questions (or `questions:` with one), e.g. "
                          "`- {name: topic, kind: label, labels: [maths, code, chat]}`")  # fmt: skip
    out: list[dict[str, Any]] = []
    for n, raw in enumerate(data, 1):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"{path}: question {n}" + (f" ({name})" if isinstance(name, str) else "")
        if not isinstance(raw, dict):
            raise ReviewError(f"{where}: expected a mapping with name and kind")
        if raw.get("kind") not in KINDS:
            raise ReviewError(f"{where}: kind must be one of {', '.join(KINDS)}, not {raw.get('kind')!r}")
        try:
            q = _ADAPTER.validate_python(raw).model_dump()
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(x) for x in first["loc"][1:]) or "question"
            raise ReviewError(f"{where}: {field}: {first['msg']}") from None
        if any(q["name"] == o["name"] for o in out):
            raise ReviewError(f"{where}: another question is already named {q['name']!r}")
        if q["kind"] == "ranking" and task == "pairwise":
            raise ReviewError(f"{where}: a pairwise task already compares two answers; rank N candidates "
                              "with --task sft (or rating, label, kto)")  # fmt: skip
        q["title"] = q["title"] or q["name"]
        out.append(q)
    return out


def applies(q: dict[str, Any], item: dict[str, Any]) -> bool:
    """Whether an item can answer ``q``: ranking needs two or more candidates, edit an answer."""
    if q["kind"] == "ranking":
        return len(item.get("rank") or []) >= 2
    if q["kind"] == "edit":
        return item.get("answer") is not None
    return True


def check(questions: list[dict[str, Any]], item: dict[str, Any], given: Any) -> dict[str, Any] | None:
    """The stored responses, or ValueError saying which question is wrong and why. ``item``: the
    payload fields ``rank`` and ``answer`` that ranking and edit questions need."""
    if not questions:
        if given:
            raise ValueError("this project asks no questions; send no 'responses'")
        return None
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise ValueError("responses must be an object: {question name: answer}")
    known = {q["name"]: q for q in questions}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"no question named {unknown[0]!r} (questions: {', '.join(known)})")
    out: dict[str, Any] = {}
    for q in questions:
        value = given.get(q["name"])
        if not applies(q, item) or _empty(value):
            if q["required"] and applies(q, item):
                raise ValueError(f"question {q['title']!r} needs an answer")
            continue
        out[q["name"]] = _one(q, item, value)
    return out


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or (isinstance(value, str) and not value.strip())


def _one(q: dict[str, Any], item: dict[str, Any], value: Any) -> Any:
    title, kind = q["title"], q["kind"]
    if kind == "label":
        if value not in q["labels"]:
            raise ValueError(f"{title}: choose one of {', '.join(q['labels'])}")
    elif kind == "multi_label":
        if not isinstance(value, list) or len(set(value)) != len(value) or not set(value) <= set(q["labels"]):
            raise ValueError(f"{title}: a list of distinct labels of {', '.join(q['labels'])}")
        value = [x for x in q["labels"] if x in value]  # in the label set's order: comparable answers
    elif kind == "rating":
        names = [c["name"] for c in q["criteria"]]
        if not isinstance(value, dict) or set(value) != set(names):
            raise ValueError(f"{title}: rate every criterion: {', '.join(names)}")
        for crit, n in value.items():
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= q["scale"]:
                raise ValueError(f"{title}: {crit} must be a whole number from 1 to {q['scale']}")
        value = {c: value[c] for c in names}
    elif kind in ("text", "edit"):
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ValueError(f"{title}: text of at most {MAX_TEXT:,} characters")
    elif kind == "ranking":
        n = len(item["rank"])
        if not isinstance(value, list) or sorted(value) != list(range(1, n + 1)):
            raise ValueError(f"{title}: give each of the {n} candidates a different rank from 1 to {n}")
    return value


# --------------------------------------------------------------------------- values


def task_value(task: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The task's own question as values: the decision (sft, kto), the candidate chosen (pairwise), the
    label, or each rating criterion."""
    if task == "rating":
        return dict(fields.get("ratings") or {})
    if task == "label":
        return {"label": fields["labels"][0]} if fields.get("labels") else {}
    if task == "pairwise":
        d = fields.get("decision")
        return {"decision": f"candidate {fields.get('choice')}" if d in ("a", "b") else d}
    return {"decision": fields.get("decision")}


def values(settings: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Every comparable value of one answer: the task's, then the questions' (text and edits are not
    compared)."""
    out = task_value(settings["task"], fields)
    responses = fields.get("responses") or {}
    for q in settings.get("questions") or []:
        if q["name"] not in responses:
            continue
        value = responses[q["name"]]
        if q["kind"] == "label":
            out[q["name"]] = value
        elif q["kind"] == "multi_label":
            out |= {f"{q['name']}: {label}": label in value for label in q["labels"]}
        elif q["kind"] == "rating":
            out |= {f"{q['name']}: {crit}": n for crit, n in value.items()}
        elif q["kind"] == "ranking":
            out |= {f"{q['name']}: candidate {i}": r for i, r in enumerate(value)}
    return out


def scales(settings: dict[str, Any]) -> dict[str, list[int]]:
    """The rating keys with every value they can take (agreement's ordinal domain)."""
    out: dict[str, list[int]] = {}
    if settings["task"] == "rating":
        out |= dict.fromkeys(settings["criteria"], list(range(1, settings["scale"] + 1)))
    for q in settings.get("questions") or []:
        if q["kind"] == "rating":
            out |= {f"{q['name']}: {c['name']}": list(range(1, q["scale"] + 1)) for c in q["criteria"]}
    return out


def rank_keys(settings: dict[str, Any]) -> set[str]:
    """The ranking questions' names: their keys are ``NAME: candidate I``, with ranks as values."""
    return {q["name"] for q in settings.get("questions") or [] if q["kind"] == "ranking"}


def ordered(settings: dict[str, Any], key: str, ratings: dict[str, list[int]] | None = None) -> bool:
    """Whether ``key``'s values are ordered numbers (a rating or a rank) rather than categories."""
    return key in (scales(settings) if ratings is None else ratings) or key.split(": candidate ")[0] in rank_keys(
        settings
    )


def differ(settings: dict[str, Any], answers: list[dict[str, Any]]) -> bool:
    """Whether people disagree on an item (``answers``: each one's :func:`values`): a category differs,
    or a rating or rank is two or more apart — one point on a 1-5 scale is noise, not disagreement."""
    ratings = scales(settings)
    for key in {k for a in answers for k in a}:
        got = [a[key] for a in answers if key in a]
        if len(got) < 2:
            continue
        if (max(got) - min(got) >= 2) if ordered(settings, key, ratings) else len(set(map(str, got))) > 1:
            return True
    return False


def combine(questions: list[dict[str, Any]], responses: list[dict[str, Any]]) -> dict[str, Any]:
    """Several people's responses as one (export's ``meta.review.responses``): the most-voted label
    (None on a tie), the labels more than half chose, the mean rating per criterion and mean rank per
    candidate, every text, and the most-voted edit (None on a tie)."""
    out: dict[str, Any] = {}
    for q in questions:
        got = [r[q["name"]] for r in responses if q["name"] in r]
        if not got:
            continue
        kind = q["kind"]
        if kind in ("label", "edit"):
            top = Counter(got).most_common(2)
            out[q["name"]] = None if len(top) == 2 and top[0][1] == top[1][1] else top[0][0]
        elif kind == "multi_label":
            out[q["name"]] = [x for x in q["labels"] if 2 * sum(x in v for v in got) > len(got)]
        elif kind == "rating":
            out[q["name"]] = {c: round(sum(v[c] for v in got) / len(got), 3) for c in got[0]}
        elif kind == "ranking":
            out[q["name"]] = [round(sum(v[i] for v in got) / len(got), 3) for i in range(len(got[0]))]
        else:
            out[q["name"]] = got
    return out


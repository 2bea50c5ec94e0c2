"""quality_classifier: score every record with a model from ``datamill quality train`` (loaded once
per worker process) into ``meta``, and optionally drop those below a threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from datamill.clean.quality_classifier import QualityModel
from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record


class QualityClassifierConfig(OpConfig):
    model: str = Field(description="the model folder (model.json + weights.npz) that `datamill quality train` wrote")
    part: Literal["all", "prompt", "answer", "text"] | None = Field(
        None, description="the text to score (default: the part the model was trained on)"
    )
    field: str = Field("quality_classifier_score", description="meta key the score is written to")
    threshold: float | None = Field(
        None, description="drop records scored below this (P(good) for a label model, 0-5 for a score model)"
    )

    @field_validator("model")
    @classmethod
    def _has_model(cls, v: str) -> str:
        """A missing model fails when the recipe is loaded, with its line, not in the first chunk."""
        if not (Path(v) / "model.json").is_file():
            raise ValueError(f"{v}: no model.json there (relative paths start at the working directory)")
        return v


@register
class QualityClassifier(Filter):
    """Score records with a learned quality classifier (meta); drop those below ``threshold``."""

    name = "quality_classifier"
    Config = QualityClassifierConfig

    _model: QualityModel | None = None  # loaded on first use; the op itself lives once per worker process

    def reason(self, record: Record) -> str | None:
        cfg: QualityClassifierConfig = self.config
        if self._model is None:
            self._model = QualityModel.load(cfg.model)
        score = round(self._model.score(record.part(cfg.part or self._model.part)), 4)
        record.meta[cfg.field] = score
        self.counters["scored"] += 1
        if cfg.threshold is not None and score < cfg.threshold:
            return f"quality classifier score below {cfg.threshold:g}"
        return None

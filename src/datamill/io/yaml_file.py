"""A YAML file a user wrote beside a recipe (review questions, an ablation), read with ``yaml.safe_load`` —
no tags, so nothing in it is ever run — with one shape of message for a file that cannot be read or
parsed. (Recipes have their own loader: it also maps every value to its line.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from datamill.errors import DatamillError


def read_yaml(path: Path, what: str, error: type[DatamillError] = DatamillError) -> Any:
    """The document of ``path`` (``what`` it holds names it in messages), or ``error`` naming the file."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None

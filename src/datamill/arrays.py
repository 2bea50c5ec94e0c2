"""numpy helpers more than one package uses."""

from __future__ import annotations

import numpy as np


def windows(a: np.ndarray, width: int) -> np.ndarray:
    """Row i = ``a[i : i + width]``, a read-only view of a 1-D array with at least ``width`` items
    (numpy's ``sliding_window_view`` checks cost more than the work on the short arrays of one text)."""
    return np.lib.stride_tricks.as_strided(a, (len(a) - width + 1, width), (a.strides[0],) * 2, writeable=False)

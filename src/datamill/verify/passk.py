"""pass@k from n samples of which c are correct — the unbiased estimator of Chen et al. 2021 (Codex,
"Evaluating Large Language Models Trained on Code"): the chance that at least one of k samples drawn
without replacement from the n is correct,

    pass@k = 1 − C(n − c, k) / C(n, k)

(pass@1 = c / n). Exact integer binomials, so no product trick is needed for stability."""

from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Estimated pass@k of a prompt answered correctly ``c`` times out of ``n``; needs ``1 <= k <= n``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_at(n: int, c: int, ks: list[int]) -> dict[str, float]:
    """``{"pass@1": …, "pass@4": …}`` for the ``ks`` that ``n`` samples can estimate (k <= n), pass@1 always."""
    return {f"pass@{k}": pass_at_k(n, c, k) for k in sorted({1, *ks}) if k <= n}


def difficulty(n: int, c: int) -> float:
    """1 − the share of correct samples: 0 always solved, 1 never."""
    return 1.0 - c / n

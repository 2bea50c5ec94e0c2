"""Vectorized MinHash + LSH: shingling, signatures, band keys, parameter choice, clustering.

No Python runs per shingle; everything is batch-wise:

1. Script, per record: a text whose letters are at least ``cjk_ratio`` CJK (Han, kana, hangul) is
   shingled by **characters**, any other by **words** (Arrow regex counts over the batch).
2. Tokens: Arrow splits the whole batch on whitespace and dictionary-encodes the tokens; each
   *distinct* token is normalized (``normalize_token``: NFKC, lowercase, ``1,000`` → ``1000``,
   punctuation removed) and hashed once with xxh3-64. Punctuation-only tokens are dropped. In
   character mode every character is a token.
3. A shingle is ``n`` consecutive tokens of one record (``n = ngram`` for words, ``char_ngram`` for
   characters; a record with fewer tokens is one shingle); its hash combines the token hashes with
   per-position odd multipliers and a splitmix64 finalizer (numpy over the batch).
4. ``num_perm`` hash functions ``h_k(x) = (a_k·x + b_k) mod 2^64`` (a_k odd; multiply-add-shift
   hashing, the top 32 bits kept) are applied to all shingles × all k at once, and the per-record
   minimum is taken with ``np.minimum.reduceat``. Blocks of shingles are spread over threads (numpy
   releases the GIL), so both cores work.
5. LSH: the signature is cut into ``bands`` × ``rows``; each band hashes to a 64-bit bucket key that
   also encodes the band number, so one flat key space holds every band.
"""

from __future__ import annotations

import functools
import math
import os
import re
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from xxhash import xxh3_64_intdigest

from datamill.arrays import windows

NONWORD = re.compile(r"[\W_]+")
# punctuation, except inside numbers (used by decontaminate to split "day.She" but keep "1,000.50")
PUNCT_SPLIT = re.compile(r"(?<!\d)[^\w\s]+|[^\w\s]+(?!\d)")
MASK64 = (1 << 64) - 1
U64 = np.uint64

# positional multipliers for combining token hashes into a shingle hash (odd 64-bit constants)
_POS = np.array([(0x9E3779B97F4A7C15 * (2 * i + 1) + 0x632BE59BD9B4E019 * i) & MASK64 | 1 for i in range(64)], U64)
_CP_MUL = U64(0x100000001B3)  # FNV prime: the polynomial base for code points


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer, elementwise on uint64 (wrapping arithmetic)."""
    x = x + U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> U64(27))) * U64(0x94D049BB133111EB)
    return x ^ (x >> U64(31))


CJK_RE = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"
LETTER_RE = r"[\p{L}\p{N}]"


def char_mode_mask(arr: pa.Array, cjk_ratio: float) -> np.ndarray:
    """Per text: True when at least ``cjk_ratio`` of its letters are CJK (shingle by characters)."""
    mask = np.zeros(len(arr), bool)
    ascii_ = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    non = np.flatnonzero(~ascii_)
    if len(non):
        sub = arr.take(pa.array(non))
        n_cjk = pc.count_substring_regex(sub, CJK_RE).to_numpy(zero_copy_only=False)
        n_letters = pc.count_substring_regex(sub, LETTER_RE).to_numpy(zero_copy_only=False)
        mask[non] = (n_cjk > 0) & (n_cjk >= cjk_ratio * np.maximum(n_letters, 1))
    return mask


THOUSANDS = re.compile(r"(?<=\d)[,_](?=\d{3})")
DECIMAL_ZEROS = re.compile(r"(?<=\d)\.0+$")


@functools.lru_cache(maxsize=1 << 17)
def normalize_token(token: str) -> str:
    """NFKC, lowercase, ``1,000`` → ``1000``, ``5.00`` → ``5``, punctuation removed (remembered for the
    most recent 131,072 tokens: words repeat, and decontaminate normalizes every one it reads)."""
    t = unicodedata.normalize("NFKC", token).lower()
    if any(ch.isdigit() for ch in t):
        t = DECIMAL_ZEROS.sub("", THOUSANDS.sub("", t.rstrip(".,;:!?)]}\"'")))
    return NONWORD.sub("", t)


def normalize_text(text: str) -> str:
    """NFKC (full width → half), lowercase, punctuation and symbols → space (kept inside numbers, so
    1,000.5 survives), whitespace collapsed: "world,this" and "world, this" give the same words."""
    return " ".join(PUNCT_SPLIT.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


def _token_hash(token: str) -> int | None:
    t = normalize_token(token)
    return xxh3_64_intdigest(t.encode()) if t else None


@dataclass(frozen=True)
class Shingles:
    hashes: np.ndarray  # uint64, shingles of record 0, then record 1, …
    doc: np.ndarray  # int64, record index (within the batch) of each shingle
    char_mode: np.ndarray  # bool per record: shingled by characters (CJK)
    count: np.ndarray  # int64 per record: number of shingles (0 = no word characters)
    n_tokens: np.ndarray  # int64 per record: number of tokens (fewer than n: one shorter shingle)


def tokens(
    texts: Sequence[str], cjk_ratio: float = 0.3, normalize: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(token hashes uint64, tokens per text, char_mode per text). Words are split on whitespace
    by Arrow; each distinct raw token is normalized (NFKC, lowercase, punctuation removed) and
    hashed once with xxh3; tokens that are only punctuation are dropped. In character mode every
    character is a token. ``normalize`` first rewrites each whole text with ``normalize_text``, so
    punctuation glued between words splits them instead of joining them."""
    n_docs = len(texts)
    if normalize:
        texts = [normalize_text(t) for t in texts]
    arr = pa.array(texts, pa.large_string())
    char_mode = char_mode_mask(arr, cjk_ratio)
    if char_mode.any():
        texts = list(texts)
        for i in np.flatnonzero(char_mode):
            texts[i] = " ".join(texts[i])
        arr = pa.array(texts, pa.large_string())
    split = pc.utf8_split_whitespace(arr)
    per_doc = np.diff(split.offsets.to_numpy(zero_copy_only=False)).astype(np.int64)
    enc = pc.list_flatten(split).dictionary_encode()
    uniq = enc.dictionary.to_pylist()
    uh = np.zeros(len(uniq), U64)
    ok = np.zeros(len(uniq), bool)
    for j, tok in enumerate(uniq):
        h = _token_hash(tok)
        if h is not None:
            uh[j], ok[j] = h, True
    idx = enc.indices.to_numpy(zero_copy_only=False)
    keep = ok[idx]
    doc = np.repeat(np.arange(n_docs), per_doc)[keep]
    return uh[idx][keep], np.bincount(doc, minlength=n_docs), char_mode


def ngram_hashes(token_hashes: np.ndarray, n: int) -> np.ndarray:
    """The hash of every ``n`` consecutive token hashes (none when there are fewer), combined as
    ``shingle`` combines them."""
    if len(token_hashes) < n:
        return np.zeros(0, U64)
    return _splitmix((windows(token_hashes, n) * _POS[np.arange(n) % 64]).sum(axis=1, dtype=U64) ^ U64(n))


def shingle(
    texts: Sequence[str], ngram: int = 5, char_ngram: int = 5, cjk_ratio: float = 0.3, normalize: bool = False
) -> Shingles:
    """Hash the shingles of a batch of texts: ``ngram`` consecutive words, or ``char_ngram``
    consecutive characters for CJK texts (a text with fewer tokens is one shingle); ``normalize``:
    see ``tokens``."""
    n_docs = len(texts)
    if n_docs == 0:
        z = np.zeros(0, np.int64)
        return Shingles(np.zeros(0, U64), z, np.zeros(0, bool), z, z)
    tok_hash, n_tok, char_mode = tokens(texts, cjk_ratio, normalize)
    first_tok = np.concatenate([[0], np.cumsum(n_tok)[:-1]])
    n_eff = np.minimum(np.where(char_mode, char_ngram, ngram), n_tok)
    count = np.where(n_tok > 0, n_tok - n_eff + 1, 0)
    sh_doc = np.repeat(np.arange(n_docs), count)
    if len(sh_doc) == 0:
        return Shingles(np.zeros(0, U64), sh_doc, char_mode, count, n_tok)
    sh_start = np.concatenate([[0], np.cumsum(count)[:-1]])
    sh_first = first_tok[sh_doc] + (np.arange(len(sh_doc)) - sh_start[sh_doc])
    sh_n = n_eff[sh_doc]
    acc = np.zeros(len(sh_doc), U64)
    last = len(tok_hash) - 1
    for i in range(int(sh_n.max())):
        take = tok_hash[np.minimum(sh_first + i, last)] * _POS[i % 64]
        acc += np.where(i < sh_n, take, U64(0))
    return Shingles(_splitmix(acc ^ sh_n.astype(U64)), sh_doc, char_mode, count, n_tok)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**63, size=num_perm, dtype=np.int64).astype(U64) * U64(2) + U64(1)  # odd
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.int64).astype(U64) * U64(2)
    return a, b


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    return _POOL


def _forget_pool() -> None:
    """In a forked child the parent's pool has no threads (a task sent to it would wait forever): the
    child makes its own — a run's workers hash signatures (``minhash_dedup.precompute``)."""
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool)


def signatures(sh: Shingles, a: np.ndarray, b: np.ndarray, block: int = 1024) -> np.ndarray:
    """uint32 MinHash signatures (records × num_perm); records without shingles get all 0xFFFFFFFF."""
    n_docs, k = len(sh.count), len(a)
    sig = np.full((n_docs, k), np.iinfo(np.uint64).max, U64)
    total = len(sh.hashes)

    def one(lo: int) -> tuple[np.ndarray, np.ndarray]:
        hi = min(lo + block, total)
        h = np.multiply(sh.hashes[lo:hi, None], a[None, :])
        np.add(h, b[None, :], out=h)
        d = sh.doc[lo:hi]
        seg = np.flatnonzero(np.concatenate([[True], d[1:] != d[:-1]]))
        return d[seg], np.minimum.reduceat(h, seg, axis=0)

    for docs, mins in _pool().map(one, range(0, total, block)):
        sig[docs] = np.minimum(sig[docs], mins)
    return (sig >> U64(32)).astype(np.uint32)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 bucket keys (records × bands); the band number is part of the key."""
    n = sig.shape[0]
    x = sig[:, : bands * rows].astype(U64).reshape(n, bands, rows)
    acc = np.zeros((n, bands), U64) + np.arange(bands, dtype=U64)[None, :] * U64(0xD6E8FEB86659FD93)
    for r in range(rows):
        acc = _splitmix(acc ^ (x[:, :, r] * _POS[r % 64]))
    return acc


# ---- choosing bands × rows ---------------------------------------------------------------------
def _integrate(f, lo: float, hi: float, steps: int = 200) -> float:
    xs = np.linspace(lo, hi, steps + 1)
    ys = f(xs)
    return float(np.sum((ys[1:] + ys[:-1]) * (xs[1:] - xs[:-1]) / 2))


def false_positive_area(threshold: float, b: int, r: int) -> float:
    return _integrate(lambda s: 1 - (1 - s**r) ** b, 0.0, threshold)


def false_negative_area(threshold: float, b: int, r: int) -> float:
    return _integrate(lambda s: (1 - s**r) ** b, threshold, 1.0)


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands·rows ≤ num_perm minimizing the weighted areas under the S-curve
    P(candidate | Jaccard s) = 1 − (1 − s^r)^b left of the threshold (false positives) and right
    of it (false negatives)."""
    best, best_err = (1, num_perm), math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = fp_weight * false_positive_area(threshold, b, r) + fn_weight * false_negative_area(threshold, b, r)
            if err < best_err - 1e-12:
                best, best_err = (b, r), err
    return best


# ---- clustering ----------------------------------------------------------------------------------
def bucket_edges(keys: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges chaining the records that share a bucket key."""
    order = np.argsort(keys, kind="stable")
    k, i = keys[order], idx[order]
    same = k[1:] == k[:-1]
    return i[:-1][same], i[1:][same]

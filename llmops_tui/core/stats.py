"""Statistics for comparisons: confidence intervals and paired tests, thin wrappers over scipy.

Every function is deterministic (a seeded numpy Generator) so a report is the same each time it is built.

- ``mean_ci``: 95% interval for a mean. 0/1 scores use the Wilson score interval (scipy's
  ``binomtest(...).proportion_ci``); other scores use a percentile bootstrap (``scipy.stats.bootstrap``,
  2,000 resamples).
- ``paired_test``: is cell B different from cell A over the same lines? 0/1 scores use McNemar's exact test
  (a two-sided binomial test on the discordant pairs); other scores use a paired bootstrap test: the
  per-line differences are resampled (``scipy.stats.bootstrap``, 2,000 resamples), the resampled means are
  shifted to a zero mean (the null hypothesis) and p is the share at least as far from zero as the observed
  mean difference. (scipy's ``permutation_test`` gives the same answers but is about 6x slower, and
  ``llmops compare`` must answer a 20-cell x 1,000-line run in under 2 s.) With few pairs, p is never
  below 2 / 2^n, the smallest p the exact sign-flip permutation test can give; one pair gives p = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# scipy.stats costs about 0.8 s to import: it is loaded where a test or an interval needs it, so the
# sweep engine (which only needs percentiles) starts without it.


def _scipy_stats():
    from scipy import stats

    return stats


N_RESAMPLES = 2000
ALPHA = 0.05
CONFIDENCE = 0.95
MIN_PAIRED_LINES = 20  # below this, a paired test says little: we warn
DEFAULT_SEED = 20240501


def is_binary(values: Sequence[float] | np.ndarray) -> bool:
    """True when every value is 0 or 1 (booleans count)."""
    arr = np.asarray(values, dtype=float)
    return arr.size > 0 and bool(np.all((arr == 0) | (arr == 1)))


def mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float | None, float | None]:
    """(low, high) of a ``confidence`` interval for the mean; (None, None) with fewer than 2 values."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    n = arr.size
    if n < 2:
        return None, None
    if is_binary(arr):
        k = int(arr.sum())
        ci = _scipy_stats().binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
        return float(ci.low), float(ci.high)
    if np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])  # no spread: the bootstrap is degenerate
    res = _scipy_stats().bootstrap(
        (arr,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass
class PairedResult:
    """The outcome of a paired test of B against A over the same lines."""

    n: int  # paired lines
    delta: float  # mean(B) - mean(A) over the paired lines
    p_value: float | None
    significant: bool | None  # None when there was nothing to test
    method: str  # "mcnemar" | "bootstrap" | "identical" | "none"
    too_few: bool  # fewer than MIN_PAIRED_LINES pairs: the answer is weak

    @property
    def note(self) -> str:
        if self.method == "none":
            return "no paired lines"
        text = {
            "mcnemar": "McNemar exact test",
            "bootstrap": "paired bootstrap test",
            "identical": "identical scores",
        }[self.method]
        if self.too_few:
            text += f"; only {self.n} paired lines (fewer than {MIN_PAIRED_LINES}): too few to tell"
        return text


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` (A right, B wrong) and ``c``
    (A wrong, B right): a binomial test of b successes in b + c trials at p = 0.5."""
    if b + c == 0:
        return 1.0
    return float(_scipy_stats().binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def paired_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    alpha: float = ALPHA,
    n_resamples: int = N_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedResult:
    """Test whether paired scores ``b`` differ from ``a`` (same lines, same order). NaN pairs are dropped."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n == 0:
        return PairedResult(0, math.nan, None, None, "none", True)
    delta = float(y.mean() - x.mean())
    too_few = n < MIN_PAIRED_LINES
    if np.array_equal(x, y):
        return PairedResult(n, 0.0, 1.0, False, "identical", too_few)
    if is_binary(x) and is_binary(y):
        b_count = int(np.sum((x == 1) & (y == 0)))
        c_count = int(np.sum((x == 0) & (y == 1)))
        p = mcnemar_exact(b_count, c_count)
        return PairedResult(n, delta, p, p < alpha, "mcnemar", too_few)
    if n < 2:
        # One pair: nothing to resample, and no test can tell a difference from noise.
        return PairedResult(n, delta, 1.0, False, "bootstrap", too_few)
    d = y - x
    res = _scipy_stats().bootstrap(
        (d,),
        np.mean,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    # Shifted-bootstrap test: centre the resampled mean differences on zero (the null) and count how
    # often they lie at least as far from zero as the observed difference.
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    extreme = int(np.sum(np.abs(dist - delta) >= abs(delta) - 1e-12))
    p = (extreme + 1) / (dist.size + 1)
    # With few pairs the bootstrap distribution is too narrow (all differences of one sign give p ~ 0
    # even for 2 lines). The exact sign-flip permutation test cannot go below 2 / 2^n, so neither do we:
    # this keeps small samples from being called significant, and changes nothing from 12 pairs on.
    p = max(p, min(1.0, 2.0 ** (1 - n)))
    return PairedResult(n, delta, p, p < alpha, "bootstrap", too_few)


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation), None for no values."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return None
    return float(np.percentile(arr, q))


@dataclass
class UnpairedResult:
    """The outcome of a test of B against A over different requests (an A/B split)."""

    n_a: int
    n_b: int
    delta: float  # mean(B) - mean(A)
    p_value: float | None
    significant: bool | None  # None when there was nothing to test
    method: str  # "fisher" | "welch" | "identical" | "none"

    @property
    def note(self) -> str:
        return {
            "fisher": "Fisher's exact test (unpaired)",
            "welch": "Welch's t-test (unpaired)",
            "identical": "identical scores",
            "none": "too few values",
        }[self.method]


def unpaired_test(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, alpha: float = ALPHA
) -> UnpairedResult:
    """Test whether scores ``b`` differ from ``a`` when they come from different lines (different
    requests, as in an A/B split). 0/1 scores use Fisher's exact test on the 2x2 table; other scores use
    Welch's t-test (unequal variances). NaNs are dropped; fewer than 2 values on a side: no test."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size < 2 or y.size < 2:
        delta = float(y.mean() - x.mean()) if x.size and y.size else math.nan
        return UnpairedResult(int(x.size), int(y.size), delta, None, None, "none")
    delta = float(y.mean() - x.mean())
    st = _scipy_stats()
    if is_binary(x) and is_binary(y):
        table = [[int(x.sum()), int(x.size - x.sum())], [int(y.sum()), int(y.size - y.sum())]]
        p = float(st.fisher_exact(table, alternative="two-sided").pvalue)
        return UnpairedResult(int(x.size), int(y.size), delta, p, p < alpha, "fisher")
    if np.all(x == x[0]) and np.all(y == y[0]):
        same = bool(x[0] == y[0])
        return UnpairedResult(int(x.size), int(y.size), delta, 1.0 if same else 0.0, not same, "identical")
    p = float(st.ttest_ind(x, y, equal_var=False).pvalue)
    if math.isnan(p):
        p = 1.0
    return UnpairedResult(int(x.size), int(y.size), delta, p, p < alpha, "welch")


def sample_size_per_arm(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    effect: float,
    *,
    alpha: float = ALPHA,
    power: float = 0.8,
) -> int | None:
    """About how many values per arm a two-sided test at ``alpha`` needs to find a difference of
    ``effect`` in the means with probability ``power`` (normal approximation, the arms' pooled spread;
    for 0/1 scores the spread of the proportions). None without spread or effect."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if not effect or x.size < 2 or y.size < 2:
        return None
    var = float(np.var(x, ddof=1) + np.var(y, ddof=1))
    if is_binary(x) and is_binary(y):
        pa, pb = float(x.mean()), float(y.mean())
        var = pa * (1 - pa) + pb * (1 - pb)
        if var == 0:
            var = 2 * 0.25 * 0.1  # both arms all-correct (or all-wrong) so far: assume a little spread
    if var <= 0:
        return None
    st = _scipy_stats()
    z = float(st.norm.ppf(1 - alpha / 2) + st.norm.ppf(power))
    return int(math.ceil(z * z * var / (effect * effect)))

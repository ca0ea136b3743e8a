"""Statistics checked against known cases (seeded, deterministic)."""

from __future__ import annotations

import numpy as np
import pytest

from llmops_tui.core import stats


def test_mcnemar_known_table():
    # Discordant pairs b=10 (A right, B wrong), c=2: exact two-sided p = 2 * P(X <= 2 | n=12, p=0.5)
    # = 2 * (1 + 12 + 66) / 4096 = 0.03857...
    assert stats.mcnemar_exact(10, 2) == pytest.approx(158 / 4096, rel=1e-9)
    assert stats.mcnemar_exact(2, 10) == pytest.approx(158 / 4096, rel=1e-9)
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(5, 5) == pytest.approx(1.0)


def test_paired_test_uses_mcnemar_for_binary_scores():
    # 12 discordant pairs (10 vs 2) plus 30 concordant ones: only the discordant pairs matter.
    a = [1] * 10 + [0] * 2 + [1] * 20 + [0] * 10
    b = [0] * 10 + [1] * 2 + [1] * 20 + [0] * 10
    res = stats.paired_test(a, b)
    assert res.method == "mcnemar"
    assert res.p_value == pytest.approx(158 / 4096)
    assert res.significant is True
    assert res.delta == pytest.approx((22 - 30) / 42)


def test_wilson_interval_for_binary_mean():
    low, high = stats.mean_ci([1] * 80 + [0] * 20)
    # Wilson 95% interval for 80/100: (0.7112, 0.8666)
    assert low == pytest.approx(0.7112, abs=5e-4)
    assert high == pytest.approx(0.8666, abs=5e-4)


def test_bootstrap_interval_covers_mean_and_is_deterministic():
    rng = np.random.default_rng(3)
    x = rng.normal(0.6, 0.2, 400)
    ci1 = stats.mean_ci(x)
    ci2 = stats.mean_ci(x)
    assert ci1 == ci2
    assert ci1[0] < x.mean() < ci1[1]
    # about 1.96 * sd / sqrt(n) on each side
    half = (ci1[1] - ci1[0]) / 2
    assert half == pytest.approx(1.96 * x.std(ddof=1) / np.sqrt(x.size), rel=0.15)


def test_degenerate_inputs():
    assert stats.mean_ci([]) == (None, None)
    assert stats.mean_ci([0.5]) == (None, None)
    assert stats.mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    res = stats.paired_test([0.2, 0.4], [0.2, 0.4])
    assert res.method == "identical" and res.significant is False
    assert stats.paired_test([], []).method == "none"
    assert stats.percentile([], 50) is None
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5


def _null_trial(seed: int, n: int, binary: bool) -> bool:
    rng = np.random.default_rng(seed)
    difficulty = rng.beta(2, 2, n)
    if binary:
        a = (rng.random(n) < difficulty).astype(float)
        b = (rng.random(n) < difficulty).astype(float)
    else:
        a = np.clip(difficulty + rng.normal(0, 0.1, n), 0, 1)
        b = np.clip(difficulty + rng.normal(0, 0.1, n), 0, 1)
    return bool(stats.paired_test(a, b, seed=seed).significant)


@pytest.mark.parametrize("binary", [False, True], ids=["bootstrap", "mcnemar"])
def test_zero_true_difference_is_rarely_significant(binary):
    # At alpha = 0.05 the expected false-positive rate of a calibrated test is 5% (McNemar's exact test is
    # conservative, below that). The seeds are fixed, so this is deterministic: 200 null trials of 200
    # paired lines each, at most 5% called significant.
    trials = 200
    false_positives = sum(_null_trial(10_000 + s, 200, binary) for s in range(trials))
    assert false_positives / trials <= 0.05


@pytest.mark.parametrize("binary", [False, True], ids=["bootstrap", "mcnemar"])
def test_large_difference_is_found(binary):
    found = 0
    for s in range(20):
        rng = np.random.default_rng(500 + s)
        difficulty = rng.beta(2, 2, 200)
        if binary:
            a = (rng.random(200) < difficulty).astype(float)
            b = (rng.random(200) < np.clip(difficulty + 0.2, 0, 1)).astype(float)
        else:
            a = np.clip(difficulty + rng.normal(0, 0.1, 200), 0, 1)
            b = np.clip(difficulty + 0.1 + rng.normal(0, 0.1, 200), 0, 1)
        res = stats.paired_test(a, b, seed=s)
        found += bool(res.significant) and res.delta > 0
    assert found == 20


def test_few_lines_are_flagged():
    res = stats.paired_test([0.1, 0.5, 0.9], [0.3, 0.6, 0.95])
    assert res.too_few
    assert "too few" in res.note


def test_one_pair_of_continuous_scores_does_not_crash():
    # `llmops sweep ... --limit 1` gives one line per cell: the bootstrap cannot resample one value.
    res = stats.paired_test([0.5], [0.7])
    assert res.n == 1 and res.p_value == 1.0 and res.significant is False and res.too_few


@pytest.mark.parametrize("n", [2, 3, 5])
def test_few_pairs_of_one_sign_are_not_significant(n):
    # Every difference positive: the plain shifted bootstrap says p ~ 0.0005 even for 2 lines; the exact
    # sign-flip permutation test cannot go below 2 / 2^n.
    a = np.linspace(0.1, 0.5, n)
    res = stats.paired_test(a, a + np.linspace(0.1, 0.2, n))
    assert res.p_value == pytest.approx(2.0 ** (1 - n))
    assert res.significant is False


def test_many_pairs_are_unchanged_by_the_small_sample_floor():
    rng = np.random.default_rng(3)
    a = rng.random(40)
    res = stats.paired_test(a, a + 0.2 + rng.normal(0, 0.05, 40))
    assert res.significant is True and res.p_value < 0.001

"""``tvo.comparison``: the paired and Welch differences against SciPy's own t-tests.

SciPy computes the same statistics by its own code (``ttest_rel``, ``ttest_ind(equal_var=
False)`` and their ``confidence_interval``); agreement to 1e-9 relative is floating-point
rounding, and a wrong variance, pairing or degrees of freedom moves them by far more (the last
test shows the pooled and unpaired answers are that far away on these numbers).
"""

import math

import pytest
from scipy import stats

from tvo import comparison

A = {0: -92.1, 1: -91.4, 2: -93.0, 3: -91.9, 4: -92.6}
B = {0: -92.9, 1: -91.8, 2: -93.9, 3: -92.0, 4: -93.5}
C = {10: -94.0, 11: -92.2, 12: -93.1}  # no seed in common with A


def test_the_paired_difference_is_scipys_ttest_rel():
    d = comparison.difference(A, B)
    seeds = sorted(A)
    expected = stats.ttest_rel([A[s] for s in seeds], [B[s] for s in seeds])
    interval = expected.confidence_interval(0.95)
    assert d.test == comparison.PAIRED and d.sizes == (5,) and d.count == "5 pairs"
    assert d.df == 4
    assert d.t == pytest.approx(expected.statistic, rel=1e-9)
    assert d.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert (d.low, d.high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert d.mean == pytest.approx(sum(A[s] - B[s] for s in seeds) / 5, rel=1e-12)


def test_only_the_shared_seeds_pair():
    extra = {**A, 7: -80.0}  # a seed B lacks: not part of any pair
    d = comparison.difference(extra, B)
    assert d.sizes == (5,) and d.mean == pytest.approx(comparison.difference(A, B).mean)


def test_seeds_that_do_not_pair_get_welchs_interval():
    d = comparison.difference(A, C)
    expected = stats.ttest_ind(list(A.values()), list(C.values()), equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert d.test == comparison.WELCH and d.sizes == (5, 3) and d.count == "5 + 3 seeds"
    assert d.t == pytest.approx(expected.statistic, rel=1e-9)
    assert d.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert d.df == pytest.approx(expected.df, rel=1e-9)
    assert (d.low, d.high) == pytest.approx((interval.low, interval.high), rel=1e-9)


def test_too_few_seeds_give_no_difference():
    assert comparison.difference({0: 1.0}, {0: 2.0}) is None
    assert comparison.difference({0: 1.0, 1: 2.0}, {5: 2.0}) is None
    with pytest.raises(ValueError, match="two shared seeds"):
        comparison.paired({0: 1.0, 1: 2.0}, {1: 2.0, 2: 3.0})


def test_equal_differences_have_no_spread():
    d = comparison.difference({0: 1.0, 1: 2.0}, {0: 0.0, 1: 1.0})
    assert d.mean == 1.0 and d.se == 0.0 and d.t == math.inf and d.p == 0.0


def test_the_wrong_tests_would_not_pass_these_checks():
    """What the checks above tell apart: on these numbers the unpaired (Welch on paired
    seeds) and pooled-variance answers differ from the right ones by more than 1e-3."""
    paired = comparison.difference(A, B)
    unpaired = stats.ttest_ind(list(A.values()), list(B.values()), equal_var=False)
    assert abs(unpaired.pvalue - paired.p) > 1e-3
    welch = comparison.difference(A, C)
    pooled = stats.ttest_ind(list(A.values()), list(C.values()), equal_var=True)
    assert abs(pooled.pvalue - welch.p) > 1e-3


def test_a_difference_is_clear_when_its_interval_excludes_zero():
    """d = 1.0, 1.1, 0.9: mean 1, SE 0.058, 95% half-width 4.30 · 0.058 = 0.25, so [0.75,
    1.25] is clear; the same differences around 0 (0.1, −0.1, 0.05) are not."""
    from tvo.comparison import paired

    zeros = {0: 0.0, 1: 0.0, 2: 0.0}
    assert paired({0: 1.0, 1: 1.1, 2: 0.9}, zeros).sign == 1
    assert paired(zeros, {0: 1.0, 1: 1.1, 2: 0.9}).sign == -1
    assert paired({0: 0.1, 1: -0.1, 2: 0.05}, zeros).sign == 0

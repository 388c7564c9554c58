"""The difference between two settings' results over seeds, with the test that fits the seeds.

A setting ``A`` is compared with a setting ``B`` (``Δ = A − B``) on one number per seed (the
final test ``log p̂(x)``, say), given as mappings from seed to value.

*Paired* (the seeds they share, ``n ≥ 2`` of them): the differences ``d_s = a_s − b_s`` of the
runs that share a seed, so that what a seed changes in both (the initialisation, the data
order) cancels::

    Δ̂ = mean(d),   SE = sd(d) / √n,   ν = n − 1

(``sd`` the sample standard deviation, divisor ``n − 1``): Student's paired t-test, as
``scipy.stats.ttest_rel``.

*Welch* (fewer than two shared seeds, at least two seeds each): independent samples of sizes
``n_a`` and ``n_b`` with their own variances::

    Δ̂ = mean(a) − mean(b),   SE² = v_a + v_b,   v = sd² / n,
    ν = (v_a + v_b)² / (v_a² / (n_a − 1) + v_b² / (n_b − 1))     (Welch–Satterthwaite)

as ``scipy.stats.ttest_ind(a, b, equal_var=False)``. Either way ``t = Δ̂ / SE``, the two-sided
p-value is ``2 P(T_ν > |t|)`` and the interval ``Δ̂ ± t_{ν, 1 − (1 − level)/2} · SE``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

PAIRED, WELCH = "paired t", "Welch t"


@dataclass(frozen=True)
class Difference:
    """``Δ = A − B`` over seeds.

    Attributes:
        test: ``PAIRED`` or ``WELCH``.
        mean: the estimate of ``Δ``.
        se: its standard error.
        df: the degrees of freedom of the t distribution.
        sizes: ``(pairs,)`` (paired) or ``(n_a, n_b)`` (Welch).
        low: the interval's lower end.
        high: the interval's upper end.
        level: the interval's confidence level.
        t: the t statistic ``mean / se``.
        p: the two-sided p-value.
    """

    test: str
    mean: float
    se: float
    df: float
    sizes: tuple[int, ...]
    low: float
    high: float
    level: float
    t: float
    p: float

    @property
    def sign(self) -> int:
        """``+1`` or ``-1`` where the interval excludes 0 (the difference is *clear*), ``0``
        where it holds 0."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    @property
    def count(self) -> str:
        """``5 pairs`` or ``3 + 4 seeds``."""
        if self.test == PAIRED:
            return f"{self.sizes[0]} pairs"
        return f"{self.sizes[0]} + {self.sizes[1]} seeds"


def _finish(test: str, mean: float, se: float, df: float, sizes, level: float) -> Difference:
    if se > 0:
        t = mean / se
    else:  # every difference equal: no spread to test against
        t = math.copysign(math.inf, mean) if mean else math.nan
    p = 2 * stats.t.sf(abs(t), df) if not math.isnan(t) else math.nan
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return Difference(test, mean, se, df, tuple(sizes), mean - half, mean + half, level, t, p)


def paired(a: dict, b: dict, level: float = 0.95) -> Difference:
    """The paired difference over the seeds ``a`` and ``b`` share (at least two).

    Args:
        a: setting A's value per seed.
        b: setting B's value per seed.
        level: the confidence level of the interval.
    """
    shared = [seed for seed in a if seed in b]
    if len(shared) < 2:
        raise ValueError(f"a paired difference needs two shared seeds or more, got {shared}")
    d = [a[s] - b[s] for s in shared]
    n = len(d)
    return _finish(PAIRED, statistics.fmean(d), statistics.stdev(d) / math.sqrt(n), n - 1, (n,),
                   level)  # fmt: skip


def welch(a: dict, b: dict, level: float = 0.95) -> Difference:
    """Welch's difference of the means of ``a`` and ``b`` (at least two seeds each).

    Args:
        a: setting A's value per seed.
        b: setting B's value per seed.
        level: the confidence level of the interval.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs two seeds or more on each side, got {len(a)} and "
                         f"{len(b)}")  # fmt: skip
    va = statistics.variance(a.values()) / len(a)
    vb = statistics.variance(b.values()) / len(b)
    mean = statistics.fmean(a.values()) - statistics.fmean(b.values())
    se = math.sqrt(va + vb)
    denominator = va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)
    df = (va + vb) ** 2 / denominator if denominator > 0 else float(len(a) + len(b) - 2)
    return _finish(WELCH, mean, se, df, (len(a), len(b)), level)


def difference(a: dict, b: dict, level: float = 0.95) -> Difference | None:
    """``A − B`` by ``paired`` where they share two seeds or more, else by ``welch``
    where each has two seeds or more; ``None`` where neither is possible. ``a`` and ``b`` map a
    seed to its value.

    Args:
        a: setting A's value per seed.
        b: setting B's value per seed.
        level: the confidence level of the interval.
    """
    if sum(seed in b for seed in a) >= 2:
        return paired(a, b, level)
    if len(a) >= 2 and len(b) >= 2:
        return welch(a, b, level)
    return None

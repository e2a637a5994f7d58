"""The report's statistics, pure functions of numbers: Student-t quantiles and intervals, the two-sided paired
t-test, Holm's step-down adjustment, the TOST equivalence test and the pooled standard deviation.

Everything here works on plain floats in whatever unit it is given (the report passes fractions of accuracy);
``scipy.stats.t`` (a declared dependency) supplies the t distribution."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


def t_quantile(probability: float, dof: int) -> float:
    """Student's t quantile (``scipy.stats.t.ppf``), e.g. ``t_quantile(0.975, 2) = 4.3027``."""
    from scipy.stats import t

    return float(t.ppf(probability, dof))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1); std is nan for fewer than two values, both nan for none."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The two-sided t confidence interval of the mean of ``values``; (nan, nan) for fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, std = mean_std(values)
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def t_test_p(values: Sequence[float]) -> float:
    """The two-sided p-value of the one-sample t-test of mean 0 (a paired t-test when ``values`` are paired
    differences), ``n - 1`` degrees of freedom; nan for fewer than two values. Zero spread: 1 when the mean is 0,
    else 0 (every difference is the same non-zero number)."""
    n = len(values)
    if n < 2:
        return math.nan
    mean, std = mean_std(values)
    if std == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    from scipy.stats import t

    statistic = mean / (std / math.sqrt(n))
    return float(min(1.0, 2.0 * t.sf(abs(statistic), n - 1)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjustment, in the input's order: the i-th smallest of m p-values becomes
    ``max over j <= i of min(1, (m - j + 1) * p_(j))``; nan stays nan and does not count in m.
    ``holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]``."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(order)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Tost:
    """Two one-sided t-tests of ``|mean| < margin`` at level ``alpha`` each: equivalent exactly when the
    ``1 - 2 * alpha`` t-interval lies inside ``(-margin, +margin)``."""

    margin: float
    alpha: float
    ci_low: float  # the 1 - 2 * alpha interval
    ci_high: float
    p: float  # the larger of the two one-sided p-values (equivalent when p < alpha)

    @property
    def level(self) -> float:
        return 1.0 - 2.0 * self.alpha

    @property
    def equivalent(self) -> bool:
        return not math.isnan(self.ci_low) and -self.margin < self.ci_low and self.ci_high < self.margin


def tost(values: Sequence[float], margin: float, alpha: float) -> Tost:
    """TOST of ``values``' mean against ``±margin`` (same unit as the values); nan interval for fewer than two."""
    low, high = t_interval(values, 1.0 - 2.0 * alpha)
    n = len(values)
    if n < 2:
        return Tost(margin, alpha, low, high, math.nan)
    mean, std = mean_std(values)
    if std == 0.0:
        p = 0.0 if abs(mean) < margin else 1.0
    else:
        from scipy.stats import t

        se = std / math.sqrt(n)
        p = float(max(t.sf((mean + margin) / se, n - 1), t.sf((margin - mean) / se, n - 1)))
    return Tost(margin, alpha, low, high, p)


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """The pooled standard deviation within groups: ``sqrt(sum of squared deviations from each group's mean /
    sum of (n_g - 1))``; nan when no group has two values."""
    squares, dof = 0.0, 0
    for values in groups:
        if len(values) < 2:
            continue
        mean = sum(values) / len(values)
        squares += sum((v - mean) ** 2 for v in values)
        dof += len(values) - 1
    return math.sqrt(squares / dof) if dof else math.nan


def level_text(confidence: float) -> str:
    """``95%``, ``90%``, ``97.5%``: a confidence level as people write it."""
    return f"{confidence * 100:.4g}%"

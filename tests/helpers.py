"""Helpers shared by several test modules."""

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class Memoriser(BaseEstimator, RegressorMixin):
    """Predicts 1 for a feature row it was trained on and 0 otherwise: any leak across folds shows as a 1."""

    def fit(self, features, reward):
        self.seen_ = {tuple(row) for row in features.toarray().round(12)}
        return self

    def predict(self, features):
        return np.array([1.0 if tuple(r) in self.seen_ else 0.0 for r in features.toarray().round(12)])


def score_excess(end, influence, intercept, slope, tail, shrink=False):
    """``n d^2 - t^2 Var_d`` at an interval end ``value + d`` of causalrec's score interval, rebuilt from its
    definition for 0/1 rewards: the rounds with a positive slope have their click probability moved by ``delta``,
    so each raw moment of ``y = influence - mean`` moves by ``delta * mean(h ((y0 + slope)^k - y0^k))``
    (``y0 = intercept - mean``), ``d = delta * mean(h slope)``, and ``t`` is the Student-t quantile with the larger
    Welch-Satterthwaite degrees of freedom of the kurtosis at ``d`` and at the estimate. ``shrink``: the second way
    down, the observed rewards of those rounds shrink by one factor (each row's change weighted by its reward).
    Zero at the interval's upper end; at the lower end for one of the two ways down and >= 0 for the other."""
    from scipy import stats

    n, centre = len(influence), influence.mean()
    d = end - centre
    h = slope > 0
    rows = np.where(h, np.clip((influence - intercept) / np.where(h, slope, 1.0), 0, 1), 0.0) if shrink else h
    delta = d / np.mean(np.where(h, rows * slope, 0.0))
    if shrink and delta < -1:  # more than every observed reward removed: not a value this way down reaches
        return np.inf, n * d * d
    y, y0 = influence - centre, intercept - centre
    moments = [np.mean(y**k) + delta * np.mean(np.where(h, rows * ((y0 + slope) ** k - y0**k), 0.0))
               for k in (1, 2, 3, 4)]
    m1, m2, m3, m4 = moments
    variance = influence.var(ddof=1) + (m2 - np.mean(y**2)) - d * d
    central2 = m2 - m1**2
    kurtosis = (m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4) / central2**2
    at_estimate = np.mean(y**4) / np.mean(y**2) ** 2
    degrees = max(max(1.0, 2 / (2 / (n - 1) + max(k - 3, 0) / n)) for k in (kurtosis, at_estimate))
    return n * d * d - stats.t.ppf(1 - tail, degrees) ** 2 * variance, n * d * d

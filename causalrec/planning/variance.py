"""Variance of the quantities an A/B test compares: ratio metrics (delta method) and variance reduction
with a pre-exposure covariate (CUPED / CUPAC).

Ratio metrics
-------------
A ratio metric such as clicks per impression is ``R = sum(clicks) / sum(impressions)`` over the users of an
arm, while users (not impressions) are randomised. Impressions of one user are correlated, so the binomial
variance ``R(1 - R) / impressions`` understates the variance. The delta method linearises ``R`` around the
per-user means ``mu_Y`` (numerator) and ``mu_X`` (denominator) and gives, per randomisation unit,

    n Var(R_hat) ~= Var(Y) / mu_X^2 - 2 mu_Y Cov(Y, X) / mu_X^3 + mu_Y^2 Var(X) / mu_X^4

(Deng, Knoblich and Lu 2018, "Applying the delta method in metric analytics"). :func:`impression_level_variance`
is the naive binomial formula, kept only to show the failure it causes (negative control in the benchmark).

Variance reduction (CUPED / CUPAC)
----------------------------------
Regressing the outcome ``Y`` on a covariate ``X`` that the treatment cannot affect, ``Y_adj = Y - theta (X -
mean X)`` with ``theta = Cov(Y, X) / Var(X)``, keeps the difference in means unbiased and multiplies its
variance by ``1 - rho^2`` where ``rho = corr(Y, X)`` (Deng, Xu, Kohavi and Walker 2013, CUPED). CUPAC (Tang et
al. 2020, DoorDash) uses a model's prediction of ``Y`` as ``X``; here that is the recommender's own
pre-exposure score or predicted engagement.

The rule that makes this valid: the covariate must not depend on the treatment. A pre-period metric must
end before launch; a model prediction must come from a model frozen before launch and be computed on data from
before exposure. A model retrained on experiment data leaks the treatment into the covariate and biases the
estimate. :func:`estimate_variance_reduction` enforces the rule: it requires ``covariate_computed_at`` (and,
for CUPAC, ``model_frozen_at``) strictly earlier than ``launch_at`` and raises :class:`ValidationError`
otherwise; when the timestamps are not known the caller must pass ``acknowledge_pre_exposure=True``, which
is recorded in the result and raises a :class:`CausalrecWarning`. A timestamp that violates the rule cannot be
overridden by the acknowledgement.

The factor ``1 - rho^2`` is estimated from pre-launch logs with an interval for ``rho`` built from its
influence function ``u w - rho (u^2 + w^2) / 2`` (``u``, ``w`` the standardised variables) on Fisher's
``atanh`` scale; unlike the textbook ``1 / sqrt(n - 3)`` it stays valid for skewed, zero-inflated engagement
data (the two agree for normal data).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._checks import fail, one_of, open_unit_interval
from causalrec._results import ResultMixin
from causalrec.exceptions import CausalrecWarning

logger = logging.getLogger(__name__)

_OWNER = "planning.variance"
CovariateKind = Literal["cuped", "cupac"]


def _as_unit_array(owner: str, field: str, values: object) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size < 3:
        raise fail(owner, field, "a one-dimensional array with at least 3 units", f"shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise fail(owner, field, "finite values", f"{array[bad[0]]} at position {bad[0]}")
    return array


@dataclass(frozen=True)
class RatioMetricMoments(ResultMixin):
    """Per-randomisation-unit moments of a ratio metric and its delta-method variance."""

    numerator_mean: float
    denominator_mean: float
    numerator_variance: float
    denominator_variance: float
    covariance: float
    n_units: int | None = None

    @property
    def ratio(self) -> float:
        return self.numerator_mean / self.denominator_mean

    @property
    def unit_variance(self) -> float:
        """``n Var(R_hat)`` by the delta method (variance per randomisation unit)."""
        return delta_method_ratio_variance(
            self.numerator_mean, self.denominator_mean, self.numerator_variance, self.denominator_variance,
            self.covariance,
        )

    def to_frame(self) -> pd.DataFrame:
        rows = {
            "ratio": self.ratio,
            "unit_variance (delta method)": self.unit_variance,
            "numerator_mean": self.numerator_mean,
            "denominator_mean": self.denominator_mean,
            "numerator_variance": self.numerator_variance,
            "denominator_variance": self.denominator_variance,
            "covariance": self.covariance,
            "n_units": self.n_units,
        }
        return pd.DataFrame({"quantity": list(rows), "value": list(rows.values())})


def delta_method_ratio_variance(
    numerator_mean: float | np.ndarray,
    denominator_mean: float | np.ndarray,
    numerator_variance: float | np.ndarray,
    denominator_variance: float | np.ndarray,
    covariance: float | np.ndarray,
) -> float | np.ndarray:
    """``n Var(mean(Y) / mean(X))`` by the delta method (see the module docstring); broadcasts over arrays."""
    mu_y, mu_x = numerator_mean, denominator_mean
    return (
        numerator_variance / mu_x**2
        - 2.0 * mu_y * covariance / mu_x**3
        + mu_y**2 * denominator_variance / mu_x**4
    )


def ratio_metric_moments(numerator: object, denominator: object) -> RatioMetricMoments:
    """Moments of a ratio metric from per-unit totals (e.g. clicks and impressions per user)."""
    y = _as_unit_array(_OWNER, "numerator", numerator)
    x = _as_unit_array(_OWNER, "denominator", denominator)
    if y.shape != x.shape:
        raise fail(_OWNER, "denominator", f"the same length as numerator ({y.size})", f"length {x.size}")
    if x.mean() <= 0:
        raise fail(_OWNER, "denominator", "a positive mean (e.g. impressions per user)", f"mean {x.mean()}")
    covariance = np.cov(y, x, ddof=1)
    return RatioMetricMoments(
        numerator_mean=float(y.mean()),
        denominator_mean=float(x.mean()),
        numerator_variance=float(covariance[0, 0]),
        denominator_variance=float(covariance[1, 1]),
        covariance=float(covariance[0, 1]),
        n_units=int(y.size),
    )


def impression_level_variance(ratio: float | np.ndarray, total_denominator: float | np.ndarray):
    """Binomial ``Var(R_hat) = R (1 - R) / sum(X)``: treats impressions as independent.

    Wrong when users are randomised (it ignores the correlation within users); kept for the negative control.
    """
    return ratio * (1.0 - ratio) / total_denominator


def cuped_adjust(outcome: object, covariate: object) -> np.ndarray:
    """``Y - theta (X - mean X)`` with ``theta = Cov(Y, X) / Var(X)`` estimated on all units (both arms)."""
    y = _as_unit_array(_OWNER, "outcome", outcome)
    x = _as_unit_array(_OWNER, "covariate", covariate)
    if y.shape != x.shape:
        raise fail(_OWNER, "covariate", f"the same length as outcome ({y.size})", f"length {x.size}")
    x_centred = x - x.mean()
    variance = float(x_centred @ x_centred)
    if variance <= 0:
        raise fail(_OWNER, "covariate", "a covariate that varies across units", "a constant covariate")
    theta = float(x_centred @ (y - y.mean())) / variance
    return y - theta * x_centred


@dataclass(frozen=True)
class VarianceReductionEstimate(ResultMixin):
    """Estimated variance factor ``1 - rho^2`` of a CUPED/CUPAC-adjusted difference in means.

    ``variance_factor_low``/``_high`` come from the interval for ``rho``; plan with the high end to be
    conservative. ``pre_exposure_verified`` says whether timestamps proved the covariate is pre-exposure (True)
    or the caller only acknowledged it (False).
    """

    kind: str
    correlation: float
    correlation_low: float
    correlation_high: float
    variance_factor: float
    variance_factor_low: float
    variance_factor_high: float
    confidence: float
    n_units: int
    pre_exposure_verified: bool
    covariate_computed_at: str | None
    model_frozen_at: str | None
    launch_at: str | None
    interval_method: str = "influence function of rho on the atanh (Fisher z) scale"

    def to_frame(self) -> pd.DataFrame:
        rows = [
            ("correlation rho", self.correlation, self.correlation_low, self.correlation_high),
            ("variance factor 1 - rho^2", self.variance_factor, self.variance_factor_low, self.variance_factor_high),
        ]
        return pd.DataFrame(rows, columns=["quantity", "estimate", "low", "high"])


def _timestamp(field: str, value: object) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise fail(_OWNER, field, "a datetime or ISO-8601 string", value) from error
    if pd.isna(stamp):
        raise fail(_OWNER, field, "a datetime or ISO-8601 string", value)
    return stamp


def _strictly_before(field: str, earlier: pd.Timestamp, launch: pd.Timestamp) -> None:
    if (earlier.tzinfo is None) != (launch.tzinfo is None):
        raise fail(_OWNER, field, "time-zone aware exactly when launch_at is", f"{earlier} vs launch_at {launch}")
    if not earlier < launch:
        raise fail(
            _OWNER,
            field,
            f"strictly earlier than launch_at ({launch.isoformat()}): the covariate must be computed before "
            "exposure by a model frozen before launch",
            earlier.isoformat(),
        )


def check_pre_exposure_covariate(
    kind: CovariateKind,
    *,
    covariate_computed_at: datetime | str | None = None,
    model_frozen_at: datetime | str | None = None,
    launch_at: datetime | str | None = None,
    acknowledge_pre_exposure: bool = False,
) -> bool:
    """Enforce the pre-exposure rule (module docstring); return True when timestamps verified it.

    Raises :class:`ValidationError` when a timestamp is at or after launch, or when timestamps are missing and
    ``acknowledge_pre_exposure`` is False. With the acknowledgement and missing timestamps it warns and returns
    False.
    """
    one_of(_OWNER, "kind", kind, ("cuped", "cupac"))
    launch = _timestamp("launch_at", launch_at)
    computed = _timestamp("covariate_computed_at", covariate_computed_at)
    frozen = _timestamp("model_frozen_at", model_frozen_at)
    if launch is not None:
        if computed is not None:
            _strictly_before("covariate_computed_at", computed, launch)
        if frozen is not None:
            _strictly_before("model_frozen_at", frozen, launch)
    needed = {"launch_at": launch, "covariate_computed_at": computed}
    if kind == "cupac":
        needed["model_frozen_at"] = frozen
    missing = [name for name, stamp in needed.items() if stamp is None]
    if not missing:
        return True
    if not acknowledge_pre_exposure:
        raise fail(
            _OWNER,
            missing[0],
            f"a timestamp (needed for {kind.upper()}: {', '.join(needed)}), or acknowledge_pre_exposure=True "
            "to state that the covariate was computed before exposure by a model frozen before launch",
            "None",
        )
    warnings.warn(
        f"{kind.upper()} covariate accepted on acknowledgement only (missing {', '.join(missing)}): the variance "
        "reduction is unbiased only if the covariate was computed before exposure by a model frozen before "
        "launch.",
        CausalrecWarning,
        stacklevel=3,
    )
    return False


def correlation_interval(outcome: np.ndarray, covariate: np.ndarray, confidence: float = 0.95):
    """``(rho, low, high)``: sample correlation and its influence-function interval on the atanh scale."""
    u = (covariate - covariate.mean()) / covariate.std()
    w = (outcome - outcome.mean()) / outcome.std()
    rho = float(np.mean(u * w))
    influence = u * w - 0.5 * rho * (u**2 + w**2)
    standard_error = float(influence.std(ddof=1) / np.sqrt(outcome.size))
    rho_clipped = float(np.clip(rho, -1 + 1e-12, 1 - 1e-12))
    z_standard_error = standard_error / (1.0 - rho_clipped**2)
    centre = np.arctanh(rho_clipped)
    half_width = stats.norm.ppf(0.5 + confidence / 2) * z_standard_error
    return rho, float(np.tanh(centre - half_width)), float(np.tanh(centre + half_width))


def estimate_variance_reduction(
    outcome: object,
    covariate: object,
    *,
    kind: CovariateKind = "cuped",
    covariate_computed_at: datetime | str | None = None,
    model_frozen_at: datetime | str | None = None,
    launch_at: datetime | str | None = None,
    acknowledge_pre_exposure: bool = False,
    confidence: float = 0.95,
) -> VarianceReductionEstimate:
    """Estimate the CUPED/CUPAC variance factor ``1 - rho^2`` from pre-launch logs, with an interval.

    ``outcome`` is the metric per unit over a period like the experiment's; ``covariate`` the pre-period
    metric (CUPED) or the frozen model's pre-exposure prediction (CUPAC) for the same units. The timestamps
    enforce the pre-exposure rule (module docstring).
    """
    confidence = open_unit_interval(_OWNER, "confidence", confidence)
    verified = check_pre_exposure_covariate(
        kind,
        covariate_computed_at=covariate_computed_at,
        model_frozen_at=model_frozen_at,
        launch_at=launch_at,
        acknowledge_pre_exposure=acknowledge_pre_exposure,
    )
    y = _as_unit_array(_OWNER, "outcome", outcome)
    x = _as_unit_array(_OWNER, "covariate", covariate)
    if y.shape != x.shape:
        raise fail(_OWNER, "covariate", f"the same length as outcome ({y.size})", f"length {x.size}")
    if x.std() == 0 or y.std() == 0:
        raise fail(_OWNER, "covariate" if x.std() == 0 else "outcome", "values that vary across units", "constant")
    rho, low, high = correlation_interval(y, x, confidence)
    squares = (low**2, high**2)
    smallest_square = 0.0 if low <= 0.0 <= high else min(squares)
    logger.info("%s: rho = %.4f [%.4f, %.4f] from %d units", kind, rho, low, high, y.size)

    def stamp(value: object) -> str | None:
        return None if value is None else pd.Timestamp(value).isoformat()  # type: ignore[arg-type]

    return VarianceReductionEstimate(
        kind=kind,
        correlation=rho,
        correlation_low=low,
        correlation_high=high,
        variance_factor=1.0 - rho**2,
        variance_factor_low=1.0 - max(squares),
        variance_factor_high=1.0 - smallest_square,
        confidence=confidence,
        n_units=int(y.size),
        pre_exposure_verified=verified,
        covariate_computed_at=stamp(covariate_computed_at),
        model_frozen_at=stamp(model_frozen_at),
        launch_at=stamp(launch_at),
    )


def variance_factor_from_correlation(correlation: float) -> float:
    """``1 - rho^2`` for a correlation given directly (e.g. ``--cuped-rho``)."""
    rho = float(correlation)
    if not -1.0 < rho < 1.0:
        raise fail(_OWNER, "correlation", "in the open interval (-1, 1)", correlation)
    return 1.0 - rho**2

"""Sample size, power and minimum detectable effect of a two-arm (or many-arm) A/B test.

Metrics
-------
* :class:`BinaryMetric` (conversion, click-through per user): baseline rate ``p0`` in control, ``p1`` in
  treatment.
* :class:`ContinuousMetric` (revenue, watch time per user): common standard deviation ``sd``.
* :class:`RatioMetric` (clicks per impression with users randomised): delta-method variance per user
  (:mod:`causalrec.planning.variance`).

Effects are given as ``mde_abs`` (``p1 - p0``, difference in means or in ratios) or ``mde_rel`` (relative to the
baseline: ``mde_abs = mde_rel * baseline``); a decrease is a negative effect.

Arms and allocation
-------------------
``n_treatment`` is the size of *each* treatment arm and ``allocation_ratio = n_control / n_treatment`` (the
``ratio`` of statsmodels, whose ``nobs1`` is our treatment arm). A 10 % treatment / 90 % control split is
``allocation_ratio = 9``; the reported ``n_treatment`` is then the 10 % arm. With ``n_treatment_arms = m > 1``
each arm is compared with the shared control at the per-comparison level from ``correction``: Bonferroni
``alpha / m``, Sidak ``1 - (1 - alpha)^(1/m)``, Holm ``alpha / m`` (the level of its first, strictest step, so
the planned power is a lower bound for Holm, which is uniformly more powerful than Bonferroni).

Hypotheses
----------
``alternative`` is ``"two-sided"``, ``"larger"`` (H1: treatment > control) or ``"smaller"``. A
non-inferiority margin ``m > 0`` (absolute, on the metric's scale) with ``"larger"`` tests H0: effect <= -m
(the treatment is worse by at least ``m``); with ``"smaller"`` (lower is better) H0: effect >= m. The test
statistic is then ``(estimate + m) / se`` (resp. ``- m``).

Variance conventions (``method``), each tested against its oracle
-------------------------------------------------------------------
Let ``r`` be the allocation ratio, ``q = 1 - p``, ``delta = p1 - p0``, ``z_a`` the critical value
(``z_{alpha/2}`` two-sided) and ``z_b = Phi^{-1}(power)``.

Binary metrics:

* ``"cohen_h"``: arcsine transform, effect ``h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0))`` with variance ``1/n1 +
  1/n2``; identical to ``statsmodels.stats.power.NormalIndPower`` with ``proportion_effectsize``: a two-sided
  test's power counts both rejection regions and the sample size is the exact root of that power equation.
* ``"pooled_null_unpooled_alt"``: the pooled two-proportion z-test. Null variance ``pbar qbar (1 + 1/r)`` with
  ``pbar = (p1 + r p0) / (1 + r)``, alternative variance ``p1 q1 + p0 q0 / r`` (per treatment unit);
  ``n1 = (z_a sqrt(v0) + z_b sqrt(v1))^2 / delta^2`` (Fleiss, Levin and Paik 2003, eq. 4.14 without continuity
  correction). With a non-inferiority margin the null variance is the score test's, ``x qx + y qy / r`` at the
  rates ``x - y = -m`` that best fit the expected rates (:func:`restricted_rates`; Farrington & Manning 1990),
  which reduces to the pooled rate at ``m = 0``.
* ``"unpooled"``: the Wald test, ``n1 = (z_a + z_b)^2 (p1 q1 + p0 q0 / r) / delta^2``.
* ``"baseline_variance"``: the baseline variance in both arms, ``n1 = (z_a + z_b)^2 p0 q0 (1 + 1/r) /
  delta^2`` (the quick rule of thumb ``16 p0 q0 / delta^2`` at alpha .05 / power .8).

The three closed forms neglect the far rejection region of a two-sided test (its probability is below
``Phi(-2 z_{alpha/2})``); their power functions do the same, so power and sample size invert each other.

Continuous metrics: ``"z"`` (normal test, ``statsmodels`` ``NormalIndPower`` with ``d = delta / sd``) and
``"t"`` (pooled two-sample t-test with ``df = n1 + n2 - 2``, noncentral t; ``statsmodels`` ``TTestIndPower``).
Both count both rejection regions of a two-sided test. Ratio metrics: ``"delta_method_z"``, the z-test with
each arm's delta-method variance per user (see :class:`RatioMetric` for the treatment arm's).

``variance_factor`` (e.g. ``1 - rho^2`` from CUPED) multiplies every variance above; for ``cohen_h`` it
multiplies the arcsine-scale variance.

Rounding: ``n_treatment``/``n_control`` are the unrounded solutions; ``*_required`` round each arm up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from causalrec._checks import (
    fail,
    finite_number,
    non_negative,
    one_of,
    open_unit_interval,
    positive,
    positive_integer,
    whole_units,
)
from causalrec._results import ResultMixin
from causalrec.planning.variance import RatioMetricMoments, ratio_metric_moments

Alternative = Literal["two-sided", "larger", "smaller"]
ALTERNATIVES = ("two-sided", "larger", "smaller")
BINARY_METHODS = ("cohen_h", "pooled_null_unpooled_alt", "unpooled", "baseline_variance")
CONTINUOUS_METHODS = ("z", "t")
RATIO_METHODS = ("delta_method_z",)
CORRECTIONS = ("none", "bonferroni", "sidak", "holm")

_OWNER = "planning.power"

CONVENTION_DESCRIPTIONS = {
    "cohen_h": "binary, arcsine effect size h = 2 asin(sqrt p1) - 2 asin(sqrt p0), variance 1/n1 + 1/n2 "
    "(statsmodels NormalIndPower with proportion_effectsize); both rejection regions counted",
    "pooled_null_unpooled_alt": "binary, pooled variance pbar(1 - pbar)(1/n1 + 1/n2) under H0 and unpooled "
    "p1 q1/n1 + p0 q0/n2 under H1 (pooled two-proportion z-test, Fleiss; with a non-inferiority margin the null "
    "variance at the Farrington-Manning restricted rates, the score test's); far rejection region neglected",
    "unpooled": "binary, unpooled variance p1 q1/n1 + p0 q0/n2 under H0 and H1 (Wald test); far rejection "
    "region neglected",
    "baseline_variance": "binary, baseline variance p0 q0 (1/n1 + 1/n2) in both arms under H0 and H1; far "
    "rejection region neglected",
    "z": "continuous, common sd, z-test (statsmodels NormalIndPower); both rejection regions counted",
    "t": "continuous, common sd, pooled two-sample t-test, df = n1 + n2 - 2, noncentral t (statsmodels "
    "TTestIndPower); both rejection regions counted",
    "delta_method_z": "ratio metric, z-test with each arm's per-user delta-method variance (treatment arm scaled "
    "by (1 + lift)^2 under a multiplicative effect, or equal to the control's); both rejection regions counted",
}


# ----------------------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class BinaryMetric:
    """A per-unit 0/1 outcome with control rate ``baseline``; ``method`` is the variance convention."""

    baseline: float
    method: str = "pooled_null_unpooled_alt"
    kind: str = field(default="binary", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "baseline", open_unit_interval(_OWNER, "baseline", self.baseline))
        one_of(_OWNER, "method", self.method, BINARY_METHODS)

    @property
    def reference_value(self) -> float:
        return self.baseline

    def parameters(self) -> dict[str, Any]:
        return {"baseline_rate": self.baseline}


@dataclass(frozen=True)
class ContinuousMetric:
    """A per-unit numeric outcome with standard deviation ``sd`` (common to both arms) and control ``mean``.

    ``mean`` is needed only for relative effects.
    """

    sd: float
    mean: float | None = None
    method: str = "z"
    kind: str = field(default="continuous", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sd", positive(_OWNER, "sd", self.sd))
        if self.mean is not None:
            object.__setattr__(self, "mean", finite_number(_OWNER, "mean", self.mean))
        one_of(_OWNER, "method", self.method, CONTINUOUS_METHODS)

    @property
    def reference_value(self) -> float | None:
        return self.mean

    def parameters(self) -> dict[str, Any]:
        return {"sd": self.sd, "mean": self.mean}


@dataclass(frozen=True)
class RatioMetric:
    """A ratio of per-unit sums (clicks / impressions) with units randomised; variance by the delta method.

    ``moments`` describe the control (pre-launch logs). ``effect_scaling`` says what the treatment does to the
    treatment arm's variance: ``"multiplicative"`` (default) assumes it multiplies each unit's numerator by
    ``1 + lift``, so that arm's delta-method variance is ``(1 + lift)^2`` times the control's (slightly
    conservative when part of the variance is binomial noise, which grows only like ``1 + lift``);
    ``"equal_variance"`` uses the control's variance in both arms.
    """

    moments: RatioMetricMoments
    method: str = "delta_method_z"
    effect_scaling: str = "multiplicative"
    kind: str = field(default="ratio", init=False)

    def __post_init__(self) -> None:
        one_of(_OWNER, "method", self.method, RATIO_METHODS)
        one_of(_OWNER, "effect_scaling", self.effect_scaling, ("multiplicative", "equal_variance"))
        if not self.moments.denominator_mean > 0:
            raise fail(_OWNER, "denominator_mean", "positive", self.moments.denominator_mean)
        if not self.moments.unit_variance > 0:
            raise fail(_OWNER, "moments", "a positive delta-method variance", self.moments.unit_variance)

    @classmethod
    def from_units(cls, numerator: object, denominator: object, effect_scaling: str = "multiplicative") -> RatioMetric:
        """Moments estimated from per-unit totals of pre-launch logs (e.g. clicks and impressions per user)."""
        return cls(ratio_metric_moments(numerator, denominator), effect_scaling=effect_scaling)

    @classmethod
    def from_moments(
        cls,
        numerator_mean: float,
        denominator_mean: float,
        numerator_sd: float,
        denominator_sd: float,
        correlation: float,
        effect_scaling: str = "multiplicative",
    ) -> RatioMetric:
        """Moments given directly (per-unit means, standard deviations and their correlation)."""
        numerator_sd = non_negative(_OWNER, "numerator_sd", numerator_sd)
        denominator_sd = non_negative(_OWNER, "denominator_sd", denominator_sd)
        correlation = finite_number(_OWNER, "correlation", correlation)
        if not -1.0 <= correlation <= 1.0:
            raise fail(_OWNER, "correlation", "in [-1, 1]", correlation)
        return cls(
            RatioMetricMoments(
                numerator_mean=finite_number(_OWNER, "numerator_mean", numerator_mean),
                denominator_mean=positive(_OWNER, "denominator_mean", denominator_mean),
                numerator_variance=numerator_sd**2,
                denominator_variance=denominator_sd**2,
                covariance=correlation * numerator_sd * denominator_sd,
            ),
            effect_scaling=effect_scaling,
        )

    @property
    def reference_value(self) -> float:
        return self.moments.ratio

    def parameters(self) -> dict[str, Any]:
        return {
            "ratio": self.moments.ratio,
            "unit_variance_delta_method": self.moments.unit_variance,
            "numerator_mean": self.moments.numerator_mean,
            "denominator_mean": self.moments.denominator_mean,
            "numerator_variance": self.moments.numerator_variance,
            "denominator_variance": self.moments.denominator_variance,
            "covariance": self.moments.covariance,
            "effect_scaling": self.effect_scaling,
        }


Metric = BinaryMetric | ContinuousMetric | RatioMetric


# ----------------------------------------------------------------------------------------------- settings
def adjusted_alpha(alpha: float, n_comparisons: int, correction: str = "bonferroni") -> float:
    """Per-comparison level for ``n_comparisons`` tests (see the module docstring for Holm)."""
    alpha = open_unit_interval(_OWNER, "alpha", alpha)
    n_comparisons = positive_integer(_OWNER, "n_treatment_arms", n_comparisons)
    correction = one_of(_OWNER, "correction", correction, CORRECTIONS)
    if correction == "none" or n_comparisons == 1:
        return alpha
    if correction == "sidak":
        return -math.expm1(math.log1p(-alpha) / n_comparisons)
    return alpha / n_comparisons


@dataclass(frozen=True)
class DesignSettings(ResultMixin):
    """Everything a sample-size, power or MDE answer depends on, named for the output."""

    metric: str
    variance_convention: str
    variance_convention_description: str
    alternative: str
    alpha: float
    alpha_per_comparison: float
    correction: str
    n_treatment_arms: int
    allocation_ratio: float
    noninferiority_margin: float
    variance_factor: float
    metric_parameters: dict[str, Any]
    assumptions: tuple[str, ...]

    def rows(self) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = [
            ("metric", self.metric),
            ("variance convention", self.variance_convention),
            ("alternative", self.alternative),
            ("alpha (family)", self.alpha),
            ("alpha per comparison", self.alpha_per_comparison),
            ("correction", self.correction),
            ("treatment arms", self.n_treatment_arms),
            ("allocation ratio (control / treatment arm)", self.allocation_ratio),
            ("non-inferiority margin", self.noninferiority_margin),
            ("variance factor", self.variance_factor),
        ]
        rows += [(name.replace("_", " "), value) for name, value in self.metric_parameters.items()]
        return rows

    def to_frame(self) -> pd.DataFrame:
        return _frame(self.rows())


def _frame(rows: list[tuple[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame({"quantity": [r[0] for r in rows], "value": pd.Series([r[1] for r in rows], dtype=object)})


def _settings(
    metric: Metric,
    alpha: float,
    alternative: str,
    allocation_ratio: float,
    n_treatment_arms: int,
    correction: str,
    noninferiority_margin: float,
    variance_factor: float,
) -> DesignSettings:
    if not isinstance(metric, BinaryMetric | ContinuousMetric | RatioMetric):
        raise fail(_OWNER, "metric", "a BinaryMetric, ContinuousMetric or RatioMetric", type(metric).__name__)
    alternative = one_of(_OWNER, "alternative", alternative, ALTERNATIVES)
    allocation_ratio = positive(_OWNER, "allocation_ratio", allocation_ratio)
    noninferiority_margin = non_negative(_OWNER, "noninferiority_margin", noninferiority_margin)
    variance_factor = positive(_OWNER, "variance_factor", variance_factor)
    if variance_factor > 1.0:
        raise fail(_OWNER, "variance_factor", "in (0, 1] (1 - rho^2 of CUPED/CUPAC; 1 means none)", variance_factor)
    if noninferiority_margin > 0 and alternative == "two-sided":
        raise fail(_OWNER, "alternative", "'larger' or 'smaller' with a non-inferiority margin", alternative)
    alpha_per_comparison = adjusted_alpha(alpha, n_treatment_arms, correction)
    assumptions = [
        "units (users) are randomised independently and the metric is measured per randomisation unit",
        "normal approximation to the sampling distribution of the difference"
        + (" (noncentral t for the t-test)" if metric.method == "t" else ""),
        f"allocation ratio n_control / n_treatment_arm = {allocation_ratio:g}",
    ]
    if metric.kind == "continuous":
        assumptions.append("equal standard deviation in all arms")
    if metric.kind == "ratio":
        assumptions.append(
            "delta-method variance per user estimated before launch; "
            + (
                "the treatment multiplies each user's numerator by (1 + lift), scaling its arm's variance by "
                "(1 + lift)^2"
                if metric.effect_scaling == "multiplicative"
                else "the same variance in every arm"
            )
        )
    if variance_factor < 1.0:
        assumptions.append(
            f"variance multiplied by {variance_factor:.4g} (CUPED/CUPAC); the covariate was computed before "
            "exposure by a model frozen before launch"
        )
    if n_treatment_arms > 1:
        assumptions.append(
            f"{n_treatment_arms} treatment arms each compared with a shared control; correction {correction}"
            + (" (planned at its first-step level alpha/m, a lower bound on its power)" if correction == "holm" else "")
        )
    return DesignSettings(
        metric=metric.kind,
        variance_convention=metric.method,
        variance_convention_description=CONVENTION_DESCRIPTIONS[metric.method],
        alternative=alternative,
        alpha=float(alpha),
        alpha_per_comparison=alpha_per_comparison,
        correction=correction if n_treatment_arms > 1 else "none",
        n_treatment_arms=n_treatment_arms,
        allocation_ratio=allocation_ratio,
        noninferiority_margin=noninferiority_margin,
        variance_factor=variance_factor,
        metric_parameters=metric.parameters(),
        assumptions=tuple(assumptions),
    )


# ----------------------------------------------------------------------------------------------- the test
@dataclass(frozen=True)
class NormalTestDesign:
    """A test of ``shift = 0`` with ``Var(estimate) = unit_variance / n_treatment`` under H0 and H1.

    ``shift`` is the effect on the test's scale including a non-inferiority margin; ``counts_far_tail`` says
    whether a two-sided test's power includes the region on the other side (see the module docstring).
    """

    shift: float | np.ndarray
    null_unit_variance: float | np.ndarray
    alternative_unit_variance: float | np.ndarray
    alpha: float
    alternative: str
    counts_far_tail: bool
    test: str  # "z" or "t"
    allocation_ratio: float

    @property
    def critical_probability(self) -> float:
        return self.alpha / 2 if self.alternative == "two-sided" else self.alpha

    def directional_power(self, n_treatment: float | np.ndarray) -> float | np.ndarray:
        """Probability of rejecting in the direction of the hypothesis (upward for two-sided and 'larger')."""
        n = np.asarray(n_treatment, dtype=float)
        sign = -1.0 if self.alternative == "smaller" else 1.0
        if self.test == "t":
            df = n * (1.0 + self.allocation_ratio) - 2.0
            critical = stats.t.isf(self.critical_probability, df)
            noncentrality = sign * self.shift * np.sqrt(n / self.alternative_unit_variance)
            return stats.nct.sf(critical, df, noncentrality)
        critical = -special.ndtri(self.critical_probability)  # scipy.special: no per-call overhead in root finding
        return special.ndtr(
            (sign * self.shift * np.sqrt(n) - critical * np.sqrt(self.null_unit_variance))
            / np.sqrt(self.alternative_unit_variance)
        )

    def power(self, n_treatment: float | np.ndarray) -> float | np.ndarray:
        """Probability of rejecting H0 at ``n_treatment`` units per treatment arm."""
        if self.alternative != "two-sided":
            return self.directional_power(n_treatment)
        if not self.counts_far_tail:
            return replace(self, shift=np.abs(self.shift)).directional_power(n_treatment)
        return self.directional_power(n_treatment) + replace(self, shift=-self.shift).directional_power(n_treatment)

    def closed_form_sample_size(self, power: float) -> float | np.ndarray:
        """``(z_a sqrt(v0) + z_b sqrt(v1))^2 / shift^2`` (exact for the conventions that neglect the far tail)."""
        z_alpha = -special.ndtri(self.critical_probability)
        z_beta = special.ndtri(power)
        return (
            (z_alpha * math.sqrt(self.null_unit_variance) + z_beta * math.sqrt(self.alternative_unit_variance)) ** 2
            / np.square(self.shift)
        )

    def sample_size(self, power: float) -> float:
        """Units per treatment arm that give ``power`` (the root of the power equation)."""
        closed = float(self.closed_form_sample_size(power))
        if self.test == "z" and (self.alternative != "two-sided" or not self.counts_far_tail):
            return closed
        # the t-test needs at least half a degree of freedom: n (1 + r) - 2 >= 0.5
        lower = 2.5 / (1.0 + self.allocation_ratio) if self.test == "t" else closed * 0.5
        if self.test == "z" and float(self.power(lower)) >= power:  # only for targets barely above alpha
            lower = closed * 1e-9
        if float(self.power(lower)) >= power:
            # Reached below the smallest n the t-test allows: the effect is large or the target power barely above
            # the per-comparison alpha; name both.
            raise fail(_OWNER, "effect/power", "a combination that needs a t-test with at least 1 degree of freedom "
                       f"(target power {power:g} is reached below n = {lower:g} per arm)", self.shift)
        upper = max(closed * 1.01 + 10.0, 2.0 * lower)
        while float(self.power(upper)) < power:
            upper *= 2.0
        return float(
            optimize.brentq(lambda n: float(self.power(n)) - power, lower, upper, xtol=1e-12, rtol=4 * np.finfo(float).eps)
        )


def restricted_rates(treatment_rate, control_rate, difference: float, allocation_ratio: float = 1.0):
    """``(x, y)``: the rates with ``x - y = difference`` that maximise the binomial likelihood of data whose observed
    rates are ``treatment_rate`` and ``control_rate`` with ``allocation_ratio`` control units per treatment unit.

    These are the null estimates of the Farrington-Manning score test of a difference (``difference = 0`` gives
    the pooled rate in both arms); planning evaluates them at the expected rates (Farrington & Manning, Statistics
    in Medicine 9, 1990). The log-likelihood is concave in ``x`` on ``(max(0, difference), min(1, 1 +
    difference))``, so the root of its derivative is found by bisection, for arrays of rates at once.
    """
    p1 = np.asarray(treatment_rate, dtype=float)
    p0 = np.asarray(control_rate, dtype=float)
    r = float(allocation_ratio)
    low = np.broadcast_to(max(0.0, difference), np.broadcast(p1, p0).shape).astype(float)
    high = np.full_like(low, min(1.0, 1.0 + difference))

    def slope(x):  # d/dx of p1 log x + q1 log(1 - x) + r (p0 log y + q0 log(1 - y)), y = x - difference
        y = x - difference
        return (p1 - x) / (x * (1 - x)) + r * (p0 - y) / (y * (1 - y))

    for _ in range(200):
        middle = 0.5 * (low + high)
        with np.errstate(divide="ignore", invalid="ignore"):
            up = slope(middle) > 0
        low, high = np.where(up, middle, low), np.where(up, high, middle)
        if np.all(high - low < 1e-15):
            break
    x = 0.5 * (low + high)
    return (float(x), float(x - difference)) if x.ndim == 0 else (x, x - difference)


def cohens_h(treatment_rate: float | np.ndarray, control_rate: float | np.ndarray):
    """``2 asin(sqrt(p1)) - 2 asin(sqrt(p0))`` (Cohen 1988), as statsmodels ``proportion_effectsize(p1, p0)``."""
    return 2.0 * np.arcsin(np.sqrt(treatment_rate)) - 2.0 * np.arcsin(np.sqrt(control_rate))


def build_test_design(metric: Metric, effect_abs: float | np.ndarray, settings: DesignSettings) -> NormalTestDesign:
    """The normal (or t) test of ``metric`` for an absolute effect, under ``settings``.

    ``effect_abs`` may be an array: the design's shift and variances are then arrays and its power functions
    evaluate every effect at once (assurance, power curves).
    """
    r = settings.allocation_ratio
    margin = settings.noninferiority_margin
    margin_shift = margin if settings.alternative == "larger" else -margin
    factor = settings.variance_factor
    counts_far_tail = True
    test = "z"
    if isinstance(metric, BinaryMetric):
        p0 = metric.baseline
        p1 = p0 + np.asarray(effect_abs, dtype=float)
        outside = np.flatnonzero(np.ravel((p1 <= 0.0) | (p1 >= 1.0)))
        if outside.size:
            found = float(np.ravel(p1)[outside[0]])
            raise fail(_OWNER, "effect", f"a treatment rate baseline + effect in (0, 1) (baseline {p0:g})", found)
        if metric.method == "cohen_h":
            null_boundary = p0 - margin_shift
            if not 0.0 < null_boundary < 1.0:
                raise fail(_OWNER, "noninferiority_margin", "leaving baseline - margin in (0, 1)", margin)
            shift = cohens_h(p1, null_boundary)
            v0 = v1 = 1.0 + 1.0 / r
        else:
            shift = effect_abs + margin_shift
            alt_variance = p1 * (1 - p1) + p0 * (1 - p0) / r
            if margin >= 1.0:
                raise fail(_OWNER, "noninferiority_margin", "below 1 for a difference of two rates", margin)
            if metric.method == "pooled_null_unpooled_alt" and margin > 0:
                # The score test's null variance: the rates that best fit the expected data on the null boundary
                # (treatment - control = -margin_shift), Farrington & Manning (1990).
                null_treatment, null_control = restricted_rates(p1, p0, -margin_shift, r)
                v0, v1 = null_treatment * (1 - null_treatment) + null_control * (1 - null_control) / r, alt_variance
            elif metric.method == "pooled_null_unpooled_alt":
                pooled = (p1 + r * p0) / (1 + r)
                v0, v1 = pooled * (1 - pooled) * (1 + 1 / r), alt_variance
            elif metric.method == "unpooled":
                v0 = v1 = alt_variance
            else:
                v0 = v1 = p0 * (1 - p0) * (1 + 1 / r)
            counts_far_tail = False
    elif isinstance(metric, ContinuousMetric):
        shift = effect_abs + margin_shift
        v0 = v1 = metric.sd**2 * (1 + 1 / r)
        test = metric.method
    else:
        shift = effect_abs + margin_shift
        control_variance = metric.moments.unit_variance
        treatment_variance = control_variance
        if metric.effect_scaling == "multiplicative":
            treatment_variance = control_variance * (1.0 + np.asarray(effect_abs) / metric.moments.ratio) ** 2
        # Wald test with each arm's own delta-method variance: the same variance under H0 and H1
        v0 = v1 = treatment_variance + control_variance / r
    return NormalTestDesign(
        shift=shift,
        null_unit_variance=v0 * factor,
        alternative_unit_variance=v1 * factor,
        alpha=settings.alpha_per_comparison,
        alternative=settings.alternative,
        counts_far_tail=counts_far_tail,
        test=test,
        allocation_ratio=r,
    )


def absolute_effect(metric: Metric, mde_abs: float | None, mde_rel: float | None) -> float:
    """The absolute effect from exactly one of ``mde_abs`` and ``mde_rel`` (relative to the baseline)."""
    if (mde_abs is None) == (mde_rel is None):
        raise fail(_OWNER, "mde_abs/mde_rel", "exactly one of the two", f"mde_abs={mde_abs}, mde_rel={mde_rel}")
    if mde_abs is not None:
        return finite_number(_OWNER, "mde_abs", mde_abs)
    relative = finite_number(_OWNER, "mde_rel", mde_rel)
    reference = metric.reference_value
    if reference is None or reference == 0:
        raise fail(_OWNER, "mean", "a non-zero control mean for a relative effect", reference)
    return relative * reference


def _check_direction(effect_abs: float, settings: DesignSettings, shift: float) -> None:
    if settings.alternative == "two-sided":
        if shift == 0.0:
            raise fail(_OWNER, "effect", "non-zero for a two-sided test", effect_abs)
        return
    wanted = 1.0 if settings.alternative == "larger" else -1.0
    if wanted * shift <= 0.0:
        what = "effect + margin > 0" if wanted > 0 else "effect - margin < 0"
        raise fail(_OWNER, "effect", f"{what} for alternative '{settings.alternative}'", effect_abs)


def _relative(metric: Metric, effect_abs: float) -> float | None:
    reference = metric.reference_value
    return None if reference in (None, 0) else effect_abs / reference  # type: ignore[operator]


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SampleSizeResult(ResultMixin):
    """Units per arm for a target power; unrounded solutions and whole units per arm (rounded up)."""

    settings: DesignSettings
    target_power: float
    effect_absolute: float
    effect_relative: float | None
    n_treatment: float
    n_control: float
    n_treatment_required: int
    n_control_required: int
    total_required: int

    @property
    def variance_convention(self) -> str:
        return self.settings.variance_convention

    def to_frame(self) -> pd.DataFrame:
        rows = self.settings.rows() + [
            ("target power", self.target_power),
            ("effect (absolute)", self.effect_absolute),
            ("effect (relative)", self.effect_relative),
            ("n per treatment arm (unrounded)", self.n_treatment),
            ("n control (unrounded)", self.n_control),
            ("n per treatment arm (required)", self.n_treatment_required),
            ("n control (required)", self.n_control_required),
            ("total units (required)", self.total_required),
        ]
        return _frame(rows)


@dataclass(frozen=True)
class PowerResult(ResultMixin):
    """Power at given arm sizes."""

    settings: DesignSettings
    effect_absolute: float
    effect_relative: float | None
    n_treatment: float
    n_control: float
    power: float

    def to_frame(self) -> pd.DataFrame:
        rows = self.settings.rows() + [
            ("effect (absolute)", self.effect_absolute),
            ("effect (relative)", self.effect_relative),
            ("n per treatment arm", self.n_treatment),
            ("n control", self.n_control),
            ("power", self.power),
        ]
        return _frame(rows)


@dataclass(frozen=True)
class MinimumDetectableEffectResult(ResultMixin):
    """Smallest true effect detected with ``target_power`` at given arm sizes (signed: negative for 'smaller')."""

    settings: DesignSettings
    target_power: float
    n_treatment: float
    n_control: float
    mde_absolute: float
    mde_relative: float | None

    def to_frame(self) -> pd.DataFrame:
        rows = self.settings.rows() + [
            ("target power", self.target_power),
            ("n per treatment arm", self.n_treatment),
            ("n control", self.n_control),
            ("MDE (absolute)", self.mde_absolute),
            ("MDE (relative)", self.mde_relative),
        ]
        return _frame(rows)


# ----------------------------------------------------------------------------------------------- public API
def sample_size(
    metric: Metric,
    *,
    mde_abs: float | None = None,
    mde_rel: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    allocation_ratio: float = 1.0,
    n_treatment_arms: int = 1,
    correction: str = "bonferroni",
    noninferiority_margin: float = 0.0,
    variance_factor: float = 1.0,
) -> SampleSizeResult:
    """Units per treatment arm (and control) to detect ``mde_abs`` / ``mde_rel`` with probability ``power``.

    See the module docstring for the conventions; ``result.settings`` names them.
    """
    power = open_unit_interval(_OWNER, "power", power)
    settings = _settings(
        metric, alpha, alternative, allocation_ratio, n_treatment_arms, correction, noninferiority_margin, variance_factor
    )
    if power <= settings.alpha_per_comparison:
        raise fail(_OWNER, "power", f"greater than the per-comparison alpha {settings.alpha_per_comparison:g}", power)
    effect = absolute_effect(metric, mde_abs, mde_rel)
    design = build_test_design(metric, effect, settings)
    _check_direction(effect, settings, design.shift)
    n_treatment = design.sample_size(power)
    n_control = n_treatment * settings.allocation_ratio
    n_treatment_required = whole_units(n_treatment)
    n_control_required = whole_units(n_control)
    return SampleSizeResult(
        settings=settings,
        target_power=power,
        effect_absolute=effect,
        effect_relative=_relative(metric, effect),
        n_treatment=n_treatment,
        n_control=n_control,
        n_treatment_required=n_treatment_required,
        n_control_required=n_control_required,
        total_required=n_treatment_required * settings.n_treatment_arms + n_control_required,
    )


def statistical_power(
    metric: Metric,
    n_treatment: float,
    *,
    mde_abs: float | None = None,
    mde_rel: float | None = None,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    allocation_ratio: float = 1.0,
    n_treatment_arms: int = 1,
    correction: str = "bonferroni",
    noninferiority_margin: float = 0.0,
    variance_factor: float = 1.0,
) -> PowerResult:
    """Power with ``n_treatment`` units per treatment arm (``allocation_ratio`` times that in control)."""
    n_treatment = positive(_OWNER, "n_treatment", n_treatment)
    settings = _settings(
        metric, alpha, alternative, allocation_ratio, n_treatment_arms, correction, noninferiority_margin, variance_factor
    )
    effect = absolute_effect(metric, mde_abs, mde_rel)
    design = build_test_design(metric, effect, settings)
    _check_t_degrees_of_freedom(design, n_treatment)
    return PowerResult(
        settings=settings,
        effect_absolute=effect,
        effect_relative=_relative(metric, effect),
        n_treatment=n_treatment,
        n_control=n_treatment * settings.allocation_ratio,
        power=float(design.power(n_treatment)),
    )


def _check_t_degrees_of_freedom(design, n_treatment: float) -> None:
    """The t-test's ``n (1 + r) - 2`` degrees of freedom must be positive (its power is NaN otherwise)."""
    if design.test == "t" and n_treatment * (1.0 + design.allocation_ratio) - 2.0 <= 0:
        smallest = 2.0 / (1.0 + design.allocation_ratio)
        raise fail(_OWNER, "n_treatment", f"above {smallest:g} units per arm, so that the t-test has n (1 + "
                   "allocation_ratio) - 2 > 0 degrees of freedom", n_treatment)


def power_function(metric: Metric, settings: DesignSettings) -> Callable[[float, float], float]:
    """``(effect_abs, n_treatment) -> directional power`` for curves and assurance (upward for two-sided)."""

    def directional(effect_abs: float, n_treatment: float) -> float:
        return float(build_test_design(metric, effect_abs, settings).directional_power(n_treatment))

    return directional


def minimum_detectable_effect(
    metric: Metric,
    n_treatment: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    allocation_ratio: float = 1.0,
    n_treatment_arms: int = 1,
    correction: str = "bonferroni",
    noninferiority_margin: float = 0.0,
    variance_factor: float = 1.0,
) -> MinimumDetectableEffectResult:
    """Smallest effect detected with probability ``power`` at ``n_treatment`` per arm (root of the power equation).

    For two-sided tests the MDE is the increase; for 'smaller' it is a (negative) decrease; with a
    non-inferiority margin it is the true effect (possibly negative) at which non-inferiority is shown with
    probability ``power``.
    """
    n_treatment = positive(_OWNER, "n_treatment", n_treatment)
    power = open_unit_interval(_OWNER, "power", power)
    settings = _settings(
        metric, alpha, alternative, allocation_ratio, n_treatment_arms, correction, noninferiority_margin, variance_factor
    )
    if power <= settings.alpha_per_comparison:
        raise fail(_OWNER, "power", f"greater than the per-comparison alpha {settings.alpha_per_comparison:g}", power)
    direction = -1.0 if alternative == "smaller" else 1.0
    margin = settings.noninferiority_margin
    start = -margin * direction  # effect at which the shift is zero

    if isinstance(metric, BinaryMetric):
        limit = (1.0 - metric.baseline) if direction > 0 else -metric.baseline
        far_end = limit - direction * 1e-12 * max(1.0, abs(limit))
    else:
        unit_design = build_test_design(metric, direction, settings)
        _check_t_degrees_of_freedom(unit_design, n_treatment)
        scale = math.sqrt(unit_design.alternative_unit_variance / n_treatment)
        far_end = start + direction * 60.0 * scale

    def gap(effect: float) -> float:
        return float(build_test_design(metric, effect, settings).power(n_treatment)) - power

    near_end = start + direction * 1e-12 * max(1.0, abs(far_end - start))
    if gap(far_end) < 0:
        raise fail(_OWNER, "n_treatment", f"large enough to reach power {power:g} for some effect", n_treatment)
    effect = float(optimize.brentq(gap, near_end, far_end, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))
    return MinimumDetectableEffectResult(
        settings=settings,
        target_power=power,
        n_treatment=n_treatment,
        n_control=n_treatment * settings.allocation_ratio,
        mde_absolute=effect,
        mde_relative=_relative(metric, effect),
    )

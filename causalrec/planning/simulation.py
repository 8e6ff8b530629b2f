"""Vectorised simulators of A/B tests, used to check plans (benchmark, tests, notebook).

Every function takes an explicit ``numpy.random.Generator`` and simulates many experiments at once: rows are
experiments, columns units or looks. Large per-unit simulations run in blocks of ``block_size`` experiments
so memory stays bounded; there is no Python loop per experiment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from causalrec._checks import fail
from causalrec.planning.power import restricted_rates

_OWNER = "planning.simulation"


def _blocks(n_experiments: int, block_size: int):
    for start in range(0, n_experiments, block_size):
        yield min(block_size, n_experiments - start)


# ----------------------------------------------------------------------------------------------- binary
def two_proportion_z(
    successes_treatment,
    n_treatment,
    successes_control,
    n_control,
    method: str = "pooled_null_unpooled_alt",
    null_difference: float = 0.0,
):
    """z-statistics of the analysis each binary convention plans for (arrays broadcast), testing
    ``p_treatment - p_control = null_difference`` (``-margin`` for a non-inferiority test of a larger-is-better
    metric).

    ``pooled_null_unpooled_alt``: pooled z-test, and with a non-zero ``null_difference`` the Farrington-Manning
    score test (the null variance at the restricted maximum-likelihood rates, :func:`restricted_rates`);
    ``unpooled``: Wald; ``cohen_h``: arcsine test of the treatment rate against ``control + null_difference``;
    ``baseline_variance``: the control arm's variance in both arms.
    """
    p1 = np.asarray(successes_treatment, dtype=float) / n_treatment
    p0 = np.asarray(successes_control, dtype=float) / n_control
    harmonic = 1.0 / n_treatment + 1.0 / n_control
    d = float(null_difference)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "cohen_h":
            return (2 * np.arcsin(np.sqrt(p1)) - 2 * np.arcsin(np.sqrt(p0 + d))) / np.sqrt(harmonic)
        if method == "pooled_null_unpooled_alt" and d != 0.0:
            x, y = restricted_rates(p1, p0, d, n_control / n_treatment)
            return (p1 - p0 - d) / np.sqrt(x * (1 - x) / n_treatment + y * (1 - y) / n_control)
        if method == "pooled_null_unpooled_alt":
            pooled = (np.asarray(successes_treatment) + np.asarray(successes_control)) / (n_treatment + n_control)
            return (p1 - p0) / np.sqrt(pooled * (1 - pooled) * harmonic)
        if method == "unpooled":
            return (p1 - p0 - d) / np.sqrt(p1 * (1 - p1) / n_treatment + p0 * (1 - p0) / n_control)
        if method == "baseline_variance":
            return (p1 - p0 - d) / np.sqrt(p0 * (1 - p0) * harmonic)
    raise fail(_OWNER, "method", "a binary variance convention", method)


def simulate_binary_counts(
    n_treatment: int, n_control: int, p_treatment: float, p_control: float, n_experiments: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Successes per arm of ``n_experiments`` experiments (exact binomial draws)."""
    return (
        rng.binomial(int(n_treatment), p_treatment, size=n_experiments),
        rng.binomial(int(n_control), p_control, size=n_experiments),
    )


def simulate_binary_looks(
    looks_treatment: np.ndarray,
    looks_control: np.ndarray,
    p_treatment: float,
    p_control: float,
    n_experiments: int,
    rng: np.random.Generator,
    method: str = "pooled_null_unpooled_alt",
) -> np.ndarray:
    """z-statistics ``(n_experiments, K)`` at cumulative sample sizes ``looks_*`` (data accumulate across looks)."""
    looks_t, looks_c, successes_t, successes_c = _cumulative_successes(
        looks_treatment, looks_control, p_treatment, p_control, n_experiments, rng
    )
    return two_proportion_z(successes_t, looks_t, successes_c, looks_c, method)


def simulate_binary_look_differences(
    looks_treatment: np.ndarray,
    looks_control: np.ndarray,
    p_treatment: float,
    p_control: float,
    n_experiments: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Differences in rates and their unpooled standard errors ``(n_experiments, K)`` at cumulative looks."""
    looks_t, looks_c, successes_t, successes_c = _cumulative_successes(
        looks_treatment, looks_control, p_treatment, p_control, n_experiments, rng
    )
    rate_t, rate_c = successes_t / looks_t, successes_c / looks_c
    standard_error = np.sqrt(rate_t * (1 - rate_t) / looks_t + rate_c * (1 - rate_c) / looks_c)
    return rate_t - rate_c, standard_error


def _cumulative_successes(looks_treatment, looks_control, p_treatment, p_control, n_experiments, rng):
    looks_t = np.asarray(looks_treatment, dtype=np.int64)
    looks_c = np.asarray(looks_control, dtype=np.int64)
    increments_t = np.diff(np.concatenate([[0], looks_t]))
    increments_c = np.diff(np.concatenate([[0], looks_c]))
    successes_t = np.cumsum(rng.binomial(increments_t, p_treatment, size=(n_experiments, looks_t.size)), axis=1)
    successes_c = np.cumsum(rng.binomial(increments_c, p_control, size=(n_experiments, looks_c.size)), axis=1)
    return looks_t, looks_c, successes_t, successes_c


# ----------------------------------------------------------------------------------------------- continuous + CUPED
@dataclass(frozen=True)
class CovariateOutcomeModel:
    """Per-user ``covariate ~ Gamma(shape, 1)`` (skewed, like engagement) and ``outcome = slope * covariate + noise``.

    ``noise ~ Gamma(noise_shape, noise_scale)`` centred; the treatment adds ``effect`` to the outcome.
    """

    covariate_shape: float = 2.0
    slope: float = 1.0
    noise_shape: float = 2.0
    noise_scale: float = 1.0

    def draw(self, size: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        covariate = rng.gamma(self.covariate_shape, 1.0, size=size)
        noise = rng.gamma(self.noise_shape, self.noise_scale, size=size) - self.noise_shape * self.noise_scale
        return self.slope * covariate + noise, covariate

    @property
    def outcome_sd(self) -> float:
        return float(np.sqrt(self.slope**2 * self.covariate_shape + self.noise_shape * self.noise_scale**2))

    @property
    def correlation(self) -> float:
        return float(self.slope * np.sqrt(self.covariate_shape) / self.outcome_sd)


def simulate_cuped_experiments(
    model: CovariateOutcomeModel,
    n_per_arm: int,
    effect: float,
    n_experiments: int,
    rng: np.random.Generator,
    block_size: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """z-statistics ``(unadjusted, cuped_adjusted)`` of Welch z-tests, one per experiment.

    CUPED's ``theta`` is estimated per experiment on both arms pooled.
    """
    raw, adjusted = [], []
    for size in _blocks(n_experiments, block_size):
        y, x = model.draw((size, 2, n_per_arm), rng)
        y[:, 0, :] += effect  # arm 0 is the treatment
        raw.append(_welch_z(y))
        x_centred = x - x.mean(axis=(1, 2), keepdims=True)
        y_centred = y - y.mean(axis=(1, 2), keepdims=True)
        theta = np.sum(x_centred * y_centred, axis=(1, 2)) / np.sum(x_centred**2, axis=(1, 2))
        adjusted.append(_welch_z(y - theta[:, None, None] * x_centred))
    return np.concatenate(raw), np.concatenate(adjusted)


def _welch_z(values: np.ndarray) -> np.ndarray:
    means = values.mean(axis=2)
    variances = values.var(axis=2, ddof=1) / values.shape[2]
    return (means[:, 0] - means[:, 1]) / np.sqrt(variances[:, 0] + variances[:, 1])


def simulate_t_tests(
    n_per_arm: int, standardized_effect: float, n_experiments: int, rng: np.random.Generator, block_size: int = 2000
) -> np.ndarray:
    """Pooled two-sample t-statistics of normal data (``df = 2 n - 2``)."""
    out = []
    for size in _blocks(n_experiments, block_size):
        y = rng.standard_normal((size, 2, n_per_arm))
        y[:, 0, :] += standardized_effect
        means = y.mean(axis=2)
        pooled = (y.var(axis=2, ddof=1).sum(axis=1)) / 2.0
        out.append((means[:, 0] - means[:, 1]) / np.sqrt(pooled * 2.0 / n_per_arm))
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------- ratio metric
@dataclass(frozen=True)
class ClickImpressionModel:
    """Users with ``1 + Poisson(lambda_u)`` impressions, ``lambda_u ~ Gamma(k, mean/k)``, and their own CTR
    ``~ Beta(a, b)``; clicks ~ Binomial(impressions, CTR * (1 + lift)). Heavy users and heterogeneous CTRs make
    impressions of one user correlated, which is what breaks an impression-level test."""

    mean_extra_impressions: float = 19.0
    impressions_shape: float = 2.0
    ctr_alpha: float = 1.0
    ctr_beta: float = 19.0

    def draw(self, size: tuple[int, ...], rng: np.random.Generator, lift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        rates = rng.gamma(self.impressions_shape, self.mean_extra_impressions / self.impressions_shape, size=size)
        impressions = 1 + rng.poisson(rates)
        ctr = np.minimum(rng.beta(self.ctr_alpha, self.ctr_beta, size=size) * (1.0 + lift), 1.0)
        return rng.binomial(impressions, ctr), impressions


def simulate_ratio_experiments(
    model: ClickImpressionModel,
    n_per_arm: int,
    lift: float,
    n_experiments: int,
    rng: np.random.Generator,
    block_size: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """z-statistics ``(delta_method, impression_level)`` for the difference in click-through ratios.

    Users are randomised; arm 0 is the treatment with relative ``lift`` on every user's CTR.
    """
    delta_z, naive_z = [], []
    for size in _blocks(n_experiments, block_size):
        clicks_t, impressions_t = model.draw((size, n_per_arm), rng, lift)
        clicks_c, impressions_c = model.draw((size, n_per_arm), rng, 0.0)
        ratio_t, variance_t, naive_t = _ratio_and_variances(clicks_t, impressions_t)
        ratio_c, variance_c, naive_c = _ratio_and_variances(clicks_c, impressions_c)
        delta_z.append((ratio_t - ratio_c) / np.sqrt(variance_t + variance_c))
        naive_z.append((ratio_t - ratio_c) / np.sqrt(naive_t + naive_c))
    return np.concatenate(delta_z), np.concatenate(naive_z)


def _ratio_and_variances(clicks: np.ndarray, impressions: np.ndarray):
    n = clicks.shape[1]
    total_clicks = clicks.sum(axis=1)
    total_impressions = impressions.sum(axis=1)
    ratio = total_clicks / total_impressions
    # delta method through the linearised per-user metric (y - R x) / mean(x)
    linearised = (clicks - ratio[:, None] * impressions) / (total_impressions / n)[:, None]
    delta_variance = linearised.var(axis=1, ddof=1) / n
    naive_variance = ratio * (1.0 - ratio) / total_impressions
    return ratio, delta_variance, naive_variance


# ----------------------------------------------------------------------------------------------- offline selection
def simulate_offline_selection(
    n_scenarios: int,
    n_candidates: int,
    prior_mean: float,
    prior_sd: float,
    offline_se: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """True uplifts ``theta ~ N(prior_mean, prior_sd^2)`` and offline estimates ``theta + N(0, offline_se^2)``."""
    theta = prior_mean + prior_sd * rng.standard_normal((n_scenarios, n_candidates))
    return theta, theta + offline_se * rng.standard_normal((n_scenarios, n_candidates))


def reject(z: np.ndarray, alpha: float, alternative: str = "two-sided") -> np.ndarray:
    """Rejections of fixed-sample z-tests."""
    if alternative == "two-sided":
        return np.abs(z) >= stats.norm.isf(alpha / 2)
    if alternative == "larger":
        return z >= stats.norm.isf(alpha)
    return z <= -stats.norm.isf(alpha)

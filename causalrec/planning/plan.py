"""From an offline estimate to an A/B test plan: shrinkage, assurance, sample-size range, duration, SRM check.

Offline evaluation input (``read_offline_evaluation``)
------------------------------------------------------
A mapping (or a JSON file holding one) with

* ``estimates``: list of objects with keys ``estimator`` (str), ``value`` (number), ``se`` (>= 0), ``ci_low``,
  ``ci_high`` (numbers, or null for an estimator without an interval) and optionally ``policy`` (str): policy
  values by each estimator. Recorded in the plan for context; when an estimate of the comparison's baseline
  policy by the same estimator is present, it can serve as the control's baseline (:func:`baseline_value`).
* ``comparisons`` (optional, needed to plan from an uplift): list of objects with keys ``policy``,
  ``baseline``, ``estimator`` (str), ``difference``, ``se``, ``ci_low``, ``ci_high`` (numbers).
  ``difference`` is the estimated uplift of ``policy`` over ``baseline`` on the metric's absolute scale (e.g.
  clicks per user), ``se > 0`` its standard error. Optional ``reliable`` (bool) and ``ess`` (number), as
  causalrec's evaluation and selection JSON write them: a plan for a policy whose estimate is flagged
  unreliable says so in its warnings.

At least one of the two lists must be present (a selection leaderboard's JSON carries only ``comparisons``).
Other keys are ignored, and so is a comparison of the baseline with itself or of a policy whose uplift is exactly
0 with standard error 0 (its per-round terms are the baseline's, e.g. a uniform-random candidate on uniform-random
logs). One estimator is used at a time:
with several, name it (``estimator=``). Each policy appears once per estimator. The comparison planned for is ``policy=`` or, by default, the one with the largest
difference.

Shrinkage and the winner's curse
--------------------------------
An offline uplift is noisy, and the best of several candidates is biased upward (the winner's curse). The
plan uses a shrunk estimate:

* a user prior ``N(prior_mean, prior_sd^2)``: the normal posterior;
* otherwise, with at least three candidates: a normal prior ``N(mu, tau^2)`` learnt from all candidates
  (:func:`hierarchical_normal_posterior`): given ``tau`` the posterior mean is ``mu_hat + B (d - mu_hat)``,
  ``B = tau^2 / (tau^2 + se^2)``, with variance ``B se^2 + (1 - B)^2 Var(mu_hat)``; ``tau`` is integrated over
  its posterior (uniform prior) instead of being plugged in, because with a handful of candidates the plug-in
  estimate (e.g. DerSimonian-Laird, :func:`empirical_bayes_prior`) is often 0 and the interval far too narrow.
  In ``benchmarks/planning_simulation.py`` (winner of 5 candidates, 10,000 scenarios) the plug-in interval
  covered 83.5% of a nominal 95% (bias of the winner -0.0004), the integrated one 95.8% (bias +0.0018, against
  +0.0083 unshrunk). A posterior given all candidates is not changed by selecting the best of them (Dawid
  1994), so this also corrects the winner's curse;
* with two candidates and the best one chosen: the parametric-bootstrap bias of the selected estimate (Lee
  and Shen 2018), subtracted from it;
* a single estimate: used as is (flat prior), with a :class:`CausalrecWarning`.

Assurance
---------
The assurance (O'Hagan, Stevens and Campbell 2005) is the power averaged over the uncertainty of the effect,
``E[P(significant improvement | effect)]`` with ``effect ~ N(shrunk estimate, shrunk se^2)`` (Gauss-Hermite
quadrature). It cannot exceed the posterior probability that the effect is an improvement, so a target
assurance may be unreachable. The plan also reports the sample sizes needed at the two ends of the credible
interval of the effect (none when the interval reaches no improvement).

Duration and sample-ratio mismatch
----------------------------------
Duration is the maximum number of units over the daily eligible traffic times the share of it in the
experiment, rounded up to days, or to whole weeks when asked (weekly seasonality). While the test runs,
:func:`sample_ratio_mismatch` compares observed arm counts with the planned allocation by Pearson's chi-square
test; a p-value below 0.001 signals broken assignment or logging, and the results should not be read.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from causalrec._checks import (
    fail,
    finite_number,
    open_unit_interval,
    positive,
    whole_units,
)
from causalrec._results import ResultMixin
from causalrec.exceptions import CausalrecWarning, ValidationError
from causalrec.planning.power import (
    Alternative,
    BinaryMetric,
    DesignSettings,
    Metric,
    SampleSizeResult,
    build_test_design,
    minimum_detectable_effect,
    sample_size,
)
from causalrec.planning.sequential import (
    SEQUENTIAL_KINDS,
    SequentialDesign,
    sequential_design,
    with_sample_sizes,
)
from causalrec.planning.variance import VarianceReductionEstimate, variance_factor_from_correlation

logger = logging.getLogger(__name__)

_OWNER = "planning.plan"
_GAUSS_HERMITE_NODES, _GAUSS_HERMITE_WEIGHTS = np.polynomial.hermite.hermgauss(64)
_ASSURANCE_SEARCH_LIMIT = 1e14  # units per arm: beyond this a target assurance counts as unreachable


# ----------------------------------------------------------------------------------------------- offline input
@dataclass(frozen=True)
class OfflineEstimate:
    estimator: str
    value: float
    se: float | None
    ci_low: float | None
    ci_high: float | None
    policy: str | None = None


@dataclass(frozen=True)
class OfflineComparison:
    policy: str
    baseline: str
    estimator: str
    difference: float
    se: float
    ci_low: float
    ci_high: float
    reliable: bool | None = None  # the evaluation's reliability flag of the policy's estimate, when it gave one
    ess: float | None = None


@dataclass(frozen=True)
class OfflineEvaluation(ResultMixin):
    """The parts of an evaluation/selection result that planning reads (module docstring)."""

    estimates: tuple[OfflineEstimate, ...]
    comparisons: tuple[OfflineComparison, ...]
    source: str | None = None
    same_as_baseline: tuple[str, ...] = ()  # policies whose terms equal the baseline's on these logs (uplift 0, se 0)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self.comparisons])


# estimates are context only: an estimator without an interval may write null (NaN) for se/ci_low/ci_high
_ESTIMATE_KEYS = {"estimator": str, "value": float, "se": "nullable", "ci_low": "nullable", "ci_high": "nullable"}
_COMPARISON_KEYS = {
    "policy": str,
    "baseline": str,
    "estimator": str,
    "difference": float,
    "se": float,
    "ci_low": float,
    "ci_high": float,
}


def _records(payload: Mapping[str, Any], key: str, schema: dict[str, Any], required: bool,
             set_aside: list[str] | None = None) -> list[dict[str, Any]]:
    """The validated rows of ``payload[key]``; the policies of comparisons identical to the baseline go to
    ``set_aside`` instead."""
    if key not in payload:
        if required:
            raise fail(_OWNER, key, f"a list of objects with keys {', '.join(schema)}", "no such key")
        return []
    items = payload[key]
    if not isinstance(items, list):
        raise fail(_OWNER, key, "a list of objects", type(items).__name__)
    records = []
    for row, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _row_error(key, "an object", type(item).__name__, row)
        if key == "comparisons" and isinstance(item.get("policy"), str) and item.get("policy") == item.get("baseline"):
            continue  # the baseline against itself (a leaderboard row with uplift 0 and se 0): nothing to plan
        if key == "comparisons" and _same_as_baseline(item):
            if set_aside is not None:
                set_aside.append(item["policy"])
            continue  # e.g. a uniform-random candidate on uniform-random logs: listed in same_as_baseline
        record: dict[str, Any] = {}
        for name, kind in schema.items():
            if name not in item:
                raise _row_error(f"{key}.{name}", "present", "missing", row)
            value = item[name]
            if kind == "nullable" and value is None:
                record[name] = None
            elif kind is str:
                if not isinstance(value, str) or not value:
                    raise _row_error(f"{key}.{name}", "a non-empty string", repr(value), row)
                record[name] = value
            else:
                if not _is_number(value):
                    raise _row_error(f"{key}.{name}", "a finite number", repr(value), row)
                record[name] = float(value)
        if key == "comparisons" and record["se"] <= 0:
            raise _row_error(f"{key}.se", "a positive standard error", repr(record["se"]), row)
        if record["se"] is not None and record["se"] < 0:
            # An estimate is context only: se 0 is a real outcome (no weighted click, e.g. SNIPS of a policy whose
            # matched rounds were all unclicked) and must not make the whole file unreadable.
            raise _row_error(f"{key}.se", "a non-negative standard error", repr(record["se"]), row)
        if None not in (record["ci_low"], record["ci_high"]) and record["ci_low"] > record["ci_high"]:
            raise _row_error(f"{key}.ci_low", "at most ci_high", repr(record["ci_low"]), row)
        if isinstance(item.get("policy"), str) and "policy" not in schema:
            record["policy"] = item["policy"]
        if key == "comparisons":
            record.update(_reliability(item, row))
        records.append(record)
    return records


def _is_number(value: Any) -> bool:
    """A finite JSON number (not a bool, which Python counts as an int)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _same_as_baseline(item: Mapping[str, Any]) -> bool:
    """A comparison whose uplift is exactly 0 with standard error 0: on these logs the policy's per-round terms are
    the baseline's (the logging policy evaluated as a candidate). Nothing to plan for, and not an estimate to
    shrink others towards."""
    return isinstance(item.get("policy"), str) and all(
        _is_number(item.get(name)) and item.get(name) == 0 for name in ("difference", "se"))


def _reliability(item: Mapping[str, Any], row: int) -> dict[str, Any]:
    """The optional ``reliable`` (bool) and ``ess`` (number) of a comparison, as causalrec's JSON writes them."""
    found: dict[str, Any] = {}
    reliable = item.get("reliable")
    if reliable is not None:
        if not isinstance(reliable, bool):
            raise _row_error("comparisons.reliable", "true, false or null", repr(reliable), row)
        found["reliable"] = reliable
    ess = item.get("ess")
    if ess is not None:
        if not _is_number(ess) or ess < 0:
            raise _row_error("comparisons.ess", "a non-negative number or null", repr(ess), row)
        found["ess"] = float(ess)
    return found


def _row_error(field: str, expected: str, found: str, row: int) -> ValidationError:
    return ValidationError(field, expected, found, row=row, owner=_OWNER)


def read_offline_evaluation(source: Mapping[str, Any] | str | os.PathLike) -> OfflineEvaluation:
    """Validate an evaluation/selection result (a mapping or a JSON file) against the schema above."""
    where = None
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        where = str(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise fail(_OWNER, "from_json", "an existing JSON file", str(path)) from error
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise fail(_OWNER, "from_json", "valid JSON", f"{path}: {error}") from error
        except OSError as error:
            raise fail(_OWNER, "from_json", "a readable JSON file", f"{path}: {type(error).__name__}: {error}") from error
    else:
        payload = source
    if not isinstance(payload, Mapping):
        raise fail(_OWNER, "evaluation", "a JSON object with 'estimates' and/or 'comparisons'", type(payload).__name__)
    if "estimates" not in payload and "comparisons" not in payload:
        raise fail(_OWNER, "comparisons", "a list of policy-vs-baseline uplifts (and/or an 'estimates' list)", "neither key")
    estimates = tuple(OfflineEstimate(**r) for r in _records(payload, "estimates", _ESTIMATE_KEYS, required=False))
    same: list[str] = []
    comparisons = tuple(
        OfflineComparison(**r) for r in _records(payload, "comparisons", _COMPARISON_KEYS, required=False,
                                                 set_aside=same)
    )
    return OfflineEvaluation(estimates=estimates, comparisons=comparisons, source=where, same_as_baseline=tuple(same))


def baseline_value(evaluation: OfflineEvaluation, comparison: OfflineComparison) -> float | None:
    """The baseline policy's estimated value by the comparison's estimator, when ``estimates`` carry it; for the
    logging policy its on-policy mean (estimator ``"on-policy mean"``) serves whatever the comparison's estimator."""
    for estimate in evaluation.estimates:
        if estimate.policy == comparison.baseline and estimate.estimator == comparison.estimator:
            return estimate.value
    for estimate in evaluation.estimates:
        if estimate.policy == comparison.baseline and estimate.estimator == "on-policy mean":
            return estimate.value
    return None


def choose_comparison(
    evaluation: OfflineEvaluation, *, policy: str | None = None, estimator: str | None = None
) -> tuple[OfflineComparison, tuple[OfflineComparison, ...], bool]:
    """``(chosen, candidates, chosen_is_best)`` among the comparisons of one estimator."""
    if not evaluation.comparisons:
        raise fail(
            _OWNER,
            "comparisons",
            "a non-empty list of policy-vs-baseline uplifts to plan from (or plan for a fixed --mde-rel/--mde-abs)",
            "none",
        )
    names = sorted({c.estimator for c in evaluation.comparisons})
    if estimator is None:
        if len(names) > 1:
            raise fail(_OWNER, "estimator", f"one of {names} (the comparisons use several estimators)", "None")
        estimator = names[0]
    candidates = tuple(c for c in evaluation.comparisons if c.estimator == estimator)
    if not candidates:
        raise fail(_OWNER, "estimator", f"one of {names}", estimator)
    policies = [c.policy for c in candidates]
    duplicated = sorted({p for p in policies if policies.count(p) > 1})
    if duplicated:
        raise fail(_OWNER, "comparisons", f"one comparison per policy for estimator {estimator!r}", f"repeated {duplicated}")
    best = max(candidates, key=lambda c: c.difference)
    if policy is None:
        chosen = best
    else:
        matches = [c for c in candidates if c.policy == policy]
        if not matches and policy in evaluation.same_as_baseline:
            raise fail(_OWNER, "policy", f"a policy that differs from the baseline on these logs (one of {policies})",
                       f"{policy!r}, whose uplift is exactly 0 with standard error 0: its per-round terms are the "
                       "baseline's")
        if not matches:
            raise fail(_OWNER, "policy", f"one of {policies}", policy)
        chosen = matches[0]
    return chosen, candidates, chosen is best and len(candidates) > 1


# ----------------------------------------------------------------------------------------------- shrinkage
@dataclass(frozen=True)
class ShrunkEffect(ResultMixin):
    """An offline uplift before and after shrinkage, with the credible interval used for planning."""

    policy: str | None
    raw_estimate: float
    raw_standard_error: float
    n_candidates: int
    selected_as_best: bool
    method: str
    prior_mean: float | None
    prior_sd: float | None
    estimate: float
    standard_error: float
    credible_level: float
    interval_low: float
    interval_high: float
    note: str

    def to_frame(self) -> pd.DataFrame:
        rows = [
            ("policy", self.policy),
            ("raw estimate", self.raw_estimate),
            ("raw standard error", self.raw_standard_error),
            ("candidates", self.n_candidates),
            ("selected as best", self.selected_as_best),
            ("method", self.method),
            ("prior mean", self.prior_mean),
            ("prior sd", self.prior_sd),
            ("shrunk estimate", self.estimate),
            ("shrunk standard error", self.standard_error),
            (f"{100 * self.credible_level:g}% interval low", self.interval_low),
            (f"{100 * self.credible_level:g}% interval high", self.interval_high),
        ]
        return pd.DataFrame({"quantity": [r[0] for r in rows], "value": pd.Series([r[1] for r in rows], dtype=object)})


def empirical_bayes_prior(estimates: Sequence[float], standard_errors: Sequence[float]) -> tuple[float, float, float]:
    """``(mu, tau^2, Var(mu_hat))`` of a normal prior fitted by the DerSimonian-Laird moment estimator."""
    d = np.asarray(estimates, dtype=float)
    v = np.asarray(standard_errors, dtype=float) ** 2
    w = 1.0 / v
    fixed_mean = float(np.sum(w * d) / np.sum(w))
    q = float(np.sum(w * (d - fixed_mean) ** 2))
    denominator = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - (d.size - 1)) / denominator) if denominator > 0 else 0.0
    w_random = 1.0 / (v + tau2)
    mu = float(np.sum(w_random * d) / np.sum(w_random))
    return mu, tau2, float(1.0 / np.sum(w_random))


def hierarchical_normal_posterior(
    estimates: Sequence[float], standard_errors: Sequence[float], index: int, *, grid_points: int = 800
) -> tuple[float, float, float, float]:
    """Posterior ``(mean, sd)`` of candidate ``index``'s true effect, and posterior means of ``mu`` and ``tau``.

    Model: ``d_i ~ N(theta_i, se_i^2)``, ``theta_i ~ N(mu, tau^2)``, flat prior on ``mu`` and uniform prior on
    ``tau`` (Gelman et al., Bayesian Data Analysis, 3rd ed., section 5.4); ``mu`` is integrated analytically and
    ``tau`` numerically on a grid up to 1000 times the scale of the data. The posterior of ``theta`` is the
    mixture over ``tau``; its mean and sd are returned. Needs at least 3 candidates (proper posterior).
    """
    d = np.asarray(estimates, dtype=float)
    variances = np.asarray(standard_errors, dtype=float) ** 2
    scale = float(np.sqrt(variances.max()) + np.ptp(d))
    tau = np.concatenate([[0.0], np.geomspace(1e-4 * scale, 1e3 * scale, grid_points)])
    total = variances[None, :] + tau[:, None] ** 2  # (grid, candidates)
    weights = 1.0 / total
    mu_variance = 1.0 / weights.sum(axis=1)
    mu_hat = mu_variance * (weights * d).sum(axis=1)
    log_density = (
        0.5 * np.log(mu_variance)
        - 0.5 * np.log(total).sum(axis=1)
        - 0.5 * (((d[None, :] - mu_hat[:, None]) ** 2) * weights).sum(axis=1)
    )
    trapezoid = np.zeros_like(tau)
    trapezoid[1:] += 0.5 * np.diff(tau)
    trapezoid[:-1] += 0.5 * np.diff(tau)
    posterior = trapezoid * np.exp(log_density - log_density.max())
    posterior /= posterior.sum()
    towards_mean = variances[index] / total[:, index]
    conditional_mean = (1.0 - towards_mean) * d[index] + towards_mean * mu_hat
    conditional_variance = (1.0 - towards_mean) * variances[index] + towards_mean**2 * mu_variance
    mean = float(posterior @ conditional_mean)
    variance = float(posterior @ (conditional_variance + conditional_mean**2)) - mean**2
    return mean, math.sqrt(max(variance, 0.0)), float(posterior @ mu_hat), float(posterior @ tau)


def winners_curse_bias(
    estimates: Sequence[float], standard_errors: Sequence[float], *, n_draws: int = 200_000, seed: int | np.random.Generator = 0
) -> float:
    """Parametric-bootstrap bias ``E[d*_J - theta_J]`` of the selected (largest) estimate, ``theta`` = estimates."""
    rng = np.random.default_rng(seed)
    theta = np.asarray(estimates, dtype=float)
    se = np.asarray(standard_errors, dtype=float)
    draws = theta + se * rng.standard_normal((n_draws, theta.size))
    winner = np.argmax(draws, axis=1)
    rows = np.arange(n_draws)
    return float(np.mean(draws[rows, winner] - theta[winner]))


def shrink_uplift(
    estimate: float,
    standard_error: float,
    *,
    candidate_estimates: Sequence[float] | None = None,
    candidate_standard_errors: Sequence[float] | None = None,
    selected_as_best: bool = False,
    prior_mean: float | None = None,
    prior_sd: float | None = None,
    credible_level: float = 0.95,
    policy: str | None = None,
    seed: int | np.random.Generator = 0,
) -> ShrunkEffect:
    """Shrink an offline uplift (module docstring). Candidates include the chosen estimate itself."""
    estimate = finite_number(_OWNER, "estimate", estimate)
    standard_error = positive(_OWNER, "standard_error", standard_error)
    credible_level = open_unit_interval(_OWNER, "credible_level", credible_level)
    d = np.asarray([estimate] if candidate_estimates is None else candidate_estimates, dtype=float)
    se = np.asarray([standard_error] if candidate_standard_errors is None else candidate_standard_errors, dtype=float)
    if d.shape != se.shape or d.ndim != 1 or not np.all(np.isfinite(d)) or not np.all(se > 0):
        raise fail(_OWNER, "candidates", "estimates and positive standard errors of equal length", f"{d.size} and {se.size}")
    if (prior_mean is None) != (prior_sd is None):
        raise fail(_OWNER, "prior_sd", "given together with prior_mean", f"prior_mean={prior_mean}, prior_sd={prior_sd}")
    m = int(d.size)
    prior_mean_used: float | None = None
    prior_sd_used: float | None = None
    if prior_sd is not None:
        prior_mean_used = finite_number(_OWNER, "prior_mean", prior_mean)
        prior_sd_used = positive(_OWNER, "prior_sd", prior_sd)
        shrink = prior_sd_used**2 / (prior_sd_used**2 + standard_error**2)
        centre = prior_mean_used + shrink * (estimate - prior_mean_used)
        spread = math.sqrt(shrink) * standard_error
        method = "normal prior given by the user (posterior; unaffected by selection)"
        note = "posterior under the given prior"
    elif m >= 3:
        matches = np.flatnonzero((d == estimate) & (se == standard_error))
        if matches.size == 0:
            raise fail(_OWNER, "candidate_estimates", "to include the chosen estimate and its standard error", d.tolist())
        centre, spread, prior_mean_used, prior_sd_used = hierarchical_normal_posterior(d, se, int(matches[0]))
        method = "empirical_bayes"
        note = (
            f"normal prior N(mu, tau^2) estimated from {m} candidates, with the uncertainty of mu and tau "
            "integrated out (hierarchical normal model); the posterior also corrects the winner's curse"
            + (" of the selected best candidate" if selected_as_best else "")
        )
    elif m == 2 and selected_as_best:
        bias = winners_curse_bias(d, se, seed=seed)
        centre, spread = estimate - bias, standard_error
        method = "winners_curse_bootstrap"
        note = f"best of 2 candidates: parametric-bootstrap selection bias {bias:.4g} subtracted (Lee and Shen 2018)"
    else:
        centre, spread = estimate, standard_error
        method = "none"
        note = "no prior to shrink towards (pass prior_mean/prior_sd, or at least 3 candidates); estimate used as is"
        warnings.warn(
            "planning from an unshrunk offline estimate: " + note + ". Offline uplifts tend to be optimistic.",
            CausalrecWarning,
            stacklevel=2,
        )
    z = stats.norm.isf((1.0 - credible_level) / 2)
    logger.info("shrunk uplift %.6g -> %.6g (%s)", estimate, centre, method)
    return ShrunkEffect(
        policy=policy,
        raw_estimate=estimate,
        raw_standard_error=standard_error,
        n_candidates=m,
        selected_as_best=bool(selected_as_best),
        method=method,
        prior_mean=prior_mean_used,
        prior_sd=prior_sd_used,
        estimate=float(centre),
        standard_error=float(spread),
        credible_level=credible_level,
        interval_low=float(centre - z * spread),
        interval_high=float(centre + z * spread),
        note=note,
    )


def shrink_comparison(
    evaluation: OfflineEvaluation,
    *,
    policy: str | None = None,
    estimator: str | None = None,
    prior_mean: float | None = None,
    prior_sd: float | None = None,
    credible_level: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> ShrunkEffect:
    """Choose a comparison (default: the largest uplift) and shrink it, correcting for its selection."""
    chosen, candidates, chosen_is_best = choose_comparison(evaluation, policy=policy, estimator=estimator)
    return shrink_uplift(
        chosen.difference,
        chosen.se,
        candidate_estimates=[c.difference for c in candidates],
        candidate_standard_errors=[c.se for c in candidates],
        selected_as_best=chosen_is_best,
        prior_mean=prior_mean,
        prior_sd=prior_sd,
        credible_level=credible_level,
        policy=chosen.policy,
        seed=seed,
    )


def _unreliable_offline(effect: ShrunkEffect, offline: OfflineEvaluation | None) -> list[str]:
    """A warning when the evaluation flagged the estimate of the policy planned for as unreliable."""
    if offline is None or effect.policy is None:
        return []
    flagged = [c for c in offline.comparisons if c.policy == effect.policy and c.reliable is False]
    if not flagged:
        return []
    ess = flagged[0].ess
    evidence = "" if ess is None else f" (effective sample size {ess:.4g})"
    return [f"the offline estimate of {effect.policy!r}, the policy planned for, is flagged unreliable{evidence}: "
            "the planned effect rests on very little evidence; see the evaluation's warnings, and consider a fixed "
            "minimum detectable effect (mde_abs / mde_rel) instead"]


# ----------------------------------------------------------------------------------------------- assurance
def _clip_effect(metric: Metric, effect: np.ndarray) -> np.ndarray:
    if isinstance(metric, BinaryMetric):
        tiny = 1e-9
        return np.clip(effect, tiny - metric.baseline, 1.0 - tiny - metric.baseline)
    return effect


def assurance(
    metric: Metric, settings: DesignSettings, n_treatment: float, effect_mean: float, effect_sd: float
) -> float:
    """Power to show an improvement averaged over ``effect ~ N(effect_mean, effect_sd^2)`` (Gauss-Hermite, 64)."""
    effects = _clip_effect(metric, effect_mean + math.sqrt(2.0) * effect_sd * _GAUSS_HERMITE_NODES)
    powers = build_test_design(metric, effects, settings).directional_power(n_treatment)
    return float(np.sum(_GAUSS_HERMITE_WEIGHTS * powers) / math.sqrt(math.pi))


def maximum_assurance(settings: DesignSettings, effect_mean: float, effect_sd: float) -> float:
    """The limit of the assurance as the sample grows: P(effect beyond the null boundary in the right direction)."""
    margin = settings.noninferiority_margin
    if settings.alternative == "smaller":
        return float(stats.norm.cdf((margin - effect_mean) / effect_sd))
    return float(stats.norm.sf((-margin - effect_mean) / effect_sd))


def sample_size_for_assurance(
    metric: Metric, settings: DesignSettings, target: float, effect_mean: float, effect_sd: float
) -> float | None:
    """Units per treatment arm with assurance ``target``; None when the target is not below the maximum assurance,
    or so close to it that no sample up to ``_ASSURANCE_SEARCH_LIMIT`` units per arm reaches it."""
    target = open_unit_interval(_OWNER, "target_assurance", target)
    if target >= maximum_assurance(settings, effect_mean, effect_sd) - 1e-9:
        return None
    low, high = 2.0, 1e4
    while assurance(metric, settings, high, effect_mean, effect_sd) < target:
        high *= 4.0
        if high > _ASSURANCE_SEARCH_LIMIT:
            return None
    if assurance(metric, settings, low, effect_mean, effect_sd) >= target:
        return low
    return float(optimize.brentq(lambda n: assurance(metric, settings, n, effect_mean, effect_sd) - target, low, high, rtol=1e-10))


# ----------------------------------------------------------------------------------------------- duration, SRM
@dataclass(frozen=True)
class ExperimentDuration(ResultMixin):
    """Days to reach ``total_units`` at ``daily_eligible_traffic * traffic_fraction`` new units per day."""

    total_units: int
    daily_eligible_traffic: float
    traffic_fraction: float
    days_exact: float
    days: int
    weeks: int | None
    rounded_to_weeks: bool

    def to_frame(self) -> pd.DataFrame:
        rows = [
            ("total units", self.total_units),
            ("daily eligible traffic", self.daily_eligible_traffic),
            ("share of traffic in the experiment", self.traffic_fraction),
            ("days (exact)", self.days_exact),
            ("days", self.days),
            ("weeks", self.weeks),
        ]
        return pd.DataFrame({"quantity": [r[0] for r in rows], "value": pd.Series([r[1] for r in rows], dtype=object)})


def experiment_duration(
    total_units: float, daily_eligible_traffic: float, *, traffic_fraction: float = 1.0, round_to_weeks: bool = False
) -> ExperimentDuration:
    """Duration from daily eligible traffic (units that newly enter each day) and the share given to the test."""
    total = whole_units(positive(_OWNER, "total_units", total_units))
    traffic = positive(_OWNER, "daily_eligible_traffic", daily_eligible_traffic)
    fraction = positive(_OWNER, "traffic_fraction", traffic_fraction)
    if fraction > 1.0:
        raise fail(_OWNER, "traffic_fraction", "in (0, 1]", traffic_fraction)
    days_exact = total / (traffic * fraction)
    days = max(1, whole_units(days_exact))
    weeks = math.ceil(days / 7) if round_to_weeks else None
    return ExperimentDuration(
        total_units=total,
        daily_eligible_traffic=traffic,
        traffic_fraction=fraction,
        days_exact=days_exact,
        days=7 * weeks if weeks is not None else days,
        weeks=weeks,
        rounded_to_weeks=bool(round_to_weeks),
    )


@dataclass(frozen=True)
class SampleRatioMismatchResult(ResultMixin):
    """Pearson chi-square test of observed arm counts against the planned allocation."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    degrees_of_freedom: int
    p_value: float
    threshold: float
    mismatch: bool
    verdict: str

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"observed": self.observed, "expected": self.expected})


def sample_ratio_mismatch(
    observed_counts: Sequence[int], expected_fractions: Sequence[float], *, threshold: float = 0.001
) -> SampleRatioMismatchResult:
    """Chi-square sample-ratio-mismatch check; ``mismatch`` when the p-value is below ``threshold``."""
    observed = np.asarray(observed_counts, dtype=float)
    fractions = np.asarray(expected_fractions, dtype=float)
    threshold = open_unit_interval(_OWNER, "threshold", threshold)
    if observed.ndim != 1 or observed.size < 2 or np.any(observed < 0) or np.any(observed != np.round(observed)):
        raise fail(_OWNER, "observed_counts", "at least two non-negative integer counts", observed.tolist())
    if fractions.shape != observed.shape or np.any(fractions <= 0) or not math.isclose(fractions.sum(), 1.0, abs_tol=1e-9):
        raise fail(_OWNER, "expected_fractions", f"{observed.size} positive fractions summing to 1", fractions.tolist())
    if observed.sum() <= 0:
        raise fail(_OWNER, "observed_counts", "a positive total", observed.tolist())
    expected = observed.sum() * fractions
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    df = observed.size - 1
    p_value = float(stats.chi2.sf(statistic, df))
    mismatch = p_value < threshold
    verdict = (
        f"sample ratio mismatch (chi-square {statistic:.2f}, df {df}, p = {p_value:.2g} < {threshold:g}): assignment "
        "or logging is broken; do not read the results until the cause is found"
        if mismatch
        else f"no sample ratio mismatch detected (p = {p_value:.3g} >= {threshold:g})"
    )
    return SampleRatioMismatchResult(
        observed=tuple(int(o) for o in observed),
        expected=tuple(float(e) for e in expected),
        statistic=statistic,
        degrees_of_freedom=df,
        p_value=p_value,
        threshold=threshold,
        mismatch=mismatch,
        verdict=verdict,
    )


# ----------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class ExperimentPlan(ResultMixin):
    """A complete pre-launch plan: design, sequential boundaries, offline evidence, assurance and duration.

    ``max_*`` are the units to recruit (the fixed design's units times the sequential inflation factor);
    the curves are those of the fixed-sample analysis.
    """

    design: SampleSizeResult
    sequential: SequentialDesign | None
    max_n_treatment: int
    max_n_control: int
    max_total: int
    variance_reduction: VarianceReductionEstimate | None
    n_treatment_without_variance_reduction: float | None
    offline: OfflineEvaluation | None
    effect: ShrunkEffect | None
    assurance: float | None
    maximum_assurance: float | None
    target_assurance: float | None
    n_treatment_for_target_assurance: float | None
    n_treatment_at_interval_high: float | None
    n_treatment_at_interval_low: float | None
    n_treatment_unshrunk: float | None
    available_n_treatment: float | None
    power_at_available_n: float | None
    mde_at_available_n: float | None
    duration: ExperimentDuration | None
    expected_allocation: tuple[float, ...]
    curve_n_treatment: tuple[float, ...]
    curve_power: tuple[float, ...]
    curve_assurance: tuple[float, ...] | None
    variance_convention: str
    assumptions: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        settings = self.design.settings
        rows: list[tuple[str, Any]] = [
            ("metric", settings.metric),
            ("variance convention", self.variance_convention),
            ("alternative", settings.alternative),
        ]
        margin = settings.noninferiority_margin
        if margin > 0:
            null = f"effect <= {-margin:g}" if settings.alternative == "larger" else f"effect >= {margin:g}"
            rows.append(("null hypothesis (non-inferiority margin)", null))
        if settings.n_treatment_arms > 1:
            rows.append(("treatment arms (correction)", f"{settings.n_treatment_arms} ({settings.correction})"))
        if settings.allocation_ratio != 1:
            rows.append(("allocation ratio (control / treatment arm)", settings.allocation_ratio))
        rows += [
            ("alpha per comparison", settings.alpha_per_comparison),
            ("target power", self.design.target_power),
            ("planned effect (absolute)", self.design.effect_absolute),
            ("planned effect (relative)", self.design.effect_relative),
            ("variance factor", settings.variance_factor),
            ("fixed design: n per treatment arm (unrounded)", self.design.n_treatment),
            ("fixed design: n per treatment arm", self.design.n_treatment_required),
            ("fixed design: n control", self.design.n_control_required),
        ]
        if self.sequential is not None:
            rows += [
                ("sequential design", f"{self.sequential.kind}, {self.sequential.n_looks} looks"),
                ("inflation factor", self.sequential.inflation_factor),
            ]
        rows += [
            ("maximum n per treatment arm", self.max_n_treatment),
            ("maximum n control", self.max_n_control),
            ("maximum total units", self.max_total),
        ]
        if self.n_treatment_without_variance_reduction is not None:
            rows.append(("n per treatment arm without variance reduction", self.n_treatment_without_variance_reduction))
        if self.effect is not None:
            rows += [
                ("offline uplift (raw)", self.effect.raw_estimate),
                ("offline uplift (shrunk)", self.effect.estimate),
                ("shrinkage", self.effect.method),
                ("n per arm for the raw uplift", self.n_treatment_unshrunk),
                ("assurance at the planned n", self.assurance),
                ("maximum assurance", self.maximum_assurance),
                (f"n per arm for assurance {self.target_assurance}", self.n_treatment_for_target_assurance),
                ("n per arm at the interval's high effect", self.n_treatment_at_interval_high),
                ("n per arm at the interval's low effect", self.n_treatment_at_interval_low),
            ]
        if self.available_n_treatment is not None:
            rows += [
                ("available n per treatment arm", self.available_n_treatment),
                ("power at the available n", self.power_at_available_n),
                ("MDE (absolute) at the available n", self.mde_at_available_n),
            ]
        if self.duration is not None:
            rows += [("duration (days)", self.duration.days), ("duration (weeks)", self.duration.weeks)]
        return pd.DataFrame({"quantity": [r[0] for r in rows], "value": pd.Series([r[1] for r in rows], dtype=object)})

    def summary(self) -> str:
        lines = [
            "ExperimentPlan",
            "==============",
            self.to_frame().to_string(index=False),
            "",
            f"Variance convention: {self.variance_convention} - {self.design.settings.variance_convention_description}",
            "Assumptions:",
            *[f"  - {a}" for a in self.assumptions],
        ]
        if self.sequential is not None:
            lines += ["Stopping rules:", *[f"  - {rule}" for rule in self.sequential.stopping_rules]]
        if self.warnings:
            lines += ["Warnings:", *[f"  - {w}" for w in self.warnings]]
        return "\n".join(lines)


def _n_for_effect(metric: Metric, settings: DesignSettings, effect: float, power: float) -> float | None:
    """Units per treatment arm to reach ``power`` at ``effect``; None when the effect is no improvement (checked
    before building the design: a binary baseline plus a negative effect may not even be a rate)."""
    sign = -1.0 if settings.alternative == "smaller" else 1.0
    if sign * (effect + settings.noninferiority_margin * sign) <= 0:
        return None
    design = build_test_design(metric, effect, settings)
    if sign * design.shift <= 0:
        return None
    return design.sample_size(power)


def plan_experiment(
    metric: Metric,
    *,
    mde_abs: float | None = None,
    mde_rel: float | None = None,
    effect: ShrunkEffect | None = None,
    offline: OfflineEvaluation | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    allocation_ratio: float = 1.0,
    n_treatment_arms: int = 1,
    correction: str = "bonferroni",
    noninferiority_margin: float = 0.0,
    cuped_rho: float | None = None,
    variance_reduction: VarianceReductionEstimate | None = None,
    sequential: str | None = None,
    n_looks: int = 5,
    mixture_variance_ratio: float | None = None,
    daily_eligible_traffic: float | None = None,
    traffic_fraction: float = 1.0,
    round_to_weeks: bool = False,
    target_assurance: float = 0.8,
    available_n_treatment: float | None = None,
    curve_points: int = 41,
) -> ExperimentPlan:
    """Plan an A/B test for a fixed effect (``mde_abs``/``mde_rel``) or an offline one (``effect``).

    With ``available_n_treatment`` (units per treatment arm one can afford) the plan also reports the power
    and the MDE at that size; given without an effect, the plan is made for that MDE.

    ``cuped_rho`` or ``variance_reduction`` (from :func:`estimate_variance_reduction`) shrink the variance by
    ``1 - rho^2``; ``sequential`` is one of ``pocock``, ``obrien_fleming``, ``lan_demets_obf``,
    ``lan_demets_pocock``, ``msprt`` with ``n_looks`` equally spaced looks.
    """
    caught: list[str] = []
    if effect is not None and (mde_abs is not None or mde_rel is not None):
        raise fail(_OWNER, "mde_abs/mde_rel", "absent when planning from an offline effect", f"{mde_abs}/{mde_rel}")
    if cuped_rho is not None and variance_reduction is not None:
        raise fail(_OWNER, "cuped_rho", "absent when variance_reduction is given", cuped_rho)
    if variance_reduction is not None:
        variance_factor = variance_reduction.variance_factor
        if not variance_reduction.pre_exposure_verified:
            caught.append("variance reduction accepted on acknowledgement: the covariate's timestamps were not checked")
    elif cuped_rho is not None:
        variance_factor = variance_factor_from_correlation(cuped_rho)
    else:
        variance_factor = 1.0
    if effect is not None:
        mde_abs = effect.estimate
        if effect.method == "none":
            caught.append("planning from an unshrunk offline estimate (" + effect.note + ")")
        caught.extend(_unreliable_offline(effect, offline))
    if available_n_treatment is not None:
        available_n_treatment = positive(_OWNER, "available_n_treatment", available_n_treatment)
    common = {
        "alpha": alpha,
        "alternative": alternative,
        "allocation_ratio": allocation_ratio,
        "n_treatment_arms": n_treatment_arms,
        "correction": correction,
        "noninferiority_margin": noninferiority_margin,
    }
    mde_available = None
    if available_n_treatment is not None:
        mde_available = minimum_detectable_effect(
            metric, available_n_treatment, power=power, variance_factor=variance_factor, **common
        ).mde_absolute
        if effect is None and mde_abs is None and mde_rel is None:
            mde_abs = mde_available
    if effect is not None:
        wanted = -1.0 if alternative == "smaller" else 1.0
        if wanted * effect.estimate + noninferiority_margin <= 0:
            raise fail(
                _OWNER,
                "effect",
                "a shrunk offline uplift in the direction of the improvement; the offline evidence does not support "
                "an improvement worth testing (plan for a fixed --mde-rel/--mde-abs instead)",
                effect.estimate,
            )
    design = sample_size(metric, mde_abs=mde_abs, mde_rel=mde_rel, power=power, variance_factor=variance_factor, **common)
    settings = design.settings
    inflation = 1.0
    sequential_result: SequentialDesign | None = None
    if sequential is not None and sequential != "none":
        if sequential not in SEQUENTIAL_KINDS:
            raise fail(_OWNER, "sequential", f"one of none, {', '.join(SEQUENTIAL_KINDS)}", sequential)
        sequential_result = sequential_design(
            sequential,
            n_looks,
            alpha=settings.alpha_per_comparison,
            power=power,
            alternative=alternative,
            mixture_variance_ratio=mixture_variance_ratio,
        )
        inflation = sequential_result.inflation_factor
    max_n_treatment = whole_units(design.n_treatment * inflation)
    max_n_control = whole_units(design.n_treatment * inflation * settings.allocation_ratio)
    max_total = max_n_treatment * settings.n_treatment_arms + max_n_control
    if sequential_result is not None:
        sequential_result = with_sample_sizes(sequential_result, design.n_treatment * inflation, settings.allocation_ratio)

    n_without_reduction = None
    if variance_factor < 1.0:
        n_without_reduction = sample_size(metric, mde_abs=design.effect_absolute, power=power, **common).n_treatment

    assurance_value = max_assurance = n_for_target = n_high = n_low = n_unshrunk = None
    if effect is not None:
        assurance_value = assurance(metric, settings, design.n_treatment, effect.estimate, effect.standard_error)
        max_assurance = maximum_assurance(settings, effect.estimate, effect.standard_error)
        n_for_target = sample_size_for_assurance(metric, settings, target_assurance, effect.estimate, effect.standard_error)
        n_high = _n_for_effect(metric, settings, effect.interval_high if alternative != "smaller" else effect.interval_low, power)
        n_low = _n_for_effect(metric, settings, effect.interval_low if alternative != "smaller" else effect.interval_high, power)
        n_unshrunk = _n_for_effect(metric, settings, effect.raw_estimate, power)
        if n_low is None:
            caught.append(
                f"the {100 * effect.credible_level:g}% interval of the effect reaches no improvement: no finite sample "
                "size guarantees the target power over the whole interval"
            )
        if n_for_target is None and max_assurance > target_assurance + 1e-9:
            caught.append(
                f"assurance {target_assurance:g} is out of practical reach: its limit as the sample grows, "
                f"{max_assurance:.4f} (the probability that the effect is an improvement), is so close to it that no "
                f"sample up to {_ASSURANCE_SEARCH_LIMIT:.0e} units per arm gets there"
            )
        elif n_for_target is None:
            caught.append(
                f"assurance {target_assurance:g} is out of reach (maximum {max_assurance:.3f} = probability that the "
                "effect is an improvement)"
            )

    duration = None
    if daily_eligible_traffic is not None:
        duration = experiment_duration(
            max_total, daily_eligible_traffic, traffic_fraction=traffic_fraction, round_to_weeks=round_to_weeks
        )

    grid = np.geomspace(max(design.n_treatment / 20.0, 3.0), design.n_treatment * 4.0, curve_points)
    plan_design = build_test_design(metric, design.effect_absolute, settings)
    curve_power = tuple(float(p) for p in plan_design.power(grid))
    curve_assurance = None
    if effect is not None:
        curve_assurance = tuple(assurance(metric, settings, float(n), effect.estimate, effect.standard_error) for n in grid)

    shares = np.array([1.0] * settings.n_treatment_arms + [settings.allocation_ratio])
    assumptions = list(settings.assumptions)
    assumptions.append("power and assurance curves are those of the fixed-sample analysis")
    if sequential_result is not None:
        assumptions.append(f"sequential design: {sequential_result.convention}")
    if effect is not None:
        assumptions.append(f"offline uplift: {effect.note}; assurance averages power over N(shrunk estimate, se^2)")
        assumptions.append("the offline uplift is on the same absolute scale and population as the online metric")
    if duration is not None:
        assumptions.append(
            "duration counts daily eligible traffic as new units each day (returning users make it longer)"
        )
    assumptions.append(
        "check the sample ratio daily with sample_ratio_mismatch(observed_counts, expected_allocation); "
        "p < 0.001 means broken assignment"
    )
    for message in caught:
        logger.warning(message)
    return ExperimentPlan(
        design=design,
        sequential=sequential_result,
        max_n_treatment=max_n_treatment,
        max_n_control=max_n_control,
        max_total=max_total,
        variance_reduction=variance_reduction,
        n_treatment_without_variance_reduction=n_without_reduction,
        offline=offline,
        effect=effect,
        assurance=assurance_value,
        maximum_assurance=max_assurance,
        target_assurance=target_assurance if effect is not None else None,
        n_treatment_for_target_assurance=n_for_target,
        n_treatment_at_interval_high=n_high,
        n_treatment_at_interval_low=n_low,
        n_treatment_unshrunk=n_unshrunk,
        available_n_treatment=available_n_treatment,
        power_at_available_n=(
            None if available_n_treatment is None else float(plan_design.power(available_n_treatment))
        ),
        mde_at_available_n=mde_available,
        duration=duration,
        expected_allocation=tuple(float(s) for s in shares / shares.sum()),
        curve_n_treatment=tuple(float(n) for n in grid),
        curve_power=curve_power,
        curve_assurance=curve_assurance,
        variance_convention=settings.variance_convention,
        assumptions=tuple(assumptions),
        warnings=tuple(caught),
    )


def plan_from_offline(
    evaluation: OfflineEvaluation | Mapping[str, Any] | str | os.PathLike,
    metric: Metric,
    *,
    policy: str | None = None,
    estimator: str | None = None,
    prior_mean: float | None = None,
    prior_sd: float | None = None,
    credible_level: float = 0.95,
    seed: int | np.random.Generator = 0,
    **plan_options: Any,
) -> ExperimentPlan:
    """Plan from an evaluation/selection result: choose, shrink, then :func:`plan_experiment` on the shrunk uplift."""
    if not isinstance(evaluation, OfflineEvaluation):
        evaluation = read_offline_evaluation(evaluation)
    with warnings.catch_warnings():
        # The plan states this in its own warnings (plan_experiment); raised here too, it reached the user twice.
        warnings.filterwarnings("ignore", message="planning from an unshrunk offline estimate",
                                category=CausalrecWarning)
        effect = shrink_comparison(
            evaluation,
            policy=policy,
            estimator=estimator,
            prior_mean=prior_mean,
            prior_sd=prior_sd,
            credible_level=credible_level,
            seed=seed,
        )
    return plan_experiment(metric, effect=effect, offline=evaluation, **plan_options)


__all__ = [
    "ExperimentDuration",
    "ExperimentPlan",
    "OfflineComparison",
    "OfflineEstimate",
    "OfflineEvaluation",
    "SampleRatioMismatchResult",
    "ShrunkEffect",
    "assurance",
    "baseline_value",
    "choose_comparison",
    "empirical_bayes_prior",
    "experiment_duration",
    "hierarchical_normal_posterior",
    "maximum_assurance",
    "plan_experiment",
    "plan_from_offline",
    "read_offline_evaluation",
    "sample_ratio_mismatch",
    "sample_size_for_assurance",
    "shrink_comparison",
    "shrink_uplift",
    "winners_curse_bias",
]

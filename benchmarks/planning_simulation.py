"""Do the A/B test plans of ``causalrec.planning`` deliver their type-I error and power? Simulation check.

Every cell simulates ``--experiments`` (default 20,000; 10,000 for the per-user cells) independent experiments
with numpy, vectorised over experiments (no Python loop per experiment), at the sample size the plan gives,
under H0 (type-I error) and under the planned effect (power). Checks: type-I error within 1 percentage point
of its nominal level and power within 2 points of the plan. Negative controls show the failures the design
guards against: an impression-level test of a user-randomised ratio metric, and peeking at K looks with the
fixed 1.96.

Cells:
* plain: the issue's case (5% CTR, +2% relative, about 750k users per arm) for every binary convention,
  analysed with the test each convention plans for; 10/90 allocation; three arms with Bonferroni and Holm;
  non-inferiority (Wald, and the Farrington-Manning score test of the default convention at two baselines); the
  t-test with d = 0.5;
* cuped: skewed per-user outcome and pre-period covariate (rho about 0.71), factor estimated from a
  pre-launch log of 100k users with the frozen-covariate timestamps; CUPED-adjusted Welch z-test;
* ratio: clicks / impressions with users randomised (heterogeneous users), delta-method z-test; impression-level
  binomial test as negative control;
* sequential: binary data at K = 5 equally spaced looks for Pocock, O'Brien-Fleming, Lan-DeMets (OBF and
  Pocock type) and the mSPRT (likelihood ratio computed from the data at every look; also at K = 20); naive
  peeking as negative control;
* offline_to_plan: 5 candidate policies with true uplifts ~ N(0.02, 0.01^2) and offline estimates with se 0.01;
  the best is planned for from its raw estimate and from its shrunk estimate (normal prior learnt from the
  candidates, tau integrated out; the plug-in DerSimonian-Laird version is reported beside it); the online test
  (difference in means of unit-variance outcomes, simulated through its exact normal distribution) shows the
  realised power of each plan, next to the mean assurance.

Run: ``python benchmarks/planning_simulation.py [--experiments 20000] [--seed 2026]``; writes
``benchmarks/results/planning_simulation.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from datetime import UTC, datetime

import numpy as np
from _common import RESULTS, machine_facts
from scipy import stats

from causalrec._results import write_json_atomic
from causalrec.exceptions import CausalrecWarning
from causalrec.planning import (
    BINARY_METHODS,
    BinaryMetric,
    ContinuousMetric,
    RatioMetric,
    assurance,
    empirical_bayes_prior,
    estimate_variance_reduction,
    msprt_likelihood_ratio,
    naive_peeking_type_i_error,
    sample_size,
    sequential_design,
    shrink_uplift,
    statistical_power,
)
from causalrec.planning.simulation import (
    ClickImpressionModel,
    CovariateOutcomeModel,
    reject,
    simulate_binary_counts,
    simulate_binary_look_differences,
    simulate_binary_looks,
    simulate_cuped_experiments,
    simulate_offline_selection,
    simulate_ratio_experiments,
    simulate_t_tests,
    two_proportion_z,
)

TYPE_I_TOLERANCE = 0.01
POWER_TOLERANCE = 0.02


def rate(rejections: np.ndarray) -> dict:
    share = float(np.mean(rejections))
    return {"rate": share, "binomial_se": math.sqrt(share * (1 - share) / rejections.size), "experiments": int(rejections.size)}


def checked(type_i: dict | None, nominal: float | None, power: dict | None, planned: float | None, **extra) -> dict:
    cell = dict(extra)
    checks = {}
    if type_i is not None:
        cell["type_i_error"] = type_i
        cell["nominal_alpha"] = nominal
        checks["type_i_within_1pt"] = abs(type_i["rate"] - nominal) <= TYPE_I_TOLERANCE
    if power is not None:
        cell["power"] = power
        cell["planned_power"] = planned
        checks["power_within_2pts"] = abs(power["rate"] - planned) <= POWER_TOLERANCE
    cell["checks"] = checks
    return cell


# ----------------------------------------------------------------------------------------------- plain designs
def plain_cells(rng: np.random.Generator, n_experiments: int) -> dict:
    cells = {}
    p0, relative = 0.05, 0.02
    p1 = p0 * (1 + relative)
    for method in BINARY_METHODS:
        design = sample_size(BinaryMetric(p0, method), mde_rel=relative)
        n = design.n_treatment_required
        exact_power = statistical_power(BinaryMetric(p0, method), n, mde_rel=relative).power
        null = simulate_binary_counts(n, n, p0, p0, n_experiments, rng)
        alternative = simulate_binary_counts(n, n, p1, p0, n_experiments, rng)
        cells[f"binary_{method}"] = checked(
            rate(reject(two_proportion_z(null[0], n, null[1], n, method), 0.05)), 0.05,
            rate(reject(two_proportion_z(alternative[0], n, alternative[1], n, method), 0.05)), exact_power,
            n_per_arm=n, expected_events_per_arm=n * p0, analysis=f"{method} z-test",
        )
    # 10 % treatment / 90 % control, Cohen's h
    design = sample_size(BinaryMetric(p0, "cohen_h"), mde_rel=relative, allocation_ratio=9.0)
    n_t, n_c = design.n_treatment_required, design.n_control_required
    null = simulate_binary_counts(n_t, n_c, p0, p0, n_experiments, rng)
    alternative = simulate_binary_counts(n_t, n_c, p1, p0, n_experiments, rng)
    cells["binary_cohen_h_10_90"] = checked(
        rate(reject(two_proportion_z(null[0], n_t, null[1], n_c, "cohen_h"), 0.05)), 0.05,
        rate(reject(two_proportion_z(alternative[0], n_t, alternative[1], n_c, "cohen_h"), 0.05)),
        statistical_power(BinaryMetric(p0, "cohen_h"), n_t, mde_rel=relative, allocation_ratio=9.0).power,
        n_treatment=n_t, n_control=n_c,
    )
    cells.update(multi_arm_cells(rng, n_experiments))
    # non-inferiority: H0 p1 - p0 <= -0.005 at p0 = 0.2, one-sided 0.025, unpooled Wald test of (d + m) / se
    p0_ni, margin = 0.2, 0.005
    design = sample_size(BinaryMetric(p0_ni, "unpooled"), mde_abs=0.0, alpha=0.025, power=0.9, alternative="larger",
                         noninferiority_margin=margin)
    n = design.n_treatment_required

    def ni_z(treated, control):
        p_t, p_c = treated / n, control / n
        return (p_t - p_c + margin) / np.sqrt(p_t * (1 - p_t) / n + p_c * (1 - p_c) / n)

    boundary = simulate_binary_counts(n, n, p0_ni - margin, p0_ni, n_experiments, rng)
    equal = simulate_binary_counts(n, n, p0_ni, p0_ni, n_experiments, rng)
    cells["binary_noninferiority_unpooled"] = checked(
        rate(reject(ni_z(*boundary), 0.025, "larger")), 0.025, rate(reject(ni_z(*equal), 0.025, "larger")),
        statistical_power(BinaryMetric(p0_ni, "unpooled"), n, mde_abs=0.0, alpha=0.025, alternative="larger",
                          noninferiority_margin=margin).power,
        n_per_arm=n, margin=margin,
    )
    # the same non-inferiority test planned with the default convention: the Farrington-Manning score test (null
    # variance at the rates that best fit the data on the boundary); statsmodels' power functions take no margin
    for baseline in (p0_ni, 0.02):
        metric = BinaryMetric(baseline)
        design = sample_size(metric, mde_abs=0.0, alpha=0.025, power=0.9, alternative="larger",
                             noninferiority_margin=margin)
        n = design.n_treatment_required
        boundary = simulate_binary_counts(n, n, baseline - margin, baseline, n_experiments, rng)
        equal = simulate_binary_counts(n, n, baseline, baseline, n_experiments, rng)
        cells[f"binary_noninferiority_score_p{baseline:g}"] = checked(
            rate(reject(two_proportion_z(boundary[0], n, boundary[1], n, null_difference=-margin), 0.025, "larger")),
            0.025,
            rate(reject(two_proportion_z(equal[0], n, equal[1], n, null_difference=-margin), 0.025, "larger")),
            statistical_power(metric, n, mde_abs=0.0, alpha=0.025, alternative="larger",
                              noninferiority_margin=margin).power,
            n_per_arm=n, margin=margin, analysis="Farrington-Manning score test",
        )
    # continuous t-test, d = 0.5
    design = sample_size(ContinuousMetric(1.0, method="t"), mde_abs=0.5)
    n = design.n_treatment_required
    critical = stats.t.isf(0.025, 2 * n - 2)
    cells["continuous_t_d_0.5"] = checked(
        rate(np.abs(simulate_t_tests(n, 0.0, n_experiments, rng)) >= critical), 0.05,
        rate(np.abs(simulate_t_tests(n, 0.5, n_experiments, rng)) >= critical),
        statistical_power(ContinuousMetric(1.0, method="t"), n, mde_abs=0.5).power, n_per_arm=n,
    )
    return cells


def multi_arm_cells(rng: np.random.Generator, n_experiments: int) -> dict:
    cells = {}
    p0, relative, arms = 0.05, 0.05, 3
    for correction in ("bonferroni", "holm"):
        design = sample_size(BinaryMetric(p0), mde_rel=relative, n_treatment_arms=arms, correction=correction)
        n = design.n_treatment_required
        control = rng.binomial(n, p0, size=(n_experiments, 1))
        null_arms = rng.binomial(n, p0, size=(n_experiments, arms))
        effect_arms = rng.binomial(n, p0 * (1 + relative), size=(n_experiments, arms))
        null_p = 2 * stats.norm.sf(np.abs(two_proportion_z(null_arms, n, control, n)))
        effect_p = 2 * stats.norm.sf(np.abs(two_proportion_z(effect_arms, n, control, n)))
        null_rejections = _multiple_test(null_p, 0.05, correction)
        effect_rejections = _multiple_test(effect_p, 0.05, correction)
        cells[f"binary_{arms}_arms_{correction}"] = checked(
            rate(null_rejections.any(axis=1)), 0.05, rate(effect_rejections[:, 0]), design.target_power,
            n_per_arm=n, note="type-I is the family-wise error under the global null; power is per arm with every "
            "arm carrying the effect; Holm is planned at alpha/m, so its power may exceed the plan",
            holm_or_bonferroni_power_at_least_plan=bool(effect_rejections[:, 0].mean() >= design.target_power - POWER_TOLERANCE),
        )
        if correction == "holm":  # Holm may only be above the plan
            cells[f"binary_{arms}_arms_{correction}"]["checks"]["power_within_2pts"] = bool(
                effect_rejections[:, 0].mean() >= design.target_power - POWER_TOLERANCE
            )
    return cells


def _multiple_test(p_values: np.ndarray, alpha: float, correction: str) -> np.ndarray:
    m = p_values.shape[1]
    if correction == "bonferroni":
        return p_values <= alpha / m
    order = np.argsort(p_values, axis=1)
    sorted_p = np.take_along_axis(p_values, order, axis=1)
    passes = sorted_p <= alpha / (m - np.arange(m))
    keep_going = np.cumprod(passes, axis=1).astype(bool)  # Holm stops at the first failure
    rejections = np.zeros_like(keep_going)
    np.put_along_axis(rejections, order, keep_going, axis=1)
    return rejections


# ----------------------------------------------------------------------------------------------- CUPED
def cuped_cell(rng: np.random.Generator, n_experiments: int) -> dict:
    model = CovariateOutcomeModel()
    outcome, covariate = model.draw((100_000,), rng)
    reduction = estimate_variance_reduction(
        outcome, covariate, kind="cuped", covariate_computed_at="2025-02-28T00:00:00+00:00",
        launch_at="2025-03-01T00:00:00+00:00",
    )
    metric = ContinuousMetric(float(outcome.std(ddof=1)))
    effect = 0.1
    design = sample_size(metric, mde_abs=effect, variance_factor=reduction.variance_factor)
    plain = sample_size(metric, mde_abs=effect)
    n = design.n_treatment_required
    raw_null, adjusted_null = simulate_cuped_experiments(model, n, 0.0, n_experiments, rng)
    raw_alt, adjusted_alt = simulate_cuped_experiments(model, n, effect, n_experiments, rng)
    return checked(
        rate(reject(adjusted_null, 0.05)), 0.05, rate(reject(adjusted_alt, 0.05)),
        statistical_power(metric, n, mde_abs=effect, variance_factor=reduction.variance_factor).power,
        n_per_arm=n, n_per_arm_without_cuped=plain.n_treatment_required,
        variance_reduction=reduction.to_dict(), true_correlation=model.correlation,
        unadjusted_power_at_cuped_n=rate(reject(raw_alt, 0.05)), unadjusted_type_i=rate(reject(raw_null, 0.05)),
    )


# ----------------------------------------------------------------------------------------------- ratio metric
def ratio_cell(rng: np.random.Generator, n_experiments: int) -> dict:
    model = ClickImpressionModel()
    metric = RatioMetric.from_units(*model.draw((200_000,), rng))
    lift = 0.15
    design = sample_size(metric, mde_rel=lift)
    n = design.n_treatment_required
    delta_null, naive_null = simulate_ratio_experiments(model, n, 0.0, n_experiments, rng)
    delta_alt, naive_alt = simulate_ratio_experiments(model, n, lift, n_experiments, rng)
    naive_type_i = rate(reject(naive_null, 0.05))
    cell = checked(
        rate(reject(delta_null, 0.05)), 0.05, rate(reject(delta_alt, 0.05)),
        statistical_power(metric, n, mde_rel=lift).power,
        n_users_per_arm=n, expected_clicks_per_arm=n * metric.moments.numerator_mean,
        ratio=metric.reference_value, delta_method_unit_variance=metric.moments.unit_variance,
        negative_control_impression_level_type_i=naive_type_i,
        negative_control_impression_level_power=rate(reject(naive_alt, 0.05)),
    )
    cell["checks"]["negative_control_inflates_type_i"] = naive_type_i["rate"] > 0.05 + TYPE_I_TOLERANCE
    return cell


# ----------------------------------------------------------------------------------------------- sequential
def sequential_cells(rng: np.random.Generator, n_experiments: int) -> dict:
    cells = {}
    p0, relative = 0.05, 0.1
    metric = BinaryMetric(p0)
    fixed = sample_size(metric, mde_rel=relative)
    for kind, looks in (("pocock", 5), ("obrien_fleming", 5), ("lan_demets_obf", 5), ("lan_demets_pocock", 5),
                        ("msprt", 5), ("msprt", 20)):
        design = sequential_design(kind, looks)
        n_max = math.ceil(fixed.n_treatment * design.inflation_factor)
        look_sizes = np.ceil(np.asarray(design.information_fractions) * n_max).astype(np.int64)
        bounds = np.asarray(design.boundaries)
        extra = {"n_looks": looks, "n_max_per_arm": n_max, "inflation_factor": design.inflation_factor,
                 "boundaries": list(design.boundaries), "fixed_n_per_arm": fixed.n_treatment_required}
        if kind == "msprt":
            # the always-valid test as run: the mixture likelihood ratio from the estimated difference and its
            # estimated standard error at every look, tau^2 = ratio * (planned variance at the maximum sample)
            p1 = p0 * (1 + relative)
            tau2 = design.mixture_variance_ratio * (p0 * (1 - p0) + p1 * (1 - p1)) / n_max
            null_reject = _msprt_rejections(
                *simulate_binary_look_differences(look_sizes, look_sizes, p0, p0, n_experiments, rng), tau2
            )
            alt_reject = _msprt_rejections(
                *simulate_binary_look_differences(look_sizes, look_sizes, p1, p0, n_experiments, rng), tau2
            )
            cell = checked(rate(null_reject), design.type_i_error, rate(alt_reject), design.power,
                           recursion_type_i_error=design.type_i_error, mixture_variance=tau2, **extra)
            cell["checks"]["type_i_at_most_nominal_plus_1pt"] = rate(null_reject)["rate"] <= 0.05 + TYPE_I_TOLERANCE
            cell["note"] = ("the mSPRT is conservative at finitely many looks: type-I is compared with its level at "
                            "these looks from the recursion and with the nominal 0.05 as an upper bound")
        else:
            null_z = simulate_binary_looks(look_sizes, look_sizes, p0, p0, n_experiments, rng)
            alt_z = simulate_binary_looks(look_sizes, look_sizes, p0 * (1 + relative), p0, n_experiments, rng)
            cell = checked(rate(np.any(np.abs(null_z) >= bounds, axis=1)), 0.05,
                           rate(np.any(alt_z >= bounds, axis=1)), design.power, **extra)
        cells[f"{kind}_K{looks}"] = cell
    for looks in (5, 20):
        fractions = np.arange(1, looks + 1) / looks
        look_sizes = np.ceil(fractions * fixed.n_treatment_required).astype(np.int64)
        null_z = simulate_binary_looks(look_sizes, look_sizes, p0, p0, n_experiments, rng)
        naive = rate(np.any(np.abs(null_z) >= stats.norm.isf(0.025), axis=1))
        cells[f"negative_control_naive_peeking_K{looks}"] = {
            "type_i_error": naive, "nominal_alpha": 0.05, "recursion_type_i_error": naive_peeking_type_i_error(looks),
            "checks": {"inflates_type_i": naive["rate"] > 0.05 + TYPE_I_TOLERANCE},
        }
    return cells


def _msprt_rejections(difference: np.ndarray, standard_error: np.ndarray, tau2: float) -> np.ndarray:
    return np.any(msprt_likelihood_ratio(difference, standard_error, tau2) >= 1 / 0.05, axis=1)


# ----------------------------------------------------------------------------------------------- offline to plan
def offline_cell(rng: np.random.Generator, n_scenarios: int) -> dict:
    n_candidates, prior_mean, prior_sd, offline_se = 5, 0.02, 0.01, 0.01
    truth, estimates = simulate_offline_selection(n_scenarios, n_candidates, prior_mean, prior_sd, offline_se, rng)
    winner = np.argmax(estimates, axis=1)
    rows = np.arange(n_scenarios)
    true_winner, raw_winner = truth[rows, winner], estimates[rows, winner]
    metric = ContinuousMetric(1.0)
    planning_started = time.perf_counter()
    shrunk, shrunk_se, n_raw, n_shrunk, assurances, plug_in, plug_in_se = (np.full(n_scenarios, np.nan) for _ in range(7))
    ses = np.full(n_candidates, offline_se)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        for i in range(n_scenarios):  # the planning API is scalar; the experiments below are vectorised
            effect = shrink_uplift(raw_winner[i], offline_se, candidate_estimates=estimates[i],
                                   candidate_standard_errors=np.full(n_candidates, offline_se), selected_as_best=True)
            shrunk[i], shrunk_se[i] = effect.estimate, effect.standard_error
            # the plug-in alternative (DerSimonian-Laird tau^2, mu uncertainty only) for comparison
            mu, tau2, mu_variance = empirical_bayes_prior(estimates[i], ses)
            weight = tau2 / (tau2 + offline_se**2)
            plug_in[i] = mu + weight * (raw_winner[i] - mu)
            plug_in_se[i] = math.sqrt(weight * offline_se**2 + (1 - weight) ** 2 * mu_variance)
            if raw_winner[i] > 0:
                n_raw[i] = sample_size(metric, mde_abs=raw_winner[i]).n_treatment_required
            if effect.estimate > 0:
                design = sample_size(metric, mde_abs=effect.estimate)
                n_shrunk[i] = design.n_treatment_required
                assurances[i] = assurance(metric, design.settings, n_shrunk[i], effect.estimate, effect.standard_error)
    planning_seconds = time.perf_counter() - planning_started
    critical = stats.norm.isf(0.025)

    def online_success(n: np.ndarray) -> np.ndarray:
        planned = np.isfinite(n)
        z = true_winner[planned] / np.sqrt(2.0 / n[planned]) + rng.standard_normal(planned.sum())
        return z >= critical

    raw_success = online_success(n_raw)
    shrunk_success = online_success(n_shrunk)
    planned = np.isfinite(n_shrunk)
    mean_assurance = float(np.nanmean(assurances))
    cell = {
        "scenarios": n_scenarios,
        "candidates": n_candidates,
        "truth": {"prior_mean": prior_mean, "prior_sd": prior_sd, "offline_se": offline_se},
        "winner_bias_raw": float(np.mean(raw_winner - true_winner)),
        "winner_bias_shrunk": float(np.mean(shrunk - true_winner)),
        "winner_rmse_raw": float(np.sqrt(np.mean((raw_winner - true_winner) ** 2))),
        "winner_rmse_shrunk": float(np.sqrt(np.mean((shrunk - true_winner) ** 2))),
        "shrunk_interval_coverage": rate(np.abs(shrunk - true_winner) <= 1.959964 * shrunk_se),
        "plug_in_empirical_bayes_bias": float(np.mean(plug_in - true_winner)),
        "plug_in_empirical_bayes_interval_coverage": rate(np.abs(plug_in - true_winner) <= 1.959964 * plug_in_se),
        "realised_power_planned_on_raw_estimate": rate(raw_success),
        "realised_power_planned_on_shrunk_estimate": rate(shrunk_success),
        "mean_assurance_of_shrunk_plans": mean_assurance,
        "median_n_raw": float(np.nanmedian(n_raw)),
        "median_n_shrunk": float(np.nanmedian(n_shrunk)),
        "share_not_planned_shrunk_effect_not_positive": float(1 - planned.mean()),
        "planning_seconds": planning_seconds,
        "note": "power 0.8 is what a plan promises at its point estimate; the assurance is what it promises over "
        "the effect's uncertainty, so realised power should match the mean assurance, not 0.8",
    }
    cell["checks"] = {
        "raw_plans_underdeliver": cell["realised_power_planned_on_raw_estimate"]["rate"] < 0.8 - POWER_TOLERANCE,
        "assurance_calibrated_within_2pts": abs(shrunk_success.mean() - mean_assurance) <= POWER_TOLERANCE,
        "shrinkage_removes_most_winner_bias": abs(cell["winner_bias_shrunk"]) < 0.25 * abs(cell["winner_bias_raw"]),
    }
    return cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20_000, help="experiments per cheap cell")
    parser.add_argument("--unit-experiments", type=int, default=10_000, help="experiments per per-user cell")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    sections, timings = {}, {}
    for name, run in (
        ("plain", lambda: plain_cells(rng, args.experiments)),
        ("cuped", lambda: {"cuped_continuous": cuped_cell(rng, args.unit_experiments)}),
        ("ratio", lambda: {"ratio_clicks_per_impression": ratio_cell(rng, args.unit_experiments)}),
        ("sequential", lambda: sequential_cells(rng, args.experiments)),
        ("offline_to_plan", lambda: {"winner_of_5": offline_cell(rng, args.unit_experiments)}),
    ):
        cell_started = time.perf_counter()
        sections[name] = run()
        timings[name] = time.perf_counter() - cell_started
        print(f"{name}: {timings[name]:.1f} s", flush=True)
    failures = [
        f"{section}/{cell}/{check}"
        for section, cells in sections.items()
        for cell, content in cells.items()
        for check, passed in content.get("checks", {}).items()
        if not passed
    ]
    machine = machine_facts(("numpy", "scipy", "statsmodels", "pandas"))
    payload = {
        "machine": machine,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "tolerances": {"type_i_error": TYPE_I_TOLERANCE, "power": POWER_TOLERANCE},
        "runtime_seconds": time.perf_counter() - started,
        "section_seconds": timings,
        "results": sections,
        "failed_checks": failures,
        "all_checks_pass": not failures,
    }
    path = write_json_atomic(RESULTS / "planning_simulation.json", payload)
    print(f"wrote {path} in {payload['runtime_seconds']:.0f} s; failed checks: {failures or 'none'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

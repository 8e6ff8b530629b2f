"""Variance reduction, ratio metrics, offline-to-plan (shrinkage, assurance), duration and SRM."""

from __future__ import annotations

import json
import math
import warnings
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import integrate, stats

from causalrec.exceptions import CausalrecWarning, ValidationError
from causalrec.planning import (
    BinaryMetric,
    ContinuousMetric,
    RatioMetric,
    ShrunkEffect,
    assurance,
    cuped_adjust,
    empirical_bayes_prior,
    estimate_variance_reduction,
    experiment_duration,
    hierarchical_normal_posterior,
    impression_level_variance,
    maximum_assurance,
    plan_experiment,
    plan_from_offline,
    read_offline_evaluation,
    sample_ratio_mismatch,
    sample_size,
    sample_size_for_assurance,
    shrink_comparison,
    shrink_uplift,
    winners_curse_bias,
)
from causalrec.planning.simulation import (
    ClickImpressionModel,
    CovariateOutcomeModel,
    reject,
    simulate_cuped_experiments,
    simulate_ratio_experiments,
)

LAUNCH = datetime(2025, 3, 1, tzinfo=UTC)
BEFORE = datetime(2025, 2, 20, tzinfo=UTC)
AFTER = datetime(2025, 3, 2, tzinfo=UTC)


def offline_payload(differences=(0.0015, 0.0008, 0.0002), ses=(0.0006, 0.0006, 0.0005), estimator="dr"):
    comparisons = [
        {"policy": f"p{i}", "baseline": "prod", "estimator": estimator, "difference": d, "se": s,
         "ci_low": d - 1.96 * s, "ci_high": d + 1.96 * s}
        for i, (d, s) in enumerate(zip(differences, ses, strict=True))
    ]
    estimates = [{"policy": "prod", "estimator": estimator, "value": 0.05, "se": 0.001, "ci_low": 0.048,
                  "ci_high": 0.052}, {"estimator": "dm", "value": 0.051, "se": None, "ci_low": None, "ci_high": None}]
    return {"estimates": estimates, "comparisons": comparisons, "other": "ignored"}


# ------------------------------------------------------------------------------- ratio metrics
def test_delta_method_variance_matches_the_spread_of_simulated_ratios():
    model = ClickImpressionModel()
    rng = np.random.default_rng(5)
    clicks, impressions = model.draw((200_000,), rng)
    metric = RatioMetric.from_units(clicks, impressions)
    n_users, n_experiments = 800, 1500
    clicks_sim, impressions_sim = model.draw((n_experiments, n_users), rng)
    ratios = clicks_sim.sum(axis=1) / impressions_sim.sum(axis=1)
    empirical = n_users * ratios.var(ddof=1)
    assert abs(empirical / metric.moments.unit_variance - 1) <= 4 * math.sqrt(2 / n_experiments)
    naive = n_users * impression_level_variance(metric.reference_value, n_users * metric.moments.denominator_mean)
    assert metric.moments.unit_variance > 1.5 * naive  # the impression-level variance is far too small


def test_small_simulation_of_the_ratio_metric_test():
    """1,000 simulated experiments (not timed): delta-method test holds its level, the naive one does not."""
    model = ClickImpressionModel()
    rng = np.random.default_rng(8)
    metric = RatioMetric.from_units(*model.draw((100_000,), rng))
    n = sample_size(metric, mde_rel=0.2).n_treatment_required
    delta_null, naive_null = simulate_ratio_experiments(model, n, 0.0, 1000, rng)
    delta_alt, _ = simulate_ratio_experiments(model, n, 0.2, 1000, rng)
    assert abs(reject(delta_null, 0.05).mean() - 0.05) <= 4 * math.sqrt(0.05 * 0.95 / 1000)
    assert abs(reject(delta_alt, 0.05).mean() - 0.8) <= 4 * math.sqrt(0.8 * 0.2 / 1000)
    assert reject(naive_null, 0.05).mean() > 0.12


# ------------------------------------------------------------------------------- CUPED / CUPAC
def test_cuped_adjustment_removes_rho_squared_of_the_variance():
    rng = np.random.default_rng(1)
    outcome, covariate = CovariateOutcomeModel().draw((5000,), rng)
    adjusted = cuped_adjust(outcome, covariate)
    rho = np.corrcoef(outcome, covariate)[0, 1]
    assert adjusted.var() == pytest.approx(outcome.var() * (1 - rho**2), rel=1e-10)  # exact sample identity
    assert adjusted.mean() == pytest.approx(outcome.mean(), abs=1e-12)


def test_variance_reduction_interval_agrees_with_fisher_for_normal_data():
    rng = np.random.default_rng(2)
    covariate = rng.standard_normal(20_000)
    outcome = 0.6 * covariate + 0.8 * rng.standard_normal(20_000)
    estimate = estimate_variance_reduction(outcome, covariate, covariate_computed_at=BEFORE, launch_at=LAUNCH)
    rho = estimate.correlation
    fisher_half_width = stats.norm.isf(0.025) / math.sqrt(20_000 - 3)
    ours = (math.atanh(estimate.correlation_high) - math.atanh(estimate.correlation_low)) / 2
    assert ours == pytest.approx(fisher_half_width, rel=0.05)
    assert estimate.variance_factor == pytest.approx(1 - rho**2, rel=1e-12)
    assert estimate.variance_factor_low < estimate.variance_factor < estimate.variance_factor_high
    assert estimate.pre_exposure_verified


def test_variance_reduction_interval_covers_on_skewed_data():
    model = CovariateOutcomeModel()
    rng = np.random.default_rng(4)
    repetitions = 300
    outcomes, covariates = model.draw((repetitions, 400), rng)
    covered = 0
    for outcome, covariate in zip(outcomes, covariates, strict=True):
        estimate = estimate_variance_reduction(outcome, covariate, covariate_computed_at=BEFORE, launch_at=LAUNCH)
        covered += estimate.correlation_low <= model.correlation <= estimate.correlation_high
    assert abs(covered / repetitions - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / repetitions)


def test_pre_exposure_rule_is_enforced():
    data = np.arange(10.0), np.arange(10.0) ** 1.5
    with pytest.raises(ValidationError) as caught:
        estimate_variance_reduction(*data, covariate_computed_at=AFTER, launch_at=LAUNCH)
    assert caught.value.field == "covariate_computed_at" and "frozen before launch" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        estimate_variance_reduction(*data, kind="cupac", covariate_computed_at=BEFORE, model_frozen_at=LAUNCH,
                                    launch_at=LAUNCH)
    assert caught.value.field == "model_frozen_at"
    with pytest.raises(ValidationError) as caught:
        estimate_variance_reduction(*data, kind="cupac", covariate_computed_at=BEFORE, launch_at=LAUNCH)
    assert caught.value.field == "model_frozen_at"
    with pytest.raises(ValidationError):  # an acknowledgement cannot override a timestamp after launch
        estimate_variance_reduction(*data, covariate_computed_at=AFTER, launch_at=LAUNCH, acknowledge_pre_exposure=True)
    with pytest.raises(ValidationError):  # naive vs aware timestamps
        estimate_variance_reduction(*data, covariate_computed_at="2025-02-01", launch_at=LAUNCH)
    with pytest.warns(CausalrecWarning):
        acknowledged = estimate_variance_reduction(*data, acknowledge_pre_exposure=True)
    assert not acknowledged.pre_exposure_verified
    verified = estimate_variance_reduction(*data, kind="cupac", covariate_computed_at="2025-02-20T00:00:00+00:00",
                                           model_frozen_at="2025-02-01T00:00:00+00:00", launch_at=LAUNCH)
    assert verified.pre_exposure_verified and verified.kind == "cupac"


def test_small_simulation_of_a_cuped_plan():
    """1,000 simulated experiments (not timed): the CUPED plan reaches its power; without CUPED it would not."""
    model = CovariateOutcomeModel()
    rng = np.random.default_rng(6)
    outcome, covariate = model.draw((50_000,), rng)
    reduction = estimate_variance_reduction(outcome, covariate, covariate_computed_at=BEFORE, launch_at=LAUNCH)
    plan = plan_experiment(ContinuousMetric(float(outcome.std())), mde_abs=0.15, variance_reduction=reduction)
    n = plan.max_n_treatment
    ratio = plan.n_treatment_without_variance_reduction / plan.design.n_treatment
    assert ratio == pytest.approx(1 / reduction.variance_factor, rel=1e-12) and ratio > 1.8  # rho ~ 0.71
    raw, adjusted = simulate_cuped_experiments(model, n, 0.15, 1000, rng)
    assert abs(reject(adjusted, 0.05).mean() - 0.8) <= 4 * math.sqrt(0.16 / 1000)
    assert reject(raw, 0.05).mean() < 0.6
    raw_null, adjusted_null = simulate_cuped_experiments(model, n, 0.0, 1000, rng)
    assert abs(reject(adjusted_null, 0.05).mean() - 0.05) <= 4 * math.sqrt(0.0475 / 1000)


# ------------------------------------------------------------------------------- offline input and shrinkage
def test_reading_an_offline_evaluation(tmp_path):
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(offline_payload()))
    evaluation = read_offline_evaluation(path)
    assert len(evaluation.comparisons) == 3 and evaluation.estimates[1].se is None
    assert evaluation.source == str(path)
    broken = offline_payload()
    broken["comparisons"][1]["se"] = -1.0
    with pytest.raises(ValidationError) as caught:
        read_offline_evaluation(broken)
    assert caught.value.field == "comparisons.se" and caught.value.row == 1
    del broken["comparisons"][2]["difference"]
    broken["comparisons"][1]["se"] = 0.1
    with pytest.raises(ValidationError) as caught:
        read_offline_evaluation(broken)
    assert caught.value.field == "comparisons.difference" and caught.value.row == 2
    with pytest.raises(ValidationError) as caught:
        read_offline_evaluation({"winner": "p0"})
    assert caught.value.field == "comparisons"


def test_reading_a_selection_leaderboard_without_estimates():
    # the shape of causalrec.selection's to_dict(): comparisons only, the baseline listed against itself
    payload = {"winner": "m1", "baseline": "logging", "comparisons": [
        {"policy": "logging", "baseline": "logging", "estimator": "dr", "difference": 0.0, "se": 0.0,
         "ci_low": 0.0, "ci_high": 0.0},
        {"policy": "m1", "baseline": "logging", "estimator": "dr", "difference": 0.002, "se": 0.0008,
         "ci_low": 0.0004, "ci_high": 0.0036},
        {"policy": "m2", "baseline": "logging", "estimator": "dr", "difference": 0.001, "se": 0.0008,
         "ci_low": -0.0006, "ci_high": 0.0026},
    ]}
    evaluation = read_offline_evaluation(payload)
    assert [c.policy for c in evaluation.comparisons] == ["m1", "m2"] and evaluation.estimates == ()
    effect = shrink_comparison(evaluation)
    assert effect.policy == "m1" and effect.method == "winners_curse_bootstrap" and effect.estimate < 0.002


def test_an_interval_below_minus_the_baseline_rate_gives_no_finite_low_end_instead_of_an_error():
    # Open Bandit scale: a 0.38% click rate and an offline uplift whose interval reaches far below zero.
    payload = {"baseline": "logging", "comparisons": [
        {"policy": "m1", "baseline": "logging", "estimator": "auto", "difference": 0.002, "se": 0.003,
         "ci_low": -0.004, "ci_high": 0.008},
        {"policy": "m2", "baseline": "logging", "estimator": "auto", "difference": 0.001, "se": 0.003,
         "ci_low": -0.005, "ci_high": 0.007},
    ]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        plan = plan_from_offline(payload, BinaryMetric(baseline=0.0038), daily_eligible_traffic=100_000)
    assert any("reaches no improvement" in w for w in plan.warnings)
    assert math.isfinite(plan.design.n_treatment)


def test_a_plan_for_a_policy_whose_estimate_is_flagged_unreliable_says_so():
    # causalrec's selection and comparison JSON carry each candidate's reliability flag and ESS (the demo's leading
    # candidate on Open Bandit rests on about four effective clicks).
    payload = {"baseline": "logging", "comparisons": [
        {"policy": "m1", "baseline": "logging", "estimator": "dr", "difference": 0.004, "se": 0.002,
         "ci_low": 0.0, "ci_high": 0.008, "reliable": False, "ess": 278.0},
        {"policy": "m2", "baseline": "logging", "estimator": "dr", "difference": 0.002, "se": 0.001,
         "ci_low": 0.0, "ci_high": 0.004, "reliable": True, "ess": 9585.0},
        {"policy": "m3", "baseline": "logging", "estimator": "dr", "difference": 0.001, "se": 0.001,
         "ci_low": -0.001, "ci_high": 0.003},
    ]}
    evaluation = read_offline_evaluation(payload)
    assert [(c.reliable, c.ess) for c in evaluation.comparisons] == [(False, 278.0), (True, 9585.0), (None, None)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        flagged = {policy: plan_from_offline(payload, BinaryMetric(baseline=0.05), policy=policy).warnings
                   for policy in ("m1", "m2", "m3")}
    assert [w for w in flagged["m1"] if "'m1', the policy planned for, is flagged unreliable (effective sample "
                                        "size 278)" in w]
    assert not [w for w in (*flagged["m2"], *flagged["m3"]) if "unreliable" in w]
    for bad, field in (({"reliable": "no"}, "comparisons.reliable"), ({"ess": -1.0}, "comparisons.ess"),
                       ({"ess": True}, "comparisons.ess")):
        broken = {"comparisons": [dict(payload["comparisons"][0], **bad)]}
        with pytest.raises(ValidationError) as caught:
            read_offline_evaluation(broken)
        assert caught.value.field == field and caught.value.row == 0


def test_choosing_a_comparison():
    evaluation = read_offline_evaluation(offline_payload())
    effect = shrink_comparison(evaluation)
    assert effect.policy == "p0" and effect.selected_as_best and effect.method == "empirical_bayes"
    assert shrink_comparison(evaluation, policy="p2").selected_as_best is False
    mixed = offline_payload()
    mixed["comparisons"].append(dict(mixed["comparisons"][0], estimator="ipw"))
    with pytest.raises(ValidationError) as caught:
        shrink_comparison(read_offline_evaluation(mixed))
    assert caught.value.field == "estimator"
    with pytest.raises(ValidationError) as caught:
        shrink_comparison(evaluation, policy="unknown")
    assert caught.value.field == "policy"


def test_hierarchical_posterior_against_direct_integration():
    # Independent oracle: the normal hierarchical model (Gelman et al., BDA 5.4) integrated over tau with quad.
    d = np.array([0.0015, 0.0008, 0.0002, 0.0011])
    s = np.array([0.0006, 0.0006, 0.0005, 0.0007])

    def pieces(tau: float):
        w = 1 / (s**2 + tau**2)
        mu_variance = 1 / w.sum()
        mu_hat = mu_variance * (w * d).sum()
        density = math.sqrt(mu_variance) * np.prod(np.sqrt(w)) * math.exp(-0.5 * (w * (d - mu_hat) ** 2).sum())
        b = s[0] ** 2 / (s[0] ** 2 + tau**2)
        mean = (1 - b) * d[0] + b * mu_hat
        return density, mean, (1 - b) * s[0] ** 2 + b**2 * mu_variance

    def integral(function):
        return integrate.quad(lambda t: function(*pieces(t)), 0, np.inf, epsabs=0, epsrel=1e-10, limit=500)[0]

    norm = integral(lambda p, m, v: p)
    mean = integral(lambda p, m, v: p * m) / norm
    variance = integral(lambda p, m, v: p * (v + m**2)) / norm - mean**2
    effect = shrink_uplift(d[0], s[0], candidate_estimates=d, candidate_standard_errors=s, selected_as_best=True)
    assert effect.method == "empirical_bayes"
    assert effect.estimate == pytest.approx(mean, rel=1e-3)
    assert effect.standard_error == pytest.approx(math.sqrt(variance), rel=1e-3)
    assert empirical_bayes_prior(d, s)[0] < effect.estimate < d[0]  # shrunk towards the candidates' mean


def test_hierarchical_posterior_limits():
    spread = np.array([-1.0, 0.0, 1.0]) * 1000.0  # candidates far apart: (almost) no shrinkage
    mean, sd, _, _ = hierarchical_normal_posterior(spread, np.ones(3), 2)
    assert mean == pytest.approx(1000.0, rel=1e-3) and sd == pytest.approx(1.0, rel=0.01)
    same = np.array([0.5, 0.5, 0.5, 0.5, 0.5])  # identical candidates: pooled towards their mean, narrower
    mean, sd, prior_mean, _ = hierarchical_normal_posterior(same, np.ones(5), 0)
    assert mean == pytest.approx(0.5, abs=1e-12) and prior_mean == pytest.approx(0.5, abs=1e-12) and sd < 1.0


def test_user_prior_posterior_and_single_estimate_warning():
    effect = shrink_uplift(0.002, 0.001, prior_mean=0.0, prior_sd=0.001)
    assert effect.estimate == pytest.approx(0.001, rel=1e-12)
    assert effect.standard_error == pytest.approx(0.001 / math.sqrt(2), rel=1e-12)
    with pytest.warns(CausalrecWarning):
        single = shrink_uplift(0.002, 0.001)
    assert single.method == "none" and single.estimate == 0.002


def test_winners_curse_bias_of_two_equal_candidates():
    # E[max(X1, X2)] for iid N(0, s^2) is s / sqrt(pi) (closed form)
    bias = winners_curse_bias([0.0, 0.0], [0.01, 0.01], n_draws=400_000, seed=1)
    assert bias == pytest.approx(0.01 / math.sqrt(math.pi), rel=0.01)
    effect = shrink_uplift(0.003, 0.001, candidate_estimates=[0.003, 0.0029], candidate_standard_errors=[0.001, 0.001],
                           selected_as_best=True)
    assert effect.method == "winners_curse_bootstrap" and effect.estimate < 0.003


# ------------------------------------------------------------------------------- assurance
def test_assurance_matches_the_closed_form():
    # O'Hagan, Stevens and Campbell (2005): for a z-test, E[Phi(theta sqrt(n/v) - z)] over theta ~ N(m, s^2)
    # is Phi((m sqrt(n/v) - z) / sqrt(1 + s^2 n / v)).
    metric = ContinuousMetric(2.0)
    design = sample_size(metric, mde_abs=0.1, alternative="larger")
    n, v = 3000.0, 2 * 2.0**2
    for mean, sd in ((0.1, 0.05), (0.03, 0.08), (-0.02, 0.01)):
        closed = stats.norm.cdf((mean * math.sqrt(n / v) - stats.norm.isf(0.05)) / math.sqrt(1 + sd**2 * n / v))
        assert assurance(metric, design.settings, n, mean, sd) == pytest.approx(closed, rel=1e-9, abs=1e-14)
    assert maximum_assurance(design.settings, 0.1, 0.05) == pytest.approx(stats.norm.cdf(2.0), rel=1e-12)
    n_target = sample_size_for_assurance(metric, design.settings, 0.9, 0.1, 0.05)
    assert assurance(metric, design.settings, n_target, 0.1, 0.05) == pytest.approx(0.9, abs=1e-8)
    assert sample_size_for_assurance(metric, design.settings, 0.99, 0.1, 0.05) is None  # beyond 0.977


def test_a_target_assurance_just_below_its_limit_is_called_out_of_practical_reach():
    # The closed form above tends to Phi(m / s) from below; 1e-7 under that limit needs about 3e15 units per arm
    # (the search stops at 1e14), 0.01 under it a finite sample. The warning must not read "out of reach
    # (maximum 0.977)" for a target of 0.9772 that is below the maximum.
    metric = ContinuousMetric(2.0)
    limit = stats.norm.cdf(2.0)
    effect = ShrunkEffect(policy="p", raw_estimate=0.1, raw_standard_error=0.05, n_candidates=1,
                          selected_as_best=False, method="prior", prior_mean=0.0, prior_sd=1.0, estimate=0.1,
                          standard_error=0.05, credible_level=0.95, interval_low=0.002, interval_high=0.198,
                          note="a fixed effect for the test")
    near = plan_experiment(metric, effect=effect, alternative="larger", target_assurance=limit - 1e-7)
    assert near.n_treatment_for_target_assurance is None
    assert any("out of practical reach" in w and f"{limit:.4f}" in w for w in near.warnings), near.warnings
    reachable = plan_experiment(metric, effect=effect, alternative="larger", target_assurance=limit - 0.01)
    assert reachable.n_treatment_for_target_assurance is not None
    assert not any("reach" in w for w in reachable.warnings)
    beyond = plan_experiment(metric, effect=effect, alternative="larger", target_assurance=0.99)
    assert any("is out of reach (maximum 0.977" in w for w in beyond.warnings), beyond.warnings


def test_assurance_of_a_binary_metric_is_below_the_power_at_the_mean():
    metric = BinaryMetric(0.05)
    design = sample_size(metric, mde_abs=0.001)
    value = assurance(metric, design.settings, design.n_treatment, 0.001, 0.0004)
    assert 0.5 < value < 0.8


# ------------------------------------------------------------------------------- plans
def test_plan_from_offline_names_convention_and_assumptions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # three candidates: shrinkage needs no warning
        plan = plan_from_offline(offline_payload(), BinaryMetric(0.05), sequential="lan_demets_obf",
                                 daily_eligible_traffic=200_000, round_to_weeks=True)
    payload = json.loads(json.dumps(plan.to_dict()))
    assert payload["variance_convention"] == "pooled_null_unpooled_alt"
    assert payload["design"]["settings"]["variance_convention_description"]
    assert any("hierarchical normal model" in a for a in payload["assumptions"])
    assert plan.effect.estimate < plan.effect.raw_estimate
    assert plan.n_treatment_unshrunk < plan.design.n_treatment  # planning on the raw winner would under-size
    assert plan.max_n_treatment == math.ceil(plan.design.n_treatment * plan.sequential.inflation_factor)
    assert plan.n_treatment_at_interval_high < plan.design.n_treatment < plan.n_treatment_at_interval_low
    assert plan.duration.days % 7 == 0 and plan.duration.weeks * 7 == plan.duration.days
    assert 0 < plan.assurance < plan.maximum_assurance <= 1
    assert "ExperimentPlan" in plan.summary() and "Look 5" in plan.summary()


def test_plan_refuses_an_offline_effect_that_is_not_an_improvement():
    payload = offline_payload(differences=(-0.001, -0.002, -0.0015))
    with pytest.raises(ValidationError) as caught:
        plan_from_offline(payload, BinaryMetric(0.05))
    assert caught.value.field == "effect"


def test_plan_with_available_sample_and_cuped_rho():
    plan = plan_experiment(BinaryMetric(0.05, "cohen_h"), available_n_treatment=1_000_000)
    assert plan.design.n_treatment == pytest.approx(1_000_000, rel=1e-9)
    assert plan.max_n_treatment == 1_000_000
    assert plan.power_at_available_n == pytest.approx(0.8, abs=1e-9)
    reduced = plan_experiment(ContinuousMetric(1.0), mde_abs=0.1, cuped_rho=0.5)
    assert reduced.design.n_treatment == pytest.approx(0.75 * reduced.n_treatment_without_variance_reduction, rel=1e-12)
    assert reduced.expected_allocation == (0.5, 0.5)


# ------------------------------------------------------------------------------- duration and SRM
def test_duration_in_days_and_weeks():
    duration = experiment_duration(1_505_368, 200_000)
    assert duration.days == 8 and duration.weeks is None
    assert duration.days_exact == pytest.approx(1_505_368 / 200_000)
    weekly = experiment_duration(1_505_368, 200_000, traffic_fraction=0.5, round_to_weeks=True)
    assert weekly.days == 21 and weekly.weeks == 3  # 15.05 days -> 3 whole weeks
    with pytest.raises(ValidationError) as caught:
        experiment_duration(10, 100, traffic_fraction=1.5)
    assert caught.value.field == "traffic_fraction"


def test_sample_ratio_mismatch_chi_square():
    observed, fractions = [50_000, 51_500], [0.5, 0.5]
    result = sample_ratio_mismatch(observed, fractions)
    oracle = stats.chisquare(observed, np.sum(observed) * np.asarray(fractions))
    assert result.statistic == pytest.approx(oracle.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(oracle.pvalue, rel=1e-10)
    assert result.mismatch and "do not read" in result.verdict
    assert not sample_ratio_mismatch([10_020, 89_980], [0.1, 0.9]).mismatch
    with pytest.raises(ValidationError) as caught:
        sample_ratio_mismatch([10, 20], [0.5, 0.6])
    assert caught.value.field == "expected_fractions"


def test_an_unshrunk_offline_estimate_is_reported_once_by_the_plan(caplog):
    # One candidate: nothing to shrink towards. shrink_uplift alone warns; inside plan_from_offline the plan's
    # warnings (logged once) state it, and a second CausalrecWarning in other words used to come on top.
    payload = {"baseline": "logging", "comparisons": [
        {"policy": "m1", "baseline": "logging", "estimator": "auto", "difference": 0.01, "se": 0.002,
         "ci_low": 0.006, "ci_high": 0.014}]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level("WARNING", logger="causalrec"):
            plan = plan_from_offline(payload, BinaryMetric(baseline=0.05))
    unshrunk = [w for w in plan.warnings if "unshrunk offline estimate" in w]
    assert len(unshrunk) == 1
    assert not [w for w in caught if "unshrunk offline estimate" in str(w.message)]
    assert sum("unshrunk offline estimate" in r.getMessage() for r in caplog.records) == 1
    with pytest.warns(CausalrecWarning, match="unshrunk offline estimate"):
        shrink_uplift(0.01, 0.002)  # called on its own, the function still says so


def test_the_plan_summary_states_the_hypothesis_arms_and_allocation_it_was_sized_for():
    noninferiority = plan_experiment(BinaryMetric(0.05), mde_abs=0.0, alternative="larger", noninferiority_margin=0.001,
                                     n_treatment_arms=2, allocation_ratio=2.0)
    rows = dict(noninferiority.to_frame().itertuples(index=False, name=None))
    assert rows["null hypothesis (non-inferiority margin)"] == "effect <= -0.001"
    assert rows["treatment arms (correction)"] == "2 (bonferroni)"
    assert rows["allocation ratio (control / treatment arm)"] == 2.0
    assert rows["alpha per comparison"] == pytest.approx(0.025)
    lower_is_better = plan_experiment(BinaryMetric(0.05), mde_abs=0.0, alternative="smaller",
                                      noninferiority_margin=0.002)
    assert dict(lower_is_better.to_frame().itertuples(index=False, name=None))[
        "null hypothesis (non-inferiority margin)"] == "effect >= 0.002"
    plain = dict(plan_experiment(BinaryMetric(0.05), mde_rel=0.02).to_frame().itertuples(index=False, name=None))
    assert not {"null hypothesis (non-inferiority margin)", "treatment arms (correction)",
                "allocation ratio (control / treatment arm)"} & set(plain)

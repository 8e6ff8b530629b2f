"""The minimal OPE core: closed-form estimates, cross-fitting, intervals, diagnostics and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import Memoriser
from sklearn.base import BaseEstimator, RegressorMixin

from causalrec import (
    CausalrecWarning,
    LoggedFeedback,
    ValidationError,
    compare_policies,
    evaluate_policy,
    policy,
    simulate,
)
from causalrec.ope.evaluate import unsupported_mass
from causalrec.ope.reward_model import cross_fit_rewards


class ActionValueModel(BaseEstimator, RegressorMixin):
    """Predicts a fixed value per action, read from the one-hot action block of the design matrix."""

    def __init__(self, values=(0.2, 0.5, 0.9), context_dim=1):
        self.values = values
        self.context_dim = context_dim

    def fit(self, features, reward):
        self.fitted_ = True
        return self

    def predict(self, features):
        block = features[:, self.context_dim : self.context_dim + len(self.values)]
        return np.asarray(block @ np.asarray(self.values)).ravel()


@pytest.fixture
def small():
    feedback = LoggedFeedback(
        action=[0, 1, 2, 1, 0, 2], reward=[1, 0, 1, 1, 0, 0], pscore=[0.5, 0.25, 0.25, 0.25, 0.5, 0.25],
        context=np.zeros((6, 1)), n_actions=3,
    )
    target = np.array([[0.2, 0.3, 0.5]] * 3 + [[0.6, 0.2, 0.2]] * 3)
    return feedback, target


def test_estimates_match_closed_forms(small):
    feedback, target = small
    result = evaluate_policy(feedback, target, reward_model=ActionValueModel(), n_folds=2, random_state=0)
    action, reward, pscore = feedback.action, feedback.reward, feedback.pscore
    weight = target[np.arange(6), action] / pscore
    values = np.array([0.2, 0.5, 0.9])
    q_logged = values[action]
    q_target = target @ values
    assert result["ips"].value == pytest.approx(np.mean(weight * reward), rel=1e-12)
    assert result["snips"].value == pytest.approx(np.sum(weight * reward) / np.sum(weight), rel=1e-12)
    assert result["dm"].value == pytest.approx(np.mean(q_target), rel=1e-12)
    assert result["dr"].value == pytest.approx(np.mean(q_target + weight * (reward - q_logged)), rel=1e-12)
    # Analytic standard errors: sd of the influence terms over sqrt(n).
    assert result["ips"].se == pytest.approx(np.std(weight * reward, ddof=1) / np.sqrt(6), rel=1e-12)
    snips = result["snips"].value
    influence = snips + weight * (reward - snips) / weight.mean()
    assert result["snips"].se == pytest.approx(np.std(influence, ddof=1) / np.sqrt(6), rel=1e-12)
    assert np.isnan(result["dm"].se) and "no interval" in result["dm"].note


def test_result_objects_print_and_serialise(small):
    feedback, target = small
    result = evaluate_policy(feedback, target, reward_model=ActionValueModel(), n_folds=2, random_state=0)
    payload = result.to_dict()
    assert payload["n_rounds"] == 6
    assert {e["estimator"] for e in payload["estimates"]} == {"auto", "ips", "snips", "dm", "dr"}
    assert {"ess", "max_weight", "mean_weight", "warnings"} <= set(payload["diagnostics"])
    dm = next(e for e in payload["estimates"] if e["estimator"] == "dm")
    assert dm["se"] is None and dm["ci_low"] is None  # DM: no interval; NaN becomes JSON null
    assert list(result.to_frame().columns[:5]) == ["estimator", "value", "se", "ci_low", "ci_high"]
    assert "dr" in result.summary()


def distinct_rounds(n=30, seed=0):
    return LoggedFeedback(
        action=np.zeros(n, int), reward=np.r_[np.ones(n // 2), np.zeros(n - n // 2)], pscore=np.ones(n),
        context=np.random.default_rng(seed).normal(size=(n, 2)), n_actions=1, user_id=np.arange(n) % 10,
    )


def test_cross_fitting_never_predicts_a_round_with_a_model_that_saw_it():
    feedback = distinct_rounds()
    target = np.ones((30, 1))
    result = evaluate_policy(feedback, target, estimators=["dm"], reward_model=Memoriser(), n_folds=3)
    assert result["dm"].value == 0.0  # every prediction came from a model that had not seen the round


def test_copies_of_a_round_share_a_fold_when_grouped():
    origin = np.r_[np.arange(30), np.arange(30)]  # every round twice, as in a bootstrap resample
    copies = distinct_rounds().take(origin)
    target = np.ones((60, 1))
    leaky = evaluate_policy(copies, target, estimators=["dm"], reward_model=Memoriser(), random_state=0)
    # Row-wise folds put the two copies of a round in different folds about 2 times in 3: the model has seen
    # the round it scores.
    assert leaky["dm"].value > 0.4
    grouped = evaluate_policy(copies, target, estimators=["dm"], reward_model=Memoriser(), random_state=0,
                              fold_groups=origin)
    assert grouped["dm"].value == 0.0
    assert grouped.metadata["fold_groups"] == 30
    # One user's rounds in one fold: the model never saw the user of a round it scores.
    by_user = evaluate_policy(distinct_rounds(), np.ones((30, 1)), estimators=["dm"], reward_model=Memoriser(),
                              fold_groups="user_id", random_state=1)
    assert by_user["dm"].value == 0.0 and by_user.metadata["fold_groups"] == 10


def test_refit_bootstrap_keeps_the_copies_of_a_drawn_round_in_one_fold():
    feedback = distinct_rounds(40)
    result = evaluate_policy(feedback, np.ones((40, 1)), estimators=["dm"], reward_model=Memoriser(),
                             ci="bootstrap", n_bootstrap=60, refit_reward_model=True, dm_bias_bound=0.0,
                             random_state=0)
    # Every replicate's predictions came from models that never saw a copy of the scored round, so every
    # replicate of DM is exactly 0 (a leak in any of the 60 resamples would raise the upper limit).
    assert result["dm"].ci_low == 0.0 and result["dm"].ci_high == 0.0


def test_group_folds_keep_groups_whole_and_spread_the_clicks():
    from causalrec.ope.reward_model import group_folds

    rng = np.random.default_rng(3)
    groups = rng.integers(0, 400, size=3000)
    clicked_groups = rng.choice(400, size=30, replace=False)
    reward = np.isin(groups, clicked_groups).astype(float) * (rng.random(3000) < 0.5)
    folds = group_folds(groups, reward, n_folds=3, stratify=True, random_state=0)
    for label in np.unique(groups):
        assert np.unique(folds[groups == label]).size == 1
    positive_groups = np.unique(groups[reward > 0])
    per_fold = np.bincount([folds[groups == g][0] for g in positive_groups], minlength=3)
    assert per_fold.max() - per_fold.min() <= 1  # dealt in turn: as even as the count allows
    assert np.array_equal(folds, group_folds(groups, reward, 3, True, random_state=0))  # seeded


def test_bad_fold_groups_name_the_field():
    feedback = distinct_rounds()
    target = np.ones((30, 1))
    cases = [(np.arange(29), "shape (29,)"), (np.r_[np.arange(29), np.nan], "1 missing"),
             (np.zeros(30), "at least n_folds = 3 distinct labels"), ("users", "'users'")]
    for groups, found in cases:
        with pytest.raises(ValidationError, match="fold_groups|groups") as error:
            evaluate_policy(feedback, target, estimators=["dm"], reward_model=Memoriser(), fold_groups=groups)
        assert found in str(error.value)
    anonymous = LoggedFeedback(action=feedback.action, reward=feedback.reward, pscore=feedback.pscore,
                               context=feedback.context, n_actions=1)
    with pytest.raises(ValidationError, match="logs without user_id"):
        evaluate_policy(anonymous, target, estimators=["dm"], fold_groups="user_id")


def test_single_class_folds_fall_back_to_the_training_mean():
    world = simulate.make_world(n_users=50, n_items=5, n_positions=1, random_state=0)
    logs = world.sample_logs(300, random_state=0)
    reward = np.zeros(300)
    reward[7] = 1.0  # one click
    logs = LoggedFeedback(
        action=logs.action, reward=reward, pscore=logs.pscore, context=logs.context, n_actions=logs.n_actions
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        result = evaluate_policy(logs, policy.uniform_random(300, 5), n_folds=3, random_state=0)
    # Stratification needs a click per fold, so folds are plain: the one fold that holds the click out trains on
    # zeros only.
    assert result.metadata["constant_reward_folds"] == 1
    assert all(np.isfinite(e.value) for e in result.estimates)


@pytest.mark.parametrize(("common", "odd"), [(0.0, 1.0), (1.0, 0.0)])
def test_single_class_fold_predicts_its_training_mean_for_exactly_its_rounds(common, odd):
    """The fold whose held-out rounds contain the only odd outcome trains on one class: its rounds (and only
    they) get that training mean, logged and under the target; the other folds are fitted models."""
    world = simulate.make_world(n_users=50, n_items=5, n_positions=1, random_state=0)
    logs = world.sample_logs(300, random_state=0)
    reward = np.full(300, common)
    reward[7] = odd
    feedback = LoggedFeedback(action=logs.action, reward=reward, pscore=logs.pscore, context=logs.context,
                              n_actions=logs.n_actions)
    predictions = cross_fit_rewards(feedback, policy.uniform_random(300, 5), n_folds=3, random_state=0)
    assert predictions.n_constant_folds == 1
    constant = predictions.q_logged == common
    assert constant[7] and constant.sum() == 100  # the odd round's fold, a third of the rounds
    np.testing.assert_array_equal(predictions.q_target[constant], common)
    fitted = predictions.q_logged[~constant]
    assert ((fitted > 0) & (fitted < 1)).all()  # a classifier saw both classes there


def test_low_effective_sample_size_warns_before_the_estimate():
    world = simulate.make_world(n_users=200, n_items=30, n_positions=1, logging_epsilon=0.01, random_state=1)
    logs = world.sample_logs(3000, random_state=0)
    target = policy.greedy_top_k(-world.logging_scores[logs.user_id], 1)  # what the logger almost never shows
    with pytest.warns(CausalrecWarning, match="effective sample size"):
        result = evaluate_policy(logs, target, estimators=["ips"])
    assert not result.diagnostics.reliable
    weight = target.prob_of(logs.action, logs.position) / logs.pscore
    assert result.diagnostics.ess == pytest.approx(weight.sum() ** 2 / (weight**2).sum())


def test_few_effective_positive_rewards_warn_even_when_every_click_has_a_weight():
    """Uniform logging over two actions; 4 clicks under action 0 and 30 under action 1. An epsilon-greedy target
    (0.99 on action 0) weighs every click, but 1.98 against 0.02: Kish's count over the clicks' weights is
    (4 * 1.98 + 30 * 0.02)^2 / (4 * 1.98^2 + 30 * 0.02^2) = 4.63, and the estimate rests on those 4 clicks."""
    action = np.tile([0, 1], 200)
    reward = np.zeros(400)
    reward[np.flatnonzero(action == 0)[:4]] = 1
    reward[np.flatnonzero(action == 1)[:30]] = 1
    feedback = LoggedFeedback(action=action, reward=reward, pscore=np.full(400, 0.5), n_actions=2)
    favour_0 = np.tile([1.0, 0.0], (400, 1))
    with pytest.warns(CausalrecWarning, match=r"only 4\.6 positive rewards effectively carry the estimate \(of the 34 "
                      r"with non-zero weight; their weights are uneven\)"):
        mixed = evaluate_policy(feedback, policy.epsilon_greedy(favour_0, 0.02, 1), estimators=["ips"])
    expected = (4 * 1.98 + 30 * 0.02) ** 2 / (4 * 1.98**2 + 30 * 0.02**2)
    assert mixed.diagnostics.effective_positive_rewards == pytest.approx(expected, rel=1e-12)
    assert not mixed.diagnostics.reliable and mixed.diagnostics.ess > 100  # the rounds are plenty, the clicks not
    assert "34 positive rewards (effectively 4.6 behind the estimate)" in mixed.summary()
    # A deterministic target: the same 4 clicks, equal weights, so the count needs no qualifier.
    with pytest.warns(CausalrecWarning, match=r"only 4\.0 positive rewards effectively carry the estimate: "):
        greedy = evaluate_policy(feedback, policy.greedy_top_k(favour_0, 1), estimators=["ips"])
    assert greedy.diagnostics.effective_positive_rewards == pytest.approx(4.0)
    # The logging policy itself: every click weighs 1, 34 of them, nothing to warn about.
    with warnings.catch_warnings():
        warnings.simplefilter("error", CausalrecWarning)
        logging = evaluate_policy(feedback, policy.uniform_random(400, 2), estimators=["ips"])
    assert logging.diagnostics.reliable and logging.diagnostics.effective_positive_rewards == pytest.approx(34)


def test_unsupported_target_mass_is_measured_and_reported():
    feedback = LoggedFeedback(action=[0, 1, 0, 1], reward=[1, 0, 0, 1], pscore=[0.5] * 4, n_actions=3)
    target = np.array([[0.5, 0.25, 0.25]] * 4)  # action 2 never appears in the logs
    with pytest.warns(CausalrecWarning, match="absent from the logs"):
        result = evaluate_policy(feedback, target, estimators=["ips"])
    assert result.diagnostics.unsupported_mass == pytest.approx(0.25)


def test_bad_input_gets_clear_errors(small):
    feedback, target = small
    with pytest.raises(ValidationError, match="field 'pscore'"):
        evaluate_policy(feedback.with_pscore(None), target, pscore_model=None)
    with pytest.raises(ValidationError, match="6 logged rounds"):
        evaluate_policy(feedback, target[:5])
    with pytest.raises(ValidationError, match="summing to 1"):
        evaluate_policy(feedback, target * 0.9)
    with pytest.raises(ValidationError, match="field 'estimators'"):
        evaluate_policy(feedback, target, estimators=["magic"])
    with pytest.raises(ValidationError, match="field 'reward_model'.*found str 'lgbm'"):
        evaluate_policy(feedback, target, estimators=["dr"], reward_model="lgbm")
    with pytest.raises(ValidationError, match=r"found nan at \(table, action, position\) \(0, 0, 0\)"):
        evaluate_policy(feedback, np.full_like(target, np.nan))


def test_bad_options_name_the_field_instead_of_giving_a_number(small):
    """Options that would give a wrong number or a crash deep inside are refused up front, naming the field."""
    feedback, target = small
    q = np.full((6, 3), 0.9)
    cases = [
        (dict(estimators=[]), "field 'estimators' must be at least one of"),
        (dict(alpha="0.05"), "field 'alpha' must be a finite number; found '0.05'"),
        (dict(alpha=1.0), "field 'alpha' must be in the open interval"),
        (dict(estimators="dm", estimated_rewards=q, dm_bias_bound=-1.0), "field 'dm_bias_bound' must be a non-negative"),
        (dict(estimators="dm", estimated_rewards=q, dm_bias_bound=float("nan")), "field 'dm_bias_bound'"),
        (dict(estimators="dr", n_folds=1), r"field 'n_folds' must be an integer in \[2, n_rounds = 6\]"),
        (dict(estimators="dr", n_folds=7), r"field 'n_folds' must be an integer in \[2, n_rounds = 6\].*found 7"),
        (dict(estimators="dr", n_folds=2.5), "field 'n_folds'"),
        # The refit bootstrap refits a model: precomputed predictions have none, and the analytic interval no
        # resamples (the replicates used to refit LightGBM and describe another estimator than the point estimate).
        (dict(estimators="dm,dr", estimated_rewards=q, ci="bootstrap", n_bootstrap=50, refit_reward_model=True),
         "field 'refit_reward_model'.*estimated_rewards given"),
        (dict(estimators="dr", refit_reward_model=True), "field 'refit_reward_model'.*found ci='analytic'"),
    ]
    for options, message in cases:
        with pytest.raises(ValidationError, match=message):
            evaluate_policy(feedback, target, random_state=0, **options)


@pytest.mark.parametrize("estimator", ["ips", "dr", "switch-dr", "dr-os"])
def test_thresholds_must_be_non_negative_numbers(estimator):
    """As OBP: a negative clipping threshold would make IPS negative on rewards >= 0, a NaN one gives NaN."""
    from causalrec.ope.estimators import ESTIMATORS

    for bad in (-1.0, float("nan"), "5", None, True):
        with pytest.raises(ValidationError, match=r"field 'lambda_' must be a number >= 0 \(inf: no threshold\)"):
            ESTIMATORS[estimator](lambda_=bad)
    assert ESTIMATORS[estimator](lambda_=0).lambda_ == 0.0
    assert ESTIMATORS[estimator](lambda_=np.int64(3)).lambda_ == 3.0


def test_frames_keep_missing_numbers_as_nan_and_the_header_says_what_was_used(small):
    feedback, target = small
    result = evaluate_policy(feedback, target, estimators="dm,ips", estimated_rewards=np.full((6, 3), 0.5),
                             alpha=0.025)
    frame = result.to_frame()
    assert frame["se"].dtype == np.float64 and np.isnan(frame.loc[0, "se"])  # DM has no interval
    assert (frame["value"] - 0.5).abs().iloc[0] < 1e-12  # arithmetic works on the columns
    assert np.isnan(result["dm"].to_frame().loc[0, "ci_low"])
    assert result.to_dict()["estimates"][0]["se"] is None  # JSON keeps null
    header = result.summary().splitlines()[0]
    assert "97.5% analytic intervals" in header and "reward model: precomputed predictions" in header
    assert "cross-fitted" not in header


def test_an_undefined_candidate_is_named_in_the_comparison_error(small):
    feedback, target = small
    never_logged = np.zeros_like(target)
    never_logged[:, 0] = 1.0
    never_logged[feedback.action == 0] = [0.0, 1.0, 0.0]  # all weight off the logged actions
    assert (never_logged[np.arange(6), feedback.action] == 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy division warning ahead of the clear error
        with pytest.warns(CausalrecWarning, match="effective sample size is 0.0"), pytest.raises(
            ValidationError, match=r"compare_policies: field 'targets\['b'\]' must be a policy whose snips estimate is "
                                   r"defined.*all importance weights are zero"):
            compare_policies(feedback, {"a": target, "b": never_logged}, baseline="a", estimator="snips")
    with pytest.raises(ValidationError, match="compare_policies: field 'alpha'"):
        compare_policies(feedback, {"a": target}, baseline="logging", alpha=0)


def test_comparison_json_carries_each_uplifts_reliability_for_planning():
    # Uniform logs over 200 items: a greedy candidate matches 1 round in 200 (ESS 0.5% of n, flagged), a uniform
    # one matches every round. An uplift is as reliable as both of its estimates.
    rng = np.random.default_rng(3)
    n, n_actions = 4000, 200
    feedback = LoggedFeedback(action=rng.integers(0, n_actions, n), reward=rng.random(n) < 0.3,
                              pscore=np.full(n, 1 / n_actions), n_actions=n_actions)
    greedy = np.zeros((n, n_actions))
    greedy[:, 0] = 1.0
    targets = {"uniform": np.full((n, n_actions), 1 / n_actions), "greedy": greedy}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        over_logging = compare_policies(feedback, targets, baseline="logging", estimator="ips").to_dict()
        over_greedy = compare_policies(feedback, targets, baseline="greedy", estimator="ips").to_dict()
    flags = {c["policy"]: (c["reliable"], round(c["ess"])) for c in over_logging["comparisons"]}
    assert flags == {"uniform": (True, n), "greedy": (False, round(over_logging["diagnostics"]["greedy"]["ess"]))}
    assert flags["greedy"][1] < 0.01 * n
    assert [(c["policy"], c["reliable"]) for c in over_greedy["comparisons"]] == [("uniform", False)]


def test_bad_comparison_input_names_the_field(small):
    feedback, target = small
    with pytest.raises(ValidationError, match="compare_policies: field 'targets' must be a non-empty mapping"):
        compare_policies(feedback, [target, target], baseline="logging")
    with pytest.raises(ValidationError, match="field 'estimator' must be one estimator"):
        compare_policies(feedback, {"a": target}, baseline="logging", estimator=["ips"])
    with pytest.raises(ValidationError, match="compare_policies: field 'baseline'"):
        compare_policies(feedback, {"a": target}, baseline="b")


def test_one_name_or_a_comma_separated_string_selects_estimators(small):
    """A bare string is a list of names, as on the command line, not a sequence of one-letter names."""
    feedback, target = small
    model = ActionValueModel()
    listed = evaluate_policy(feedback, target, estimators=["ips", "dr"], reward_model=model, random_state=0)
    for spelled in ("ips, dr", "ips,dr"):
        result = evaluate_policy(feedback, target, estimators=spelled, reward_model=model, random_state=0)
        assert [e.estimator for e in result.estimates] == ["ips", "dr"]
        assert [e.value for e in result.estimates] == [e.value for e in listed.estimates]
    assert [e.estimator for e in evaluate_policy(feedback, target, estimators="snips").estimates] == ["snips"]


@pytest.mark.slow
def test_analytic_intervals_cover_the_truth_at_the_nominal_rate():
    world = simulate.make_world(n_users=200, n_items=10, n_positions=2, random_state=11)
    make = lambda s: policy.softmax(s, 1.0, 2)  # noqa: E731
    truth = world.policy_value(make(world.relevance))
    covered = {"ips": 0, "snips": 0}
    replications = 300
    for seed in range(replications):
        logs = world.sample_logs(2000, random_state=seed)
        result = evaluate_policy(logs, make(world.relevance[logs.user_id]), estimators=["ips", "snips"])
        for name in covered:
            covered[name] += result[name].ci_low <= truth <= result[name].ci_high
    for name, count in covered.items():
        # 95% nominal; 300 replications have a binomial sd of 1.3 points: accept 90-99%.
        assert 0.90 <= count / replications <= 0.99, (name, count)


def test_logs_without_pscore_are_evaluated_with_estimated_propensities_and_say_so():
    world = simulate.make_world(n_users=300, n_items=10, n_positions=2, random_state=21)
    logs = world.sample_logs(20_000, random_state=0)
    target = policy.softmax(world.relevance[logs.user_id], 1.0, 2)
    truth = world.policy_value(policy.softmax(world.relevance, 1.0, 2))
    with pytest.warns(CausalrecWarning, match="no pscore"):
        estimated = evaluate_policy(logs.with_pscore(None), target, estimators=["ips", "snips"], random_state=0)
    assert estimated.metadata["pscore_source"].startswith("estimated")
    for name in ("ips", "snips"):
        assert abs(estimated[name].value - truth) < 3 * estimated[name].se
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        comparison = compare_policies(logs.with_pscore(None), {"t": target}, baseline="logging", estimator="ips")
    assert comparison.pscore_source.startswith("estimated")
    # Propensities estimated in an earlier step (causalrec exposure --write-logs) are named as such, not "logged";
    # replacing them with recorded ones drops that source.
    earlier = logs.with_pscore(logs.pscore * 1.0, source="estimated by causalrec.exposure: scores")
    result = evaluate_policy(earlier, target, estimators=["ips"])
    assert result.metadata["pscore_source"] == "estimated by causalrec.exposure: scores"
    assert "pscore estimated by causalrec.exposure: scores" in result.summary().splitlines()[0]
    comparison = compare_policies(earlier, {"t": target}, baseline="logging", estimator="ips")
    assert comparison.pscore_source == "estimated by causalrec.exposure: scores"
    recorded = earlier.with_pscore(logs.pscore)
    assert "pscore_source" not in recorded.metadata
    assert "pscore_source" not in evaluate_policy(recorded, target, estimators=["ips"]).metadata
    assert compare_policies(recorded, {"t": target}, baseline="logging", estimator="ips").pscore_source == "logged"


def test_unsupported_mass_agrees_across_target_representations():
    rng = np.random.default_rng(4)
    n, n_actions, n_positions = 300, 6, 2
    feedback = LoggedFeedback(
        action=rng.integers(0, 4, n), reward=rng.integers(0, 2, n).astype(float),
        position=rng.integers(0, n_positions, n), pscore=np.full(n, 0.25), n_actions=n_actions,
        n_positions=n_positions,
    )  # actions 4 and 5 are never logged
    dense = rng.random((n, n_actions, n_positions)) ** 3
    dense /= dense.sum(axis=1, keepdims=True)
    per_round = policy.TableDistribution.from_dense(dense)  # one table per round: the blockwise path
    rounds, actions, positions = np.nonzero(dense)
    sparse = policy.SparseDistribution(rounds, actions, positions, dense[rounds, actions, positions], n, n_actions,
                                       n_positions)
    shared = policy.TableDistribution(dense[:3], np.arange(n) % 3)  # three shared tables: the grouped path
    expected_dense = dense[np.arange(n), 4:, feedback.position].sum(axis=1).mean()
    assert unsupported_mass(feedback, per_round) == pytest.approx(expected_dense)
    assert unsupported_mass(feedback, sparse) == pytest.approx(expected_dense)
    expected_shared = dense[np.arange(n) % 3, 4:, feedback.position].sum(axis=1).mean()
    assert unsupported_mass(feedback, shared) == pytest.approx(expected_shared)


def test_reward_model_fit_is_the_held_out_loss_against_each_folds_training_mean():
    """Oracles: scikit-learn's log loss of the out-of-fold predictions; a prior-only model (scikit-learn's
    DummyClassifier, fitted on the training folds) predicts exactly the constant the fit is judged against, so
    its skill is zero and it is flagged."""
    from sklearn.dummy import DummyClassifier
    from sklearn.metrics import log_loss

    world = simulate.make_world(n_users=300, n_items=10, n_positions=1, random_state=0)
    logs = world.sample_logs(4000, random_state=0)
    target = policy.uniform_random(4000, 10)
    predictions = cross_fit_rewards(logs, target, n_folds=3, random_state=0)
    result = evaluate_policy(logs, target, estimators=["dm"], random_state=0)
    fit = result.diagnostics.reward_model_fit
    assert fit.metric == "log_loss"
    assert fit.held_out == pytest.approx(log_loss(logs.reward, predictions.q_logged), rel=1e-9)
    assert fit.skill == pytest.approx(1 - fit.held_out / fit.constant, rel=1e-12)
    assert fit.skill > 0.05 and not fit.warnings  # the simulator's clicks depend on user and item
    assert "skill +" in result.summary()

    prior = cross_fit_rewards(logs, target, DummyClassifier(strategy="prior"), n_folds=3, random_state=0)
    np.testing.assert_allclose(prior.q_logged, prior.fold_mean, rtol=1e-12)
    with pytest.warns(CausalrecWarning, match="no better than a constant"):
        flat = evaluate_policy(logs, target, estimators=["dm"], reward_model=DummyClassifier(strategy="prior"))
    assert flat.diagnostics.reward_model_fit.skill == pytest.approx(0.0, abs=1e-12)
    assert flat.diagnostics.reward_model_fit.constant == pytest.approx(fit.constant, rel=1e-12)


def test_a_regressors_fit_is_judged_by_squared_error_in_closed_form(small):
    feedback, target = small
    fit = evaluate_policy(feedback, target, estimators=["dm"], reward_model=ActionValueModel(), n_folds=2,
                          random_state=0).diagnostics.reward_model_fit
    q_logged = np.array([0.2, 0.5, 0.9])[feedback.action]
    assert fit.metric == "squared_error"
    assert fit.held_out == pytest.approx(np.mean((feedback.reward - q_logged) ** 2), rel=1e-12)


def test_a_reward_model_without_held_out_skill_is_flagged_and_the_weights_stay_reliable():
    """Rewards that are pure noise (independent of context and action): no model can beat the training mean
    on held-out rounds, and the default one, flexible enough to chase the noise, does worse."""
    rng = np.random.default_rng(0)
    n = 5000
    logs = LoggedFeedback(action=rng.integers(0, 5, n), reward=(rng.random(n) < 0.05).astype(float),
                          pscore=np.full(n, 0.2), context=rng.normal(size=(n, 4)), n_actions=5)
    with pytest.warns(CausalrecWarning, match="no better than a constant"):
        result = evaluate_policy(logs, policy.uniform_random(n, 5), random_state=0)
    diagnostics = result.diagnostics
    assert diagnostics.reward_model_fit.skill < 0
    assert diagnostics.reliable  # the weights are those of the logging policy itself
    assert any("no better than a constant" in w for w in diagnostics.warnings)
    assert result.summary().index("no better than a constant") < result.summary().index("estimator")
    assert result.to_dict()["diagnostics"]["reward_model_fit"]["skill"] < 0
    # A comparison shares one reward model: its warning is given once, not once per candidate.
    scores = rng.normal(size=(n, 5))
    targets = {"a": policy.uniform_random(n, 5), "b": policy.softmax(scores, 1.0, 1),
               "c": policy.epsilon_greedy(scores, 0.3, 1)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CausalrecWarning)
        comparison = compare_policies(logs, targets, baseline="a", random_state=0)
    assert sum("no better than a constant" in str(w.message) for w in caught) == 1
    assert sum("no better than a constant" in w for w in comparison.warnings) == 1
    assert all(d.reward_model_fit.skill < 0 for d in comparison.diagnostics.values())
    assert comparison.summary().count("no better than a constant") == 1
    # No reward model, no fit: the weighting estimators alone, or predictions the caller made.
    assert evaluate_policy(logs, policy.uniform_random(n, 5), estimators=["ips"]).diagnostics.reward_model_fit is None
    given = evaluate_policy(logs, policy.uniform_random(n, 5), estimators=["dm"],
                            estimated_rewards=np.full((n, 5), 0.05))
    assert given.diagnostics.reward_model_fit is None


def test_a_comparison_cross_fits_the_reward_model_once_and_scores_every_candidate_with_it():
    """K fits for any number of candidates (not K per candidate), and each candidate's DM value is exactly the
    one the shared fold models give it: a model whose fits all differ (a random draw per fit) would otherwise
    score the candidates with different models."""
    fits = []

    class RandomPerFit(BaseEstimator, RegressorMixin):
        def fit(self, features, reward):
            fits.append(self)
            self.level_ = np.random.default_rng(len(fits)).random()
            return self

        def predict(self, features):
            return np.full(features.shape[0], self.level_)

    world = simulate.make_world(n_users=100, n_items=6, n_positions=1, random_state=0)
    logs = world.sample_logs(900, random_state=0)
    scores = world.relevance[logs.user_id]
    targets = {"uniform": policy.uniform_random(900, 6), "greedy": policy.greedy_top_k(scores, 1),
               "soft": policy.softmax(scores, 0.5, 1), "eps": policy.epsilon_greedy(scores, 0.2, 1)}
    comparison = compare_policies(logs, targets, baseline="uniform", estimator="dm", reward_model=RandomPerFit(),
                                  n_folds=3, random_state=0)
    assert len(fits) == 3
    # Every target puts mass 1 on each round, so its DM value is the mean of the fold levels over the rounds:
    # the same for all candidates when the fold models are shared, and the paired differences are exactly 0.
    values = comparison.values["value"].to_numpy()
    np.testing.assert_allclose(values, values[0], rtol=1e-12)
    np.testing.assert_allclose(comparison.differences["difference"], 0.0, atol=1e-12)

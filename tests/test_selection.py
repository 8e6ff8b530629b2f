"""Model selection by estimated uplift, checked against the simulator's exact policy values."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import Memoriser, score_excess
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from causalrec import CausalrecWarning, LoggedFeedback, ValidationError, policy, simulate
from causalrec.ope.reward_model import design_matrix
from causalrec.selection import (
    Candidate,
    default_candidates,
    ensemble_candidate,
    exploration_candidate,
    mmr_candidate,
    reward_model_candidate,
    select_models,
)

pytestmark = pytest.mark.filterwarnings("ignore::causalrec.exceptions.CausalrecWarning")


@pytest.fixture(scope="module")
def active_world():
    return simulate.make_world(user_activity_scale=1.5, random_state=7)


def _scores(world, rng):
    top_slot = logit(world.organic_prob + world.examination[0] * world.true_effect)
    user_level = top_slot.mean(axis=1, keepdims=True)
    return {
        "item-ranker": expit(top_slot - user_level + top_slot.mean()),
        "noisy": expit(top_slot + rng.normal(0, 1.0, top_slot.shape)),
        "random": rng.random(top_slot.shape),
    }


def test_uplift_ranks_candidates_like_the_truth_where_accuracy_does_not(active_world):
    world = active_world
    scores = _scores(world, np.random.default_rng(8))
    baseline = world.policy_value(world.logging_policy())
    truth = {n: world.policy_value(policy.greedy_top_k(s, 3)) - baseline for n, s in scores.items()}
    logs = world.sample_logs(20_000, random_state=3)
    candidates = [Candidate(n, s[logs.user_id]) for n, s in scores.items()]
    board = select_models(candidates, logs, reward_model=LogisticRegression(max_iter=300), random_state=0)
    table = board.table.set_index("candidate")
    # The most accurate model on the logs is not the best one by true uplift ...
    assert table["auc"].idxmax() == "noisy"
    assert max(truth, key=truth.get) == "item-ranker"
    # ... and the uplift leaderboard gets the order and the winner right, with intervals covering the truth.
    assert list(board.table["candidate"]) == sorted(truth, key=truth.get, reverse=True)
    assert board.winner == "item-ranker"
    for name, value in truth.items():
        assert table.loc[name, "uplift_ci_low"] <= value <= table.loc[name, "uplift_ci_high"]
    assert "Bonferroni over 3 candidates" in board.correction
    payload = board.to_dict()
    assert payload["winner"] == "item-ranker"
    assert {"policy", "baseline", "difference", "se"} <= set(payload["comparisons"][0])
    figure = board.plot()
    assert len(figure.axes) == 2
    # auto's choice per candidate is shown, with plain DR's uplift from the same logs and reward model beside it.
    from causalrec.ope.evaluate import compare_policies

    plain = compare_policies(logs, {c.name: c.resolved_policy(logs.n_positions) for c in candidates},
                             baseline="logging", estimator="dr", reward_model=LogisticRegression(max_iter=300),
                             random_state=0).differences.set_index("policy")
    # The default is plain DR: the same numbers as compare_policies with DR.
    assert board.estimator == "dr"
    for name in truth:
        assert table.loc[name, "uplift"] == pytest.approx(plain.loc[name, "difference"], rel=1e-12)
    assert board.uplift_notes == []
    with_auto = select_models(candidates, logs, estimator="auto", reward_model=LogisticRegression(max_iter=300),
                              random_state=0)
    auto_table = with_auto.table.set_index("candidate")
    assert len(with_auto.uplift_notes) == 3
    for name in truth:
        note = auto_table.loc[name, "uplift_note"]
        assert f"{name}: {note}" in with_auto.uplift_notes and f"{name}: {note}" in with_auto.summary()
        assert note.startswith("SLOPE chose DR-os")  # here a shrunk threshold for each, so plain DR is quoted
        assert f"plain DR {plain.loc[name, 'difference']:.4g} (se {plain.loc[name, 'se']:.2g})" in note
    assert select_models(candidates, logs, estimator="ips").uplift_notes == []


@pytest.mark.parametrize("base_rate", [0.1, 0.01])
def test_indistinguishable_candidates_rarely_produce_a_false_winner(base_rate):
    """Every policy has the same value. At a 1% click rate about 30 clicks carry each IPS estimate, where the
    lower bounds of the score intervals are least conservative (measured over 300 replications: 0.7% false winners
    at 10%, 2% at 1%)."""
    world = simulate.make_world(relevance_scale=0.0, popularity_scale=0.0, effect_mean=0.0, effect_scale=0.0,
                                effect_relevance_slope=0.0, base_rate=base_rate, random_state=1)
    rng = np.random.default_rng(0)
    scores = {name: rng.random((world.n_users, world.n_items)) for name in ("a", "b", "c")}
    winners = 0
    replications = 40
    for seed in range(replications):
        logs = world.sample_logs(3000, random_state=seed)
        candidates = [Candidate(n, s[logs.user_id]) for n, s in scores.items()]
        winners += select_models(candidates, logs, estimator="ips").winner is not None
    # Family-wise error is at most 5%; 40 replications: P(more than 6 false winners) < 1% under that bound.
    assert winners <= 6


def test_no_significant_winner_is_stated_when_the_bound_is_not_above_zero():
    world = simulate.make_world(n_users=100, n_items=10, random_state=2)
    logs = world.sample_logs(300, random_state=0)
    rng = np.random.default_rng(1)
    candidates = [Candidate("x", rng.random((300, 10))), Candidate("y", rng.random((300, 10)))]
    board = select_models(candidates, logs, estimator="ips")
    # Ground truth: ranking by random scores is worse than the logging policy on these very rows.
    mu, users, slots = world.expected_reward(), logs.user_id, logs.position
    logging_value = np.mean(np.sum(world.logging_prob[users] * mu[users, :, slots], axis=1))
    for candidate in candidates:
        ranking = policy.greedy_top_k(candidate.scores, world.n_positions)
        assert world.policy_value(ranking, users=users, positions=slots) - logging_value < -0.02
    assert (board.table["uplift_lcb"] <= 0).all()
    assert board.winner is None and board.decision.startswith("no significant winner")
    assert "95% simultaneous uplift intervals" in board.summary()
    # One comparison when a candidate is the baseline: no Bonferroni split, and the wording says so.
    against_x = select_models(candidates, logs, estimator="ips", baseline="x")
    assert against_x.correction.startswith("Bonferroni over 1 candidate: one-sided lower bounds at level 0.05 ")


def test_simultaneous_intervals_use_alpha_over_the_number_of_comparisons_made():
    """Against the logging policy every candidate is a comparison (m = 2 here, not m - 1 = 1), and the one-sided
    bound uses the same t reference as the intervals. The caller's score arrays stay writeable."""

    world = simulate.make_world(n_users=100, n_items=10, random_state=2)
    logs = world.sample_logs(600, random_state=0)
    rng = np.random.default_rng(1)
    raw = {"x": rng.random((600, 10)), "y": rng.random((600, 10))}
    candidates = [Candidate(name, scores) for name, scores in raw.items()]
    assert all(scores.flags.writeable for scores in raw.values())
    alpha, m = 0.05, 2
    board = select_models(candidates, logs, estimator="ips", alpha=alpha)
    comparisons = board.values  # the logging row and the candidates
    assert set(comparisons["policy"]) == {"logging", "x", "y"}
    from causalrec.ope.evaluate import compare_policies

    candidates_weight = {c.name: c.resolved_policy(logs.n_positions).prob_of(logs.action, logs.position) / logs.pscore
                         for c in candidates}
    direct = compare_policies(logs, {c.name: c.resolved_policy(logs.n_positions) for c in candidates},
                              baseline="logging", estimator="ips", alpha=alpha, adjust="bonferroni")
    single = compare_policies(logs, {c.name: c.resolved_policy(logs.n_positions) for c in candidates},
                              baseline="logging", estimator="ips", alpha=alpha / m)
    for _, diff in direct.differences.iterrows():
        row = board.table.set_index("candidate").loc[diff["policy"]]
        # Bonferroni = each comparison at alpha / m (IPS: the score interval).
        unadjusted = single.differences.set_index("policy").loc[diff["policy"]]
        assert (row["uplift_ci_low"], row["uplift_ci_high"]) == pytest.approx(
            (unadjusted["ci_low"], unadjusted["ci_high"]), rel=1e-12)
        # IPS minus the on-policy mean: terms (w - 1) r, intercept 0, slope w - 1; the one-sided bound is the
        # score interval's lower end at level alpha / m (rebuilt from its definition in tests/helpers.py): the
        # smaller of its two ways down.
        slope = candidates_weight[diff["policy"]] - 1.0
        terms = slope * logs.reward
        results = [score_excess(row["uplift_lcb"], terms, np.zeros(len(terms)), slope, alpha / m, shrink)
                   for shrink in (False, True)]  # the smaller of the two ways down
        assert min(abs(excess) / scale for excess, scale in results) <= 1e-8
        assert all(excess >= -1e-8 * scale for excess, scale in results)
        assert row["uplift_ci_low"] < row["uplift_lcb"] < row["uplift"]
        assert row["uplift_df"] == diff["df"]
    assert "Bonferroni over 2 candidates" in board.correction
    logging_row = next(e for e in board.to_dict()["estimates"] if e["policy"] == "logging")
    assert logging_row["value"] == pytest.approx(logs.reward.mean(), rel=1e-12)


def test_accuracy_metrics_match_sklearn_and_hand_computation():
    world = simulate.make_world(n_users=200, n_items=12, random_state=3)
    logs = world.sample_logs(4000, random_state=1)
    scores = world.exposed_prob[logs.user_id]
    board = select_models([Candidate("m", scores)], logs, estimator="ips", k=5)
    row = board.table.iloc[0]
    assert row["auc"] == pytest.approx(roc_auc_score(logs.reward, scores[np.arange(4000), logs.action]))
    clicked = logs.reward > 0
    rank = 1 + (scores[clicked] > scores[clicked, logs.action[clicked]][:, None]).sum(axis=1)
    assert row["recall@5"] == pytest.approx(np.mean(rank <= 5))
    assert row["ndcg@5"] == pytest.approx(np.mean(np.where(rank <= 5, 1 / np.log2(rank + 1), 0.0)))


def test_mmr_trade_off_runs_from_relevance_to_diversity():
    rng = np.random.default_rng(4)
    scores = rng.random((50, 8))
    features = np.vstack([np.eye(4), np.eye(4)])  # items i and i + 4 are identical
    base = Candidate("base", scores)
    pure = mmr_candidate("pure", base, features, trade_off=1.0, n_positions=3)
    np.testing.assert_array_equal(pure.policy.to_dense(), policy.greedy_top_k(scores, 3).to_dense())
    diverse = mmr_candidate("diverse", base, features, trade_off=0.0, n_positions=3)
    dense = diverse.policy.to_dense()
    chosen = np.argmax(dense, axis=1)  # (rounds, slots)
    # With zero weight on relevance, no slate ever repeats a feature vector.
    assert all(len({item % 4 for item in row}) == 3 for row in chosen)
    with pytest.raises(ValidationError, match="trade_off"):
        mmr_candidate("bad", base, features, trade_off=1.5, n_positions=3)


def test_ensemble_averages_rank_normalised_scores():
    first = Candidate("a", np.array([[0.1, 0.5, 0.9]]))
    second = Candidate("b", np.array([[30.0, 20.0, 10.0]]))
    fused = ensemble_candidate("fusion", [first, second], weights=[3, 1])
    np.testing.assert_allclose(fused.scores, [[0.75 * 0 + 0.25 * 1, 0.5, 0.75 * 1 + 0.25 * 0]])


def test_candidate_and_selection_errors():
    world = simulate.make_world(n_users=50, n_items=6, random_state=5)
    logs = world.sample_logs(200, random_state=0)
    scores = np.zeros((200, 6))
    scores[17, 4] = np.nan
    with pytest.raises(ValidationError, match=r"^Candidate 'nan': field 'scores' must be finite .*found NaN "
                                              r"\(a missing value\) \(first offending row: 17\)"):
        Candidate("nan", scores)
    with pytest.raises(ValidationError, match="distinct names"):
        select_models([Candidate("a", np.zeros((200, 6))), Candidate("a", np.ones((200, 6)))], logs, estimator="ips")
    with pytest.raises(ValidationError, match=r"shape \(200, 6\)"):
        select_models([Candidate("a", np.zeros((199, 6)))], logs, estimator="ips")
    with pytest.raises(ValidationError, match=r"^select_models: field 'candidates' must be at least one Candidate; "
                                              r"found none$"):
        select_models({}, logs, estimator="ips")
    for k in (0, 2.5):  # checked before anything is fitted, under the name the caller used
        with pytest.raises(ValidationError, match=r"^select_models: field 'k' must be a positive integer; found"):
            select_models([Candidate("a", np.zeros((200, 6)))], logs, estimator="ips", k=k)
    with pytest.raises(ValidationError, match="exactly one"):
        exploration_candidate(Candidate("a", np.zeros((200, 6))), 3)


def test_default_candidates_run_end_to_end_on_logs_with_item_features():
    world = simulate.make_world(n_users=150, n_items=10, random_state=6)
    logs = world.sample_logs(3000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        field = default_candidates(logs, random_state=0)
        board = select_models(field, logs, baseline="random", random_state=0)
    names = set(board.table["candidate"])
    assert {"lightgbm", "logistic", "popularity", "random", "ensemble", "lightgbm+mmr0.7", "lightgbm+eps0.1"} <= names
    assert board.table.set_index("candidate").loc["random", "uplift"] == 0.0


def test_causal_precision_from_exposure_logs_prefers_ranking_by_effect():
    world = simulate.make_world(n_users=300, n_items=40, random_state=12)
    logs = world.sample_logs(3000, random_state=0)
    exposure = world.sample_exposure(60_000, random_state=1)
    pairs = (exposure["user"].to_numpy(), exposure["item"].to_numpy())
    by_effect = Candidate("by-effect", world.true_effect[logs.user_id], exposure_scores=world.true_effect[pairs])
    by_outcome = Candidate("by-outcome", world.exposed_prob[logs.user_id], exposure_scores=world.exposed_prob[pairs])
    board = select_models([by_effect, by_outcome], logs, estimator="ips", k=5, exposure_logs=exposure)
    table = board.table.set_index("candidate")
    assert table.loc["by-effect", "causal_precision@5"] > table.loc["by-outcome", "causal_precision@5"]
    # The IPS estimate agrees with the precision computed from the known effects, within its error.
    from causalrec.effects.ranking import causal_precision_at_k

    truth = causal_precision_at_k(pairs[0], world.true_effect[pairs], exposure["true_effect"].to_numpy(), k=5).value
    estimate = table.loc["by-effect", "causal_precision@5"]
    assert abs(estimate - truth) < 4 * table.loc["by-effect", "causal_precision@5_se"]


def test_reward_model_candidates_score_every_round_with_a_model_that_did_not_see_it():
    rng = np.random.default_rng(0)
    n = 45
    feedback = LoggedFeedback(action=rng.integers(0, 3, n), reward=rng.integers(0, 2, n).astype(float),
                              pscore=np.full(n, 1 / 3), context=rng.normal(size=(n, 2)), n_actions=3)
    # The memoriser returns 1 on any (context, item, slot) row it was trained on: an in-sample fit would score
    # every logged item 1; cross-fitted, every score is 0.
    in_sample = Memoriser().fit(design_matrix(feedback, np.arange(n), feedback.action, feedback.position), None)
    assert in_sample.predict(design_matrix(feedback, np.arange(n), feedback.action, feedback.position)).all()
    candidate = reward_model_candidate("memoriser", feedback, Memoriser(), random_state=0)
    assert candidate.scores.shape == (n, 3)
    np.testing.assert_array_equal(candidate.scores, 0.0)


@pytest.mark.slow
def test_transformer_candidates_are_cross_fitted_click_models_with_a_softmax_variant():
    from causalrec.selection import transformer_candidates

    world = simulate.make_world(n_users=100, n_items=6, n_positions=2, random_state=13)
    logs = world.sample_logs(600, random_state=0)
    field = transformer_candidates(logs, temperatures=(0.1,), random_state=0, hidden_size=8, max_epochs=1)
    assert [c.name for c in field] == ["transformer", "transformer+softmax0.1"]
    scores = field[0].scores
    assert scores.shape == (600, 6) and np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    # Cross-fitted like every reward-model candidate (reward_model_candidate, checked with a memoriser above), and
    # calibrated: the logged items' mean predicted click probability is the click rate.
    assert scores[np.arange(600), logs.action].mean() == pytest.approx(logs.reward.mean(), abs=0.02)
    np.testing.assert_allclose(field[1].policy.to_dense().sum(axis=1), 1.0)
    board = select_models(field, logs, estimator="ips")
    assert set(board.table["candidate"]) == {"transformer", "transformer+softmax0.1"}


def test_a_bound_resting_on_an_unreliable_estimate_cannot_win_on_open_bandit():
    """Open Bandit, uniform-random logs (38 clicks), SNIPS: some candidates' lower bounds clear 0 on a handful of
    matched clicks. The leaderboard names them but does not crown them; any winner has an estimate the diagnostics
    trust."""
    from causalrec.data.datasets import load_open_bandit

    feedback = load_open_bandit("random", "all").feedback
    board = select_models(default_candidates(feedback, random_state=0), feedback, estimator="snips", random_state=0)
    table = board.table.set_index("candidate")
    distrusted = table[(table["uplift_lcb"] > 0) & ~table["reliable"].astype(bool)]
    assert len(distrusted), "the data no longer exercise the rule: no unreliable bound above 0"
    assert board.winner not in distrusted.index
    if board.winner is not None:
        assert table.loc[board.winner, "reliable"]
        assert table.loc[board.winner, "uplift_lcb"] == table.loc[table["reliable"].astype(bool), "uplift_lcb"].max()
    for name, row in distrusted.iterrows():
        assert f"{name} {row['uplift_lcb']:.4g}" in board.decision.split("flagged unreliable")[1]
    assert "flagged unreliable" in board.summary()
    # The JSON that `causalrec plan --from-json` reads carries the flags, and a plan for a distrusted candidate
    # says that its effect rests on an unreliable estimate.
    from causalrec.planning import BinaryMetric, plan_from_offline, read_offline_evaluation

    payload = board.to_dict()
    flags = {c["policy"]: (c["reliable"], c["ess"]) for c in payload["comparisons"]}
    assert flags == {name: (bool(row["reliable"]), row["ess"]) for name, row in table.iterrows()}
    name = distrusted.index[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        plan = plan_from_offline(payload, BinaryMetric(baseline=float(feedback.reward.mean())), policy=name)
    assert any(f"{name!r}, the policy planned for, is flagged unreliable" in w for w in plan.warnings), plan.warnings
    # The uniform-random candidate is the logging policy of these logs: uplift exactly 0, se 0. The file stays
    # readable (it was refused whole: "comparisons.se must be a positive standard error"), and planning for that
    # candidate is refused by name.
    assert [c["policy"] for c in payload["comparisons"] if c["se"] == 0 and c["difference"] == 0] == ["random"]
    assert read_offline_evaluation(payload).same_as_baseline == ("random",)
    with pytest.raises(ValidationError, match="'random', whose uplift is exactly 0 with standard error 0"):
        plan_from_offline(payload, BinaryMetric(baseline=float(feedback.reward.mean())), policy="random")


def test_decision_rules_for_unreliable_candidates_and_baselines():
    """Each branch of the decision on a hand-made leaderboard: the best trusted bound wins, distrusted ones are
    named; only distrusted bounds above 0 give no winner; an unreliable baseline candidate gives none either."""
    from causalrec.selection import _decide

    table = pd.DataFrame({"candidate": ["a", "b", "c", "base"], "uplift": [0.3, 0.2, 0.1, 0.0],
                          "uplift_lcb": [0.05, 0.02, -0.01, 0.0], "reliable": [False, True, True, True]})
    winner, decision = _decide(table, "logging")
    assert winner == "b" and decision.startswith("b: estimated uplift 0.2 over logging")
    assert decision.endswith("not eligible, estimates flagged unreliable (see the warnings): a 0.05")
    winner, decision = _decide(table.assign(reliable=[False, False, True, True]), "logging")
    assert winner is None and "only simultaneous lower bounds above 0 rest on unreliable estimates" in decision
    assert decision.endswith("a 0.05, b 0.02")
    winner, decision = _decide(table.assign(reliable=[True, True, True, False]), "base")
    assert winner is None and "whose own estimate is flagged unreliable" in decision and "a 0.05, b 0.02" in decision
    assert _decide(table.assign(reliable=True), "base") == (
        "a", "a: estimated uplift 0.3 over base, simultaneous lower bound 0.05 > 0")
    assert _decide(table.assign(uplift_lcb=-0.1), "logging")[0] is None

"""The simulator's ground truth: exact values, determinism, and unbiased estimators converging to them."""

from __future__ import annotations

import numpy as np
import pytest

from causalrec import evaluate_policy, policy, simulate
from causalrec.exceptions import ValidationError


@pytest.fixture(scope="module")
def world():
    return simulate.make_world(n_users=300, n_items=20, n_positions=3, random_state=7)


def test_deterministic_under_a_seed(world):
    again = simulate.make_world(n_users=300, n_items=20, n_positions=3, random_state=7)
    np.testing.assert_array_equal(world.exposed_prob, again.exposed_prob)
    first, second = world.sample_logs(500, random_state=1), world.sample_logs(500, random_state=1)
    np.testing.assert_array_equal(first.action, second.action)
    np.testing.assert_array_equal(first.reward, second.reward)
    assert not np.array_equal(first.action, world.sample_logs(500, random_state=2).action)


def test_world_has_confounded_heterogeneous_partly_negative_effects(world):
    effect = world.true_effect
    assert (effect < 0).mean() > 0.05 and (effect > 0).mean() > 0.3
    # The logging policy favours relevant items, which also convert more often without exposure.
    assert np.corrcoef(world.logging_prob.ravel(), world.organic_prob.ravel())[0, 1] > 0.3
    np.testing.assert_allclose(world.logging_prob.sum(axis=1), 1.0)
    assert world.examination[0] == 1 and np.all(np.diff(world.examination) < 0)


def test_policy_value_equals_brute_force_sum(world):
    target = policy.softmax(world.relevance, temperature=0.5, n_positions=3)
    dense = target.to_dense()
    mu = world.organic_prob[:, :, None] + world.examination[None, None, :] * (
        world.exposed_prob - world.organic_prob
    )[:, :, None]
    assert world.policy_value(target) == pytest.approx((dense * mu).sum() / (300 * 3), rel=1e-12)


def test_logs_carry_exact_logging_probabilities(world):
    logs = world.sample_logs(2000, random_state=3)
    np.testing.assert_allclose(logs.pscore, world.logging_prob[logs.user_id, logs.action])
    np.testing.assert_array_equal(logs.context, world.user_features[logs.user_id])


def test_logging_policy_on_policy_equals_mean_reward_exactly(world):
    logs = world.sample_logs(5000, random_state=4)
    on_policy = world.logging_policy().take(logs.user_id)
    result = evaluate_policy(logs, on_policy, estimators=["ips", "snips"])
    assert result["ips"].value == pytest.approx(logs.reward.mean(), abs=1e-12)
    assert result["snips"].value == pytest.approx(logs.reward.mean(), abs=1e-12)
    # The mean reward itself estimates the exact on-policy value.
    assert abs(logs.reward.mean() - world.policy_value(world.logging_policy())) < 3 * result["ips"].se


@pytest.mark.parametrize("make", [lambda s: policy.softmax(s, 0.5, 3), lambda s: policy.epsilon_greedy(s, 0.3, 3)])
def test_ips_converges_to_exact_value_within_three_standard_errors(world, make):
    logs = world.sample_logs(200_000, random_state=5)
    truth = world.policy_value(make(world.relevance))
    result = evaluate_policy(logs, make(world.relevance[logs.user_id]), estimators=["ips", "snips"])
    for name in ("ips", "snips"):
        estimate = result[name]
        assert abs(estimate.value - truth) < 3 * estimate.se, (name, estimate, truth)
        assert estimate.se < 0.01


def test_exposure_sample_is_confounded_and_carries_the_truth(world):
    frame = world.sample_exposure(50_000, random_state=0)
    np.testing.assert_allclose(frame["true_effect"], world.true_effect[frame["user"], frame["item"]])
    treated = frame["treatment"] == 1
    # Exposure follows the score, and the score predicts the organic outcome: the naive contrast is biased.
    assert frame.loc[treated, "score"].mean() > frame.loc[~treated, "score"].mean() + 0.5
    naive = frame.loc[treated, "outcome"].mean() - frame.loc[~treated, "outcome"].mean()
    assert abs(naive - frame["true_effect"].mean()) > 0.02


def test_policy_value_matches_an_independent_monte_carlo_with_slot_dependent_targets():
    # Oracle: draw (user, slot) uniformly, an item from the target at that slot and a Bernoulli reward from
    # mu = p0 + (1 + l) ** -position_bias * (p1 - p0), written out here rather than taken from the world.
    small = simulate.make_world(n_users=40, n_items=6, n_positions=3, random_state=11)
    examination = (1.0 + np.arange(3)) ** -small.config["position_bias"]
    rng = np.random.default_rng(1)
    n = 1_000_000
    for target in (policy.greedy_top_k(small.relevance, 3), policy.epsilon_greedy(small.relevance, 0.3, 3)):
        dense = target.to_dense()
        users, slots = rng.integers(0, 40, n), rng.integers(0, 3, n)
        items = np.minimum((rng.random(n)[:, None] > dense[users, :, slots].cumsum(axis=1)).sum(axis=1), 5)
        p0, p1 = small.organic_prob[users, items], small.exposed_prob[users, items]
        rewards = rng.random(n) < p0 + examination[slots] * (p1 - p0)
        se = rewards.std() / np.sqrt(n)
        assert abs(rewards.mean() - small.policy_value(target)) < 4 * se


def test_logged_items_follow_the_reported_propensities():
    small = simulate.make_world(n_users=30, n_items=5, n_positions=2, random_state=3)
    logs = small.sample_logs(300_000, random_state=0)
    counts = np.zeros((30, 5))
    np.add.at(counts, (logs.user_id, logs.action), 1)
    per_user = counts.sum(axis=1, keepdims=True)
    expected = small.logging_prob * per_user
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 30 * 4 + 5 * np.sqrt(2 * 30 * 4)  # chi-square with 120 degrees of freedom, ~5 sd margin
    np.testing.assert_allclose(np.bincount(logs.position) / logs.n_rounds, 0.5, atol=0.005)


def test_policy_value_refuses_targets_that_do_not_fit_the_world(world):
    # A 1-slot table read at slot 1 returned the *next* user's distribution: a silently wrong truth.
    one_slot = policy.softmax(world.relevance[:2], 0.5, n_positions=1)
    with pytest.raises(ValidationError, match="'positions'.*found 1"):
        world.policy_value(one_slot, users=[0, 1], positions=[1, 0])
    with pytest.raises(ValidationError, match="3 slots; found 1 slots"):
        world.policy_value(policy.softmax(world.relevance, 0.5, n_positions=1))
    with pytest.raises(ValidationError, match="20 items; found 4 actions"):
        world.policy_value(policy.softmax(np.zeros((300, 4)), 1.0, 3))
    target = policy.softmax(world.relevance[:2], 1.0, 3)
    with pytest.raises(ValidationError, match="'users'.*found -1"):
        world.policy_value(target, users=[-1, 0])  # used to wrap around to the last user
    with pytest.raises(ValidationError, match="'positions'.*found -1"):
        world.policy_value(target, users=[0, 1], positions=[0, -1])


def test_custom_logging_probabilities_must_be_distributions(world):
    # Rows are normalised when sampling but pscore is read from the table: half-scaled rows logged half the
    # probability the items were actually drawn with.
    with pytest.raises(ValidationError, match="summing to 1.*row sum of 0.5"):
        world.sample_logs(100, random_state=0, logging_prob=world.logging_prob * 0.5)
    with pytest.raises(ValidationError, match=r"shape \(n_users, n_items\)"):
        world.sample_logs(100, random_state=0, logging_prob=world.logging_prob[:10])
    negative = world.logging_prob.copy()
    negative[0, :2] = [-0.1, negative[0, 1] + negative[0, 0] + 0.1]
    with pytest.raises(ValidationError, match="non-negative"):
        world.sample_logs(100, random_state=0, logging_prob=negative)
    one_hot = np.zeros_like(world.logging_prob)
    one_hot[:, -1] = 1.0
    logs = world.sample_logs(200, random_state=0, logging_prob=one_hot)
    assert set(logs.action) == {19} and np.all(logs.pscore == 1.0)


def test_make_world_refuses_degenerate_settings_and_keeps_a_clean_config():
    for bad in ({"n_user_features": 0}, {"n_item_features": 0}, {"relevance_scale": float("nan")},
                {"n_users": 10.5}, {"logging_noise": -1.0}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            simulate.make_world(**{"n_users": 20, "n_items": 5, "random_state": 0, **bad})
    config = simulate.make_world(n_users=20, n_items=5, random_state=0).config
    assert "name" not in config and "valid" not in config and config["n_users"] == 20
    with pytest.raises(ValidationError, match="n_rounds"):
        simulate.make_world(n_users=20, n_items=5, random_state=0).sample_logs(2.5)

"""The simulator's ground truth: exact values, determinism, and unbiased estimators converging to them."""

from __future__ import annotations

import numpy as np
import pytest

from causalrec import evaluate_policy, policy, simulate


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

"""Position bias: EM, harvesting and randomised estimates recover known examination probabilities; the
position-based weights are exactly unbiased under the position-based click model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from causalrec import LoggedFeedback, ValidationError, policy
from causalrec.exceptions import CausalrecWarning
from causalrec.exposure import (
    ExaminationEstimate,
    estimate_examination,
    examination_weights,
    position_based_weights,
    simulate_position_based_clicks,
)
from causalrec.ope import InverseProbabilityWeighting
from causalrec.ope.estimators import EstimatorInputs

THETA = (1.0 + np.arange(5)) ** -0.8


def _pbm_clicks(n: int, item_dependent_slots: bool, seed: int) -> tuple[LoggedFeedback, np.ndarray]:
    """Clicks from the position-based model P(click) = theta[slot] * gamma[item]."""
    rng = np.random.default_rng(seed)
    n_items, n_slots = 30, len(THETA)
    gamma = rng.uniform(0.05, 0.6, n_items)
    item = rng.integers(0, n_items, n)
    if item_dependent_slots:
        # Better items are shown higher (a ranker), with some jitter: the CTR per slot is confounded by quality.
        quality_rank = np.argsort(np.argsort(-gamma))
        slot = np.clip(quality_rank[item] * n_slots // n_items + rng.integers(-1, 2, n), 0, n_slots - 1)
    else:
        slot = rng.integers(0, n_slots, n)
    click = (rng.random(n) < THETA[slot] * gamma[item]).astype(float)
    return LoggedFeedback(action=item, reward=click, position=slot, n_actions=n_items, n_positions=n_slots), gamma


@pytest.fixture(scope="module")
def ranked_clicks():
    return _pbm_clicks(60_000, item_dependent_slots=True, seed=0)[0]


@pytest.fixture(scope="module")
def em_estimate(ranked_clicks):
    return estimate_examination(ranked_clicks, "em")


def test_em_recovers_known_examination_probabilities(em_estimate):
    estimate = em_estimate
    assert estimate.diagnostics["converged"]
    np.testing.assert_allclose(estimate.examination, THETA, atol=0.03)


def test_harvesting_recovers_examination_with_intervals(ranked_clicks):
    estimate = estimate_examination(ranked_clicks, "harvest")
    np.testing.assert_allclose(estimate.examination, THETA, atol=0.04)
    z = np.abs(estimate.examination[1:] - THETA[1:]) / estimate.standard_error[1:]
    assert (z < 4).all()


def test_harvested_intervals_cover_the_truth_at_their_level():
    # 300 ranked PBM logs of 20,000 clicks over 20 items: each pair of slots shares the clicks of a few items, and
    # the pairs share slots. The 95% intervals covered 82-83% when the pairs were treated as independent with a
    # sandwich over items; with the clicks' binomial covariance across pairs they cover at their level.
    theta = (1.0 + np.arange(4)) ** -0.7
    gamma = np.linspace(0.05, 0.6, 20)
    z = []
    for seed in range(300):
        clicks = simulate_position_based_clicks(20_000, theta, gamma, ranked=True, random_state=seed)
        estimate = estimate_examination(clicks, "harvest")
        z.append((estimate.examination[1:] - theta[1:] / theta[0]) / estimate.standard_error[1:])
    z = np.array(z)
    coverage = (np.abs(z) < 1.96).mean(axis=0)
    assert ((coverage > 0.90) & (coverage < 0.99)).all(), coverage  # 95% +- 4 binomial standard errors
    assert ((z.std(axis=0) > 0.88) & (z.std(axis=0) < 1.12)).all(), z.std(axis=0)


def test_em_intervals_cover_the_truth_at_their_level_and_agree_with_harvesting():
    # The same ranked PBM logs as above: EM's errors come from the likelihood's observed information with the
    # items' attractiveness profiled out. Both methods fit the same model; their estimates and errors agree.
    theta = (1.0 + np.arange(4)) ** -0.7
    gamma = np.linspace(0.05, 0.6, 20)
    z, gap, error_ratio = [], [], []
    for seed in range(300):
        clicks = simulate_position_based_clicks(20_000, theta, gamma, ranked=True, random_state=seed)
        em = estimate_examination(clicks, "em")
        assert em.diagnostics["converged"]
        z.append((em.examination[1:] - theta[1:] / theta[0]) / em.standard_error[1:])
        if seed < 30:
            harvest = estimate_examination(clicks, "harvest")
            gap.append((em.examination[1:] - harvest.examination[1:]) / harvest.standard_error[1:])
            error_ratio.append(em.standard_error[1:] / harvest.standard_error[1:])
    z = np.array(z)
    coverage = (np.abs(z) < 1.96).mean(axis=0)
    assert ((coverage > 0.90) & (coverage < 0.99)).all(), coverage  # 95% +- 4 binomial standard errors
    assert ((z.std(axis=0) > 0.88) & (z.std(axis=0) < 1.12)).all(), z.std(axis=0)
    assert np.abs(gap).max() < 0.5 and 0.8 < np.min(error_ratio) and np.max(error_ratio) < 1.25


@pytest.mark.parametrize(("options", "field"), [({"n_iterations": 0}, "n_iterations"), ({"tol": -1.0}, "tol"),
                                                ({"n_iterations": 2.5}, "n_iterations")])
def test_em_settings_are_checked(ranked_clicks, options, field):
    with pytest.raises(ValidationError) as error:
        estimate_examination(ranked_clicks, "em", **options)
    assert error.value.field == field


def test_em_warns_when_it_runs_out_of_iterations(ranked_clicks):
    with pytest.warns(CausalrecWarning, match=r"EM stopped at n_iterations=3 before its ratios"):
        early = estimate_examination(ranked_clicks, "em", n_iterations=3)
    assert not early.diagnostics["converged"] and early.diagnostics["n_iterations"] == 3


def test_em_on_cells_is_the_round_by_round_em():
    # The EM runs on (item, slot) cells; the round-by-round updates, written out here, give the same path.
    feedback, _ = _pbm_clicks(5_000, item_dependent_slots=True, seed=4)
    clicks, slots, items = feedback.reward, feedback.position, feedback.action
    theta, gamma = np.full(5, 0.5), np.clip(np.bincount(items, clicks, 30) / np.bincount(items, minlength=30) / 0.5,
                                             0.01, 0.99)
    for _ in range(40):
        t, g = theta[slots], gamma[items]
        examined = np.where(clicks > 0, 1.0, t * (1 - g) / (1 - t * g))
        attractive = np.where(clicks > 0, 1.0, (1 - t) * g / (1 - t * g))
        theta = np.clip(np.bincount(slots, examined, 5) / np.bincount(slots, minlength=5), 1e-6, 1 - 1e-6)
        gamma = np.clip(np.bincount(items, attractive, 30) / np.bincount(items, minlength=30), 1e-6, 1 - 1e-6)
    with pytest.warns(CausalrecWarning):
        cells = estimate_examination(feedback, "em", n_iterations=40)
    np.testing.assert_allclose(cells.examination, theta / theta[0], rtol=1e-10)
    np.testing.assert_allclose(cells.diagnostics["absolute_examination"], theta, rtol=1e-10)


def test_ctr_ratio_is_right_only_when_slots_are_randomised(ranked_clicks):
    confounded = estimate_examination(ranked_clicks, "randomized")
    assert confounded.examination[-1] < 0.5 * THETA[-1]  # good items sit on top: naive CTR ratios exaggerate bias
    randomised, _ = _pbm_clicks(60_000, item_dependent_slots=False, seed=1)
    estimate = estimate_examination(randomised, "randomized")
    z = np.abs(estimate.examination[1:] - THETA[1:]) / estimate.standard_error[1:]
    assert (z < 4).all()


def test_examination_weights_invert_the_examination():
    weights = examination_weights(np.array([0, 2, 4]), THETA)
    np.testing.assert_allclose(weights, 1 / THETA[[0, 2, 4]])
    np.testing.assert_allclose(examination_weights([4], THETA, clip=0.5), [2.0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"position": [0, -1]}, "position"),  # would wrap around to the last slot
        ({"position": [0, 5]}, "position"),  # 5 slots: 0..4
        ({"position": [0.5]}, "position"),
        ({"position": [0], "clip": -0.1}, "clip"),
        ({"position": [0], "clip": float("nan")}, "clip"),
    ],
)
def test_examination_weights_refuse_bad_positions_and_clip(kwargs, field):
    with pytest.raises(ValidationError) as error:
        examination_weights(examination=THETA, **kwargs)
    assert error.value.field == field


def test_position_based_weights_are_exactly_unbiased_under_the_pbm():
    # Enumerate every (context, slot, item) cell once with its logging probability: the expectation of the
    # weighted reward is then an exact sum, and must equal the target's value under the PBM.
    rng = np.random.default_rng(3)
    n_contexts, n_items, n_slots = 4, 6, 3
    theta = np.array([1.0, 0.6, 0.3])
    gamma = rng.uniform(0.1, 0.9, size=(n_contexts, n_items))
    logging_table = rng.dirichlet(np.ones(n_items), size=(n_contexts, n_slots)).transpose(0, 2, 1)  # (x, a, l)
    target_table = rng.dirichlet(np.ones(n_items) * 0.3, size=(n_contexts, n_slots)).transpose(0, 2, 1)
    context, item, slot = (grid.ravel() for grid in np.meshgrid(np.arange(n_contexts), np.arange(n_items),
                                                                 np.arange(n_slots), indexing="ij"))
    feedback = LoggedFeedback(action=item, reward=np.zeros(len(item)), position=slot, n_actions=n_items,
                              n_positions=n_slots, pscore=logging_table[context, item, slot])
    logging = policy.TableDistribution(logging_table, context)
    target = policy.TableDistribution(target_table, context)
    q = np.full(n_slots, 1 / n_slots)
    weights = position_based_weights(feedback, target, theta, logging=logging, slot_frequencies=q)
    mass = q[slot] * logging_table[context, item, slot] / n_contexts  # P(x) q(l) mu(a | x, l)
    expectation = np.sum(mass * weights * theta[slot] * gamma[context, item])
    truth = np.sum(q[None, None, :] * target_table * theta[None, None, :] * gamma[:, :, None]) / n_contexts
    assert expectation == pytest.approx(truth, rel=1e-12)


def test_position_based_ips_has_support_where_per_slot_ips_has_none():
    # The logger shows items at random slots; the target always puts its favourite at slot 0. Per-slot IPS
    # uses only rounds logged at the target's exact slot, the PBM weights use every impression of the item.
    rng = np.random.default_rng(5)
    n, n_items, n_slots = 40_000, 10, 3
    theta = np.array([1.0, 0.5, 0.25])
    gamma = rng.uniform(0.05, 0.5, n_items)
    item = rng.integers(0, n_items, n)
    slot = rng.integers(0, n_slots, n)
    click = (rng.random(n) < theta[slot] * gamma[item]).astype(float)
    feedback = LoggedFeedback(action=item, reward=click, position=slot, n_actions=n_items, n_positions=n_slots,
                              pscore=np.full(n, 1 / n_items))
    scores = np.tile(gamma, (n, 1))
    target = policy.greedy_top_k(scores, n_slots)
    truth = np.mean(theta * np.sort(gamma)[::-1][:n_slots])  # slot-averaged value of the greedy ranking
    examination = estimate_examination(feedback, "randomized")
    weights = position_based_weights(feedback, target, examination)
    value = InverseProbabilityWeighting().estimate(EstimatorInputs(feedback.reward, weights)).value
    assert value == pytest.approx(truth, rel=0.05)
    per_slot = target.prob_of(feedback.action, feedback.position) / feedback.pscore
    ess = lambda w: w.sum() ** 2 / np.square(w).sum()  # noqa: E731
    assert ess(weights) > 2 * ess(per_slot)


def test_the_click_simulator_follows_the_pbm():
    theta, gamma = np.array([1.0, 0.5]), np.array([0.8, 0.2])
    logs = simulate_position_based_clicks(40_000, theta, gamma, ranked=False, random_state=0)
    for slot in range(2):
        for item in range(2):
            cell = (logs.position == slot) & (logs.action == item)
            assert logs.reward[cell].mean() == pytest.approx(theta[slot] * gamma[item], abs=0.02)
    ranked = simulate_position_based_clicks(2000, theta, gamma, ranked=True, jitter=0, random_state=0)
    np.testing.assert_array_equal(ranked.position, (ranked.action == 1).astype(int))  # best item on top
    with pytest.raises(ValidationError) as error:
        simulate_position_based_clicks(10, [1.0], gamma)
    assert error.value.field == "examination"


def test_result_faces(em_estimate):
    estimate = em_estimate
    assert isinstance(estimate, ExaminationEstimate)
    assert list(estimate.to_frame().columns) == ["position", "examination", "se", "n_rounds", "n_clicks"]
    json.dumps(estimate.to_dict())
    assert "em" in repr(estimate)


def test_bad_input_names_the_field(ranked_clicks):
    ratings = LoggedFeedback(action=[0, 1], reward=[3.0, 4.0], position=[0, 1])
    with pytest.raises(ValidationError) as error:
        estimate_examination(ratings)
    assert error.value.field == "reward"
    single_slot = LoggedFeedback(action=[0, 1], reward=[0.0, 1.0])
    with pytest.raises(ValidationError) as error:
        estimate_examination(single_slot)
    assert error.value.field == "position"
    with pytest.raises(ValidationError) as error:
        estimate_examination(ranked_clicks, "magic")
    assert error.value.field == "method"
    with pytest.raises(ValidationError) as error:
        estimate_examination(ranked_clicks, relevance_key=np.zeros(3))
    assert error.value.field == "relevance_key"
    target = policy.uniform_random(ranked_clicks.n_rounds, ranked_clicks.n_actions, ranked_clicks.n_positions)
    with pytest.raises(ValidationError) as error:
        position_based_weights(ranked_clicks, target, [1.0, 0.5])
    assert error.value.field == "examination"
    with pytest.raises(ValidationError) as error:
        position_based_weights(ranked_clicks, target, THETA)  # no pscore and no logging policy
    assert error.value.field == "pscore"

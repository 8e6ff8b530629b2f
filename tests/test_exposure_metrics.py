"""Propensity-weighted losses and debiased metrics: unbiasedness against closed forms, the naive bias they
remove, and agreement with the naive metrics when nothing is missing."""

from __future__ import annotations

import numpy as np
import pytest

from causalrec import ValidationError
from causalrec.exposure import (
    clipping_bias,
    compare_offline_metrics,
    debiased_mse,
    debiased_ranking_metrics,
    doubly_robust_pseudo_ratings,
    estimate_risk,
    inverse_propensity_weights,
    ips_risk_variance,
    ranking_agreement,
    training_weights,
)
from causalrec.models.metrics import ranking_metrics

N_USERS, N_ITEMS = 40, 50


@pytest.fixture(scope="module")
def mnar():
    """Squared errors on a full matrix and observation propensities that grow with the error (MNAR)."""
    rng = np.random.default_rng(0)
    errors = rng.gamma(2.0, 0.5, size=(N_USERS, N_ITEMS))
    propensity = np.clip(0.05 + 0.25 * errors / errors.max() + 0.05 * rng.random(errors.shape), 0.02, 1.0)
    draws = rng.random((4000, N_USERS, N_ITEMS)) < propensity[None]
    return errors, propensity, draws


def test_ips_mse_is_unbiased_for_the_mcar_mse(mnar):
    errors, propensity, draws = mnar
    truth = errors.mean()
    # IPS on each draw: sum over observed cells of e / p, divided by the number of cells.
    ips = (draws * (errors / propensity)[None]).sum(axis=(1, 2)) / errors.size
    variance = ips_risk_variance(errors, propensity)
    assert abs(ips.mean() - truth) < 4 * np.sqrt(variance / len(ips))
    assert ips.var(ddof=1) == pytest.approx(variance, rel=0.1)  # the closed-form variance
    # The same through the public function on one draw.
    observed = draws[0]
    value = estimate_risk(errors[observed], propensity[observed], "ips", n_total=errors.size)
    assert value == pytest.approx(ips[0])


def test_naive_mse_is_biased_and_snips_is_not(mnar):
    errors, propensity, draws = mnar
    truth = errors.mean()
    naive = (draws * errors[None]).sum(axis=(1, 2)) / draws.sum(axis=(1, 2))
    inverse = draws / propensity[None]
    snips = (inverse * errors[None]).sum(axis=(1, 2)) / inverse.sum(axis=(1, 2))
    assert naive.mean() - truth > 10 * naive.std() / np.sqrt(len(naive))  # over-weights the large errors
    assert abs(snips.mean() - truth) < 0.02 * truth


def test_doubly_robust_risk(mnar):
    errors, propensity, draws = mnar
    truth = errors.mean()
    observed = draws[1]
    exact = estimate_risk(errors[observed], propensity[observed], "dr", errors.size, errors, errors[observed])
    assert exact == pytest.approx(truth)  # a perfect imputation: no error at all
    imputed = np.full_like(errors, 0.5)
    values = [
        estimate_risk(errors[o], propensity[o], "dr", errors.size, imputed, imputed[o]) for o in draws[:1500]
    ]
    assert abs(np.mean(values) - truth) < 4 * np.std(values) / np.sqrt(len(values))  # right propensities


def test_dr_pseudo_ratings_do_not_touch_the_imputation():
    imputed = np.full((2, 3), 2.0)
    pseudo = doubly_robust_pseudo_ratings(imputed, np.array([0, 1]), np.array([2, 0]), np.array([4.0, 1.0]),
                                          np.array([0.5, 0.25]))
    np.testing.assert_array_equal(imputed, 2.0)
    expected = np.full((2, 3), 2.0)
    expected[0, 2], expected[1, 0] = 2 + 2 / 0.5, 2 - 1 / 0.25
    np.testing.assert_allclose(pseudo, expected)


def test_weights_and_clipping_bias():
    propensity = np.array([0.5, 0.1, 0.01])
    np.testing.assert_allclose(inverse_propensity_weights(propensity), [2, 10, 100])
    np.testing.assert_allclose(inverse_propensity_weights(propensity, clip=0.05), [2, 10, 20])
    snips = training_weights(propensity, "snips")
    assert snips.sum() == pytest.approx(3)
    np.testing.assert_allclose(training_weights(propensity, "ips", n_total=300), np.array([2, 10, 100]) * 3 / 300)
    errors = np.array([1.0, 2.0, 3.0])
    unclipped = estimate_risk(errors, propensity, "ips", n_total=300)
    clipped = estimate_risk(errors, propensity, "ips", n_total=300, clip=0.05)
    assert clipping_bias(errors, propensity, 0.05, 300) == pytest.approx(clipped - unclipped)


def test_debiased_mse_wraps_the_estimators():
    y, prediction, propensity = np.array([1.0, 3.0]), np.array([2.0, 3.0]), np.array([0.5, 0.1])
    assert debiased_mse(y, prediction, estimator="naive") == pytest.approx(0.5)
    assert debiased_mse(y, prediction, propensity, "snips") == pytest.approx(2 / 12)
    assert debiased_mse(y, prediction, propensity, "ips", n_total=10) == pytest.approx(0.2)


@pytest.fixture(scope="module")
def exposure_world():
    """Relevant items per user independent of item popularity, an exposure that favours popular items, and two
    rankers: one by (noisy) true relevance, one by popularity."""
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 60
    popularity = rng.random(n_items)
    relevance_prob = 0.05 + 0.3 * rng.random((n_users, n_items))
    relevant = rng.random((n_users, n_items)) < relevance_prob
    propensity = (0.05 + 0.9 * popularity**3)[None].repeat(n_users, 0)
    exposed = rng.random((n_users, n_items)) < propensity
    observed = [np.flatnonzero(relevant[u] & exposed[u]) for u in range(n_users)]
    truth = [np.flatnonzero(relevant[u]) for u in range(n_users)]
    personal = relevance_prob + rng.normal(scale=0.1, size=relevance_prob.shape)
    by_popularity = np.tile(popularity, (n_users, 1))
    return {"observed": observed, "truth": truth, "propensity": propensity, "relevant": relevant,
            "scores": {"personalised": personal, "popularity": by_popularity}}


def test_ips_dcg_is_unbiased_for_the_full_information_dcg(exposure_world):
    world = exposure_world
    scores = world["scores"]["personalised"]
    rng = np.random.default_rng(2)
    # Exposure is independent of relevance given the propensity: redraw it many times.
    values = []
    for _ in range(100):
        exposed = rng.random(world["propensity"].shape) < world["propensity"]
        observed = [np.flatnonzero(world["relevant"][u] & exposed[u]) for u in range(len(exposed))]
        values.append(debiased_ranking_metrics(scores, observed, world["propensity"], ks=(10,))["dcg@10"])
    full = debiased_ranking_metrics(scores, world["truth"], np.ones_like(scores), ks=(10,))["dcg@10"]
    assert abs(np.mean(values) - full) < 4 * np.std(values) / np.sqrt(len(values))


def test_with_no_missingness_debiased_metrics_equal_the_naive_ones(exposure_world):
    world = exposure_world
    scores = world["scores"]["personalised"]
    naive = ranking_metrics(scores, world["truth"], ks=(5, 10))
    debiased = debiased_ranking_metrics(scores, world["truth"], np.ones_like(scores), ks=(5, 10))
    for name in ("ndcg@5", "ndcg@10", "recall@5", "recall@10"):
        assert debiased[name] == pytest.approx(naive[name], rel=1e-12)
    # Propensities may also come as one array per row, aligned with (unsorted) targets.
    shuffled = [t[::-1] for t in world["truth"]]
    aligned = debiased_ranking_metrics(scores, shuffled, [np.ones(len(t)) for t in shuffled], ks=(10,))
    assert aligned["ndcg@10"] == pytest.approx(naive["ndcg@10"])


def test_naive_ranking_metrics_favour_the_exposure_policy_and_debiased_ones_do_not(exposure_world):
    world = exposure_world
    table = compare_offline_metrics(world["scores"], world["observed"], world["propensity"], ks=(10,),
                                    true_targets=world["truth"])
    ndcg = table[table["metric"] == "ndcg@10"].set_index("model")
    assert ndcg.loc["personalised", "truth"] > ndcg.loc["popularity", "truth"]
    assert ndcg.loc["popularity", "naive"] > ndcg.loc["personalised", "naive"]  # naive mis-ranks
    assert ndcg.loc["personalised", "debiased"] > ndcg.loc["popularity", "debiased"]  # debiased does not
    assert ranking_agreement(table, "ndcg@10", "naive")["discordant_pairs"] == [("personalised", "popularity")]
    assert ranking_agreement(table, "ndcg@10", "debiased")["discordant_pairs"] == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: estimate_risk(np.ones(2), np.array([0.5, 0.0]), "snips"), "propensity"),
        (lambda: estimate_risk(np.ones(2), np.array([0.5, 0.5]), "magic"), "estimator"),
        (lambda: estimate_risk(np.ones(2), None, "ips"), "propensity"),
        (lambda: estimate_risk(np.ones(2), np.array([0.5, 0.5]), "ips"), "n_total"),
        (lambda: estimate_risk(np.ones(2), np.array([0.5, 0.5]), "dr", 10), "imputed_errors_all"),
        (lambda: estimate_risk(np.array([np.nan, 1.0]), np.array([0.5, 0.5]), "ips", 10), "errors"),
        (lambda: estimate_risk(np.array([np.nan, 1.0]), None, "naive"), "errors"),
        (lambda: estimate_risk(np.array([1.0, np.inf]), np.array([0.5, 0.5]), "snips"), "errors"),
        (lambda: estimate_risk(np.ones(2), np.array([0.5, 0.5]), "dr", 10, np.ones(10), np.ones(1)),
         "imputed_errors_observed"),
        (lambda: estimate_risk(np.ones(2), np.array([0.5, 0.5]), "dr", 10, np.ones(10), np.array([1.0, np.nan])),
         "imputed_errors_observed"),
        (lambda: estimate_risk(np.ones(2), np.array([0.5, 0.5]), "dr", 10, np.r_[np.nan, np.ones(9)], np.ones(2)),
         "imputed_errors_all"),
        (lambda: debiased_mse([np.nan, 2.0], [1.0, 2.0], np.array([0.5, 0.5])), "y_true"),
        (lambda: debiased_mse([1.0, 2.0], [1.0, np.inf], np.array([0.5, 0.5])), "y_pred"),
        (lambda: clipping_bias(np.ones(2), np.array([0.5, 0.5]), 0.6, None), "n_total"),
        (lambda: clipping_bias(np.ones(2), np.array([0.5, 0.5]), 0.0, 10), "clip"),
        (lambda: training_weights(np.array([0.5]), "dr"), "scheme"),
        (lambda: inverse_propensity_weights(np.array([0.5]), clip=2.0), "clip"),
        (lambda: debiased_mse([1.0, 2.0], [1.0], np.array([0.5, 0.5])), "y_pred"),
        (lambda: debiased_ranking_metrics(np.zeros((2, 3)), [[0], [1]], np.zeros((2, 3))), "propensity"),
        (lambda: debiased_ranking_metrics(np.zeros((2, 3)), [[0], [1]], np.ones((3, 3))), "propensity"),
        (lambda: debiased_ranking_metrics(np.zeros((2, 3)), [[0]], np.ones((2, 3))), "targets"),
        (lambda: debiased_ranking_metrics(np.zeros((2, 3)), [[0], [1]], np.ones((2, 3)), ks=(0,)), "ks"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValidationError) as error:
        call()
    assert error.value.field == field

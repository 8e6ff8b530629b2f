"""Observation propensities of MNAR ratings: the naive-Bayes formula, recovery from features, and Coat."""

from __future__ import annotations

import json

import numpy as np
import pytest

from causalrec import ValidationError
from causalrec.exposure import ObservationPropensityEstimate, estimate_observation_propensities
from causalrec.exposure.observation import cell_design


def test_naive_bayes_formula_by_hand():
    # 4 observed ratings in a 2 x 4 matrix (N = 8): P(O=1) = 1/2; P(r | O=1): r=5 -> 3/4, r=1 -> 1/4.
    users, items = np.array([0, 0, 1, 1]), np.array([0, 1, 2, 3])
    ratings = np.array([5.0, 5.0, 5.0, 1.0])
    mcar = np.array([1.0, 1.0, 1.0, 5.0])  # P(r): 5 -> 1/4, 1 -> 3/4 without smoothing
    estimate = estimate_observation_propensities(users, items, 2, 4, method="naive_bayes", ratings=ratings,
                                                 mcar_ratings=mcar, smoothing=0.0)
    expected_high = min(0.75 * 0.5 / 0.25, 1.0)  # capped at 1
    expected_low = 0.25 * 0.5 / 0.75
    np.testing.assert_allclose(estimate.propensity, [expected_high, expected_high, expected_high, expected_low])
    assert estimate.rating_factor == pytest.approx({1.0: 1 / 3, 5.0: 3.0})
    assert estimate.matrix is None


def test_features_recover_a_logistic_observation_model():
    rng = np.random.default_rng(0)
    n_users, n_items = 120, 80
    user_features = np.eye(4)[rng.integers(0, 4, n_users)]
    item_features = np.eye(5)[rng.integers(0, 5, n_items)]
    design = cell_design(user_features, item_features).toarray()
    coefficients = rng.normal(scale=1.0, size=design.shape[1])
    truth = 1 / (1 + np.exp(-(design @ coefficients - 2.0)))
    observed = np.flatnonzero(rng.random(truth.size) < truth)
    users, items = np.divmod(observed, n_items)
    estimate = estimate_observation_propensities(users, items, n_users, n_items, method="features",
                                                 user_features=user_features, item_features=item_features,
                                                 random_state=0, n_folds=3)
    assert np.corrcoef(estimate.matrix.ravel(), truth)[0, 1] > 0.9
    facts = estimate.diagnostics
    assert abs(facts["inverse_mass_ratio"] - 1) < 4 * facts["inverse_mass_ratio_se"]
    assert estimate.diagnostics["ece_quantile"] < 0.02
    np.testing.assert_allclose(estimate.propensity, estimate.matrix[users, items])
    json.dumps(estimate.to_dict())
    assert "features" in estimate.summary()


def test_popularity_and_clipping():
    users, items = np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0])
    # p = min(n_u n_i / n_obs, 1): user 0 has 3, user 1 has 1; item 0 has 2, items 1-2 have 1.
    plain = estimate_observation_propensities(users, items, 3, 3, method="popularity", clip=None, warn=False)
    np.testing.assert_allclose(plain.propensity, [1.0, 0.75, 0.75, 0.5])
    # A floor of 0.6 lifts the one propensity below it (user 1, item 0) and counts it.
    clipped = estimate_observation_propensities(users, items, 3, 3, method="popularity", clip=0.6, warn=False)
    np.testing.assert_allclose(clipped.propensity, [1.0, 0.75, 0.75, 0.6])
    assert clipped.diagnostics["n_clipped"] == 1
    assert clipped.diagnostics["inverse_mass_ratio"] == pytest.approx((1 + 2 / 0.75 + 1 / 0.6) / 9)
    assert isinstance(clipped, ObservationPropensityEstimate)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "magic"}, "method"),
        ({"method": "naive_bayes", "ratings": np.ones(2)}, "mcar_ratings"),
        ({"method": "naive_bayes"}, "ratings"),
        ({"method": "features"}, "user_features"),
        ({"method": "popularity", "clip": 0.0}, "clip"),
        ({"method": "popularity", "ratings": np.ones(3)}, "ratings"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValidationError) as error:
        estimate_observation_propensities(np.array([0, 1]), np.array([1, 1]), 2, 2, **kwargs)
    assert error.value.field == field


def test_cells_are_checked():
    with pytest.raises(ValidationError) as error:
        estimate_observation_propensities(np.array([0, 0]), np.array([1, 1]), 2, 2, method="popularity")
    assert error.value.field == "users/items" and error.value.row == 1
    with pytest.raises(ValidationError) as error:
        estimate_observation_propensities(np.array([0, 5]), np.array([1, 1]), 2, 2, method="popularity")
    assert error.value.field == "users"


@pytest.mark.data
def test_coat_feature_propensities_resemble_the_shipped_ones(coat):
    train = coat.train_ratings()
    estimate = estimate_observation_propensities(
        train["user"].to_numpy(), train["item"].to_numpy(), coat.n_users, coat.n_items, method="features",
        ratings=train["rating"].to_numpy(float), user_features=coat.user_features, item_features=coat.item_features,
        mcar_ratings=coat.test_ratings()["rating"].to_numpy(float), n_folds=2, random_state=0, warn=False,
    )
    assert np.corrcoef(estimate.matrix.ravel(), coat.propensities.ravel())[0, 1] > 0.9
    # Weighting by them moves the train rating distribution towards the MCAR one.
    assert estimate.diagnostics["ips_rating_distribution_tv"] < 0.5 * estimate.diagnostics["naive_rating_distribution_tv"]

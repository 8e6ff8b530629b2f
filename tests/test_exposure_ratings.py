"""Debiased training on self-selected ratings (``debias_ratings``): a simulated MNAR world whose missingness is known,
the reduction to naive training under missing-at-random, the cluster-robust standard error against statsmodels,
validation, and Coat against the published numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causalrec import ValidationError
from causalrec.exposure import RatingDebiasing, debias_ratings
from causalrec.exposure.ratings import _mean_se

GRID = {"n_factors": [4, 8], "l2": [0.3, 1.0]}
N_USERS, N_ITEMS = 200, 150


def mnar_world(seed: int, observed_by_rating=(0.01, 0.02, 0.04, 0.10, 0.25), test_per_user: int = 10):
    """Ratings 1-5 from a rank-3 model; a cell's rating is observed with a probability that grows with the rating
    (users rate what they like), the test ratings are drawn uniformly (MCAR). Returns train, test, the true
    observation propensity of each training rating."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(N_USERS, 3)), rng.normal(size=(N_ITEMS, 3))
    latent = u @ v.T / np.sqrt(3) + rng.normal(0, 0.3, (N_USERS, N_ITEMS))
    rating = 1 + np.searchsorted(np.quantile(latent, [0.3, 0.55, 0.75, 0.9]), latent)
    p = np.asarray(observed_by_rating)[rating - 1]
    users, items = np.nonzero(rng.random((N_USERS, N_ITEMS)) < p)
    train = pd.DataFrame({"user": users, "item": items, "rating": rating[users, items]})
    test_users = np.repeat(np.arange(N_USERS), test_per_user)
    test_items = np.concatenate([rng.choice(N_ITEMS, test_per_user, replace=False) for _ in range(N_USERS)])
    test = pd.DataFrame({"user": test_users, "item": test_items, "rating": rating[test_users, test_items]})
    return train, test, p[users, items]


@pytest.fixture(scope="module")
def world():
    return mnar_world(0)


@pytest.fixture(scope="module")
def with_true_propensities(world):
    train, test, propensity = world
    return debias_ratings(train, test, N_USERS, N_ITEMS, propensity=propensity, param_grid=GRID, random_state=0)


def test_weighting_by_the_true_propensities_predicts_random_ratings_better(world, with_true_propensities):
    result = with_true_propensities
    table = result.table.set_index("training")
    # Naive training learns from the high ratings users chose to give and overpredicts the random ones.
    assert table.loc["ips", "mcar_mse"] < 0.7 * table.loc["naive", "mcar_mse"]
    d = result.difference
    assert d["value"] == pytest.approx(table.loc["ips", "mcar_mse"] - table.loc["naive", "mcar_mse"])
    assert d["ci_low"] < d["value"] < d["ci_high"] < 0 and d["p_value"] < 1e-6
    assert list(table["validation"]) == ["naive", "snips"]  # each model chosen by its own risk estimate
    assert set(table["n_factors"]) <= {4, 8} and result.propensity_source == "given by the caller"
    assert (result.n_train, result.n_test, result.n_mcar_slice) == (len(world[0]), 2000, 0)


def test_a_naive_bayes_slice_is_left_out_of_the_scoring(world):
    train, test, _ = world
    result = debias_ratings(train, test, N_USERS, N_ITEMS, propensity="naive_bayes", param_grid=GRID, random_state=1)
    assert 0 < result.n_mcar_slice < 0.1 * len(test)
    assert result.n_test + result.n_mcar_slice == len(test)
    assert result.observation is not None and result.observation.method.startswith("naive_bayes")
    assert result.difference["ci_high"] < 0  # the slice's rating distribution corrects most of the bias


def test_under_missing_at_random_weighting_changes_nothing(world):
    # Equal propensities: the weighted loss is the naive one times a constant (its lambda is weighted alike), so the
    # two trainings give one model and the paired difference is exactly 0.
    train, test, _ = world
    result = debias_ratings(train, test, N_USERS, N_ITEMS, propensity=np.full(len(train), 0.05), param_grid=GRID,
                            random_state=0)
    mse = result.table.set_index("training")["mcar_mse"]
    assert mse["ips"] == pytest.approx(mse["naive"], rel=1e-9)
    assert result.difference["value"] == pytest.approx(0.0, abs=1e-9)


def test_the_standard_error_is_cluster_robust_by_user_as_in_statsmodels():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), rng.integers(3, 12, 40))
    values = rng.normal(size=40)[groups] + rng.normal(size=len(groups))  # a shared effect per user
    fit = sm.OLS(values, np.ones(len(values))).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert _mean_se(values, groups) == pytest.approx(float(fit.bse[0]), rel=1e-10)
    assert _mean_se(values, groups) > values.std(ddof=1) / np.sqrt(len(values))  # wider than the i.i.d. one


def test_result_faces(with_true_propensities):
    result = with_true_propensities
    assert isinstance(result, RatingDebiasing)
    payload = result.to_dict()
    assert payload["difference"]["value"] == result.difference["value"]
    assert [row["training"] for row in payload["table"]] == ["naive", "ips"]
    text = result.summary()
    assert "IPS minus naive MSE" in text and "given by the caller" in text


def test_inputs_are_checked_by_name_and_never_modified(world):
    train, test, propensity = world
    before = train.copy(), test.copy()
    cases = [
        (dict(train=train.drop(columns="rating")), r"field 'train' must be columns user, item, rating"),
        (dict(test=test.assign(user=test["user"] + N_USERS)), r"field 'test.user' must be integer indices in \[0, 200\)"),
        (dict(test=test.assign(rating=np.nan)), r"field 'test.rating' must be finite"),
        (dict(propensity=propensity[:-1]), r"field 'propensity' must be a method name or \d+ propensities"),
        (dict(propensity=np.zeros(len(train))), r"values outside \(0, 1\]"),
        (dict(propensity="magic"), r"field 'propensity' must be one of"),
        (dict(alpha=1.0), r"field 'alpha'"),
    ]
    for change, message in cases:
        arguments = dict(train=train, test=test, propensity=propensity, param_grid=GRID) | change
        with pytest.raises(ValidationError, match=message) as raised:
            debias_ratings(n_users=N_USERS, n_items=N_ITEMS, **arguments)
        assert str(raised.value).startswith("debias_ratings: field ")
    pd.testing.assert_frame_equal(train, before[0])
    pd.testing.assert_frame_equal(test, before[1])


def test_coat_matches_the_published_gain(coat):
    # Schnabel et al. 2016, Table 2: MF-Naive 1.202, MF-IPS 1.093 on Coat's random ratings.
    result = debias_ratings(coat.train_ratings(), coat.test_ratings(), coat.n_users, coat.n_items,
                            propensity="features", user_features=coat.user_features,
                            item_features=coat.item_features, param_grid={"n_factors": [16, 32], "l2": [0.3]},
                            rating_range=(1, 5), random_state=0)
    mse = result.table.set_index("training")["mcar_mse"]
    assert 1.15 < mse["naive"] < 1.26 and 1.04 < mse["ips"] < 1.12
    assert result.difference["ci_high"] < 0

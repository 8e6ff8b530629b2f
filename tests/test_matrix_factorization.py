"""Matrix factorisation with naive / IPS / SNIPS / doubly robust training: exact recovery, invariances, the MNAR
bias that propensity weighting removes, hyper-parameter search without test data, and Coat."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from causalrec import ValidationError
from causalrec.models.matrix_factorization import MatrixFactorization, select_matrix_factorization


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small matrices: one BLAS thread is faster than several fighting over shared cores.
    with threadpool_limits(1):
        yield


def _low_rank(n_users=60, n_items=50, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    users, items = rng.normal(size=(n_users, rank)), rng.normal(size=(n_items, rank))
    return 3.0 + 0.5 * rng.normal(size=(n_users, 1)) + 0.5 * rng.normal(size=(1, n_items)) + 0.6 * users @ items.T


def _all_cells(n_users, n_items):
    return np.column_stack([np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users)])


def test_recovers_a_fully_observed_low_rank_matrix():
    truth = _low_rank()
    cells = _all_cells(*truth.shape)
    model = MatrixFactorization(n_factors=3, l2=1e-6, n_iterations=300, tol=1e-12, random_state=0)
    assert model.fit(cells, truth.ravel()) is model
    assert np.sqrt(np.mean((model.predict_matrix() - truth) ** 2)) < 0.02
    assert np.all(np.diff(model.objective_) <= 1e-9 * model.objective_[:-1])  # ALS never increases the objective
    assert model.user_factors_.shape == (60, 3) and model.item_factors_.shape == (50, 3)


def test_scikit_learn_conventions_and_determinism():
    truth = _low_rank(seed=1)
    cells = _all_cells(*truth.shape)[::3]
    model = MatrixFactorization(n_factors=2, l2=0.1, random_state=4)
    assert clone(model).get_params() == model.get_params()
    first = clone(model).fit(cells, truth.ravel()[::3]).predict(cells)
    second = clone(model).fit(cells, truth.ravel()[::3]).predict(cells)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValidationError, match="fitted") as error:
        MatrixFactorization().predict(cells)  # not fitted
    assert error.value.field == "model"


def test_a_common_factor_of_the_weights_changes_nothing():
    truth = _low_rank(seed=2)
    rng = np.random.default_rng(2)
    cells = _all_cells(*truth.shape)
    keep = rng.random(len(cells)) < 0.3
    propensity = rng.uniform(0.1, 0.9, keep.sum())
    base = MatrixFactorization(n_factors=3, l2=0.1, weighting="snips", random_state=0)
    one = clone(base).fit(cells[keep], truth.ravel()[keep], propensity)
    scaled = clone(base).fit(cells[keep], truth.ravel()[keep], propensity, sample_weight=np.full(keep.sum(), 7.0))
    np.testing.assert_allclose(one.predict_matrix(), scaled.predict_matrix(), atol=1e-8)


@pytest.fixture(scope="module")
def mnar_world():
    """Ratings observed more often when they are high (self-selection), with known propensities."""
    rng = np.random.default_rng(3)
    truth = _low_rank(n_users=150, n_items=120, rank=3, seed=3)
    ratings = truth + rng.normal(scale=0.3, size=truth.shape)
    propensity = 1 / (1 + np.exp(-(-3.2 + 1.5 * (ratings - 3.0))))
    observed = rng.random(truth.shape) < propensity
    users, items = np.nonzero(observed)
    return {"truth": truth, "ratings": ratings, "cells": np.column_stack([users, items]),
            "y": ratings[users, items], "propensity": propensity[users, items]}


def _mcar_mse(model, world) -> float:
    return float(np.mean((model.predict_matrix() - world["ratings"]) ** 2))


def test_propensity_weighting_removes_the_mnar_bias(mnar_world):
    world = mnar_world
    kwargs = dict(n_factors=3, l2=0.05, random_state=0)
    shape = dict(n_users=150, n_items=120)
    naive = MatrixFactorization(weighting="naive", **kwargs).fit(world["cells"], world["y"], **shape)
    ips = MatrixFactorization(weighting="ips", **kwargs).fit(world["cells"], world["y"], world["propensity"], **shape)
    snips = MatrixFactorization(weighting="snips", **kwargs).fit(world["cells"], world["y"], world["propensity"],
                                                                 **shape)
    dr = MatrixFactorization(weighting="dr", **kwargs).fit(world["cells"], world["y"], world["propensity"], **shape)
    # Naive training learns the self-selected (high) ratings and overestimates the unobserved ones.
    assert naive.predict_matrix().mean() - world["ratings"].mean() > 0.3
    assert _mcar_mse(ips, world) < 0.8 * _mcar_mse(naive, world)
    assert _mcar_mse(snips, world) < 0.8 * _mcar_mse(naive, world)
    assert _mcar_mse(dr, world) < _mcar_mse(naive, world)


def test_dr_with_a_perfect_imputation_fits_the_truth(mnar_world):
    world = mnar_world
    truth = world["truth"]
    users, items = world["cells"].T
    noiseless = truth[users, items]
    dr = MatrixFactorization(n_factors=3, l2=1e-6, weighting="dr", imputation=truth, n_iterations=200,
                             random_state=0).fit(world["cells"], noiseless, world["propensity"], n_users=150,
                                                 n_items=120)
    assert np.sqrt(np.mean((dr.predict_matrix() - truth) ** 2)) < 0.02


def test_hyper_parameters_are_chosen_by_weighted_cross_validation(mnar_world):
    world = mnar_world
    selection = select_matrix_factorization(
        world["cells"], world["y"], world["propensity"], {"l2": [0.05, 5.0]},
        base=MatrixFactorization(n_factors=3, weighting="ips", n_iterations=20, random_state=0),
        n_splits=3, n_users=150, n_items=120, random_state=0,
    )
    assert selection.validation == "snips"
    assert list(selection.table["l2"]) == [0.05, 5.0]
    assert selection.best_params == {"l2": 0.05}
    assert selection.table["validation_risk"].iloc[0] < selection.table["validation_risk"].iloc[1]
    assert selection.model.l2 == 0.05 and hasattr(selection.model, "user_factors_")
    assert selection.to_dict()["best_params"] == {"l2": 0.05}


@pytest.mark.parametrize(
    ("model", "fit_kwargs", "field"),
    [
        (MatrixFactorization(weighting="magic"), {}, "weighting"),
        (MatrixFactorization(weighting="ips"), {}, "propensity"),
        (MatrixFactorization(weighting="ips"), {"propensity": np.zeros(3)}, "propensity"),
        (MatrixFactorization(l2=-1.0), {}, "l2"),
        (MatrixFactorization(n_factors=2.5), {}, "n_factors"),
        (MatrixFactorization(clip=0.0), {}, "clip"),
        (MatrixFactorization(weighting="dr", imputation="magic"), {"propensity": np.full(3, 0.5)}, "imputation"),
        (MatrixFactorization(), {"sample_weight": np.array([1.0, -1.0, 1.0])}, "sample_weight"),
    ],
)
def test_bad_input_names_the_field(model, fit_kwargs, field):
    cells, ratings = np.array([[0, 0], [1, 1], [1, 0]]), np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValidationError) as error:
        model.fit(cells, ratings, **fit_kwargs)
    assert error.value.field == field


def test_bad_pairs_and_ratings():
    with pytest.raises(ValidationError) as error:
        MatrixFactorization().fit(np.array([0, 1, 2]), np.ones(3))
    assert error.value.field == "X"
    with pytest.raises(ValidationError) as error:
        MatrixFactorization().fit(np.array([[0, 0], [1, 5]]), np.ones(2), n_items=3)
    assert error.value.field == "X (item column)" and error.value.row == 1
    with pytest.raises(ValidationError) as error:
        MatrixFactorization().fit(np.array([[0, 0], [1, 1]]), np.array([1.0, np.nan]))
    assert error.value.field == "y"


@pytest.mark.data
def test_coat_propensity_weighting_beats_naive_training(coat):
    train, test = coat.train_ratings(), coat.test_ratings()
    cells, ratings = train[["user", "item"]].to_numpy(), train["rating"].to_numpy(float)
    propensity = coat.propensities[cells[:, 0], cells[:, 1]]
    test_cells, test_ratings = test[["user", "item"]].to_numpy(), test["rating"].to_numpy(float)
    mse = {}
    for weighting in ("naive", "ips"):
        # Hyper-parameters from the benchmark's IPS-weighted cross-validation on the train ratings.
        model = MatrixFactorization(n_factors=16, l2=0.3, weighting=weighting, rating_range=(1, 5), random_state=0)
        model.fit(cells, ratings, propensity, n_users=coat.n_users, n_items=coat.n_items)
        mse[weighting] = float(np.mean((model.predict(test_cells) - test_ratings) ** 2))
    # Published reference (Schnabel et al., "Recommendations as Treatments", ICML 2016, Table 2, Coat MSE):
    # MF-IPS 1.093, MF-Naive 1.202. IPS training must reach about the published MSE and keep most of its gain.
    assert mse["ips"] <= 1.10
    assert mse["naive"] - mse["ips"] >= 0.08


@pytest.mark.parametrize(
    "weighting, extra",
    [("naive", {}), ("ips", {}), ("snips", {}), ("dr", {"imputation": 3.0}), ("dr", {"imputation": "ips"}),
     ("dr", {"imputation": "naive"})],
)
def test_a_zero_sample_weight_removes_the_rating(weighting, extra):
    rng = np.random.default_rng(5)
    n_users, n_items = 15, 12
    cells = _all_cells(n_users, n_items)
    cells = cells[rng.random(len(cells)) < 0.4]
    ratings = rng.integers(1, 6, size=len(cells)).astype(float)
    propensity = rng.uniform(0.2, 0.8, size=len(cells))
    weight = np.ones(len(cells))
    weight[rng.permutation(len(cells))[: len(cells) // 2]] = 0.0
    kept = weight > 0
    model = MatrixFactorization(n_factors=2, l2=0.5, weighting=weighting, n_iterations=200, tol=1e-12,
                                random_state=0, **extra)
    shape = dict(n_users=n_users, n_items=n_items)
    weighted = clone(model).fit(cells, ratings, propensity, sample_weight=weight, **shape).predict_matrix()
    only_kept = clone(model).fit(cells[kept], ratings[kept], propensity[kept], **shape).predict_matrix()
    unweighted = clone(model).fit(cells, ratings, propensity, **shape).predict_matrix()
    np.testing.assert_allclose(weighted, only_kept, atol=1e-6)
    assert np.abs(unweighted - only_kept).max() > 0.1  # the dropped ratings do matter

"""Debiased training of a rating model on self-selected (MNAR) ratings, scored on random (MCAR) ratings.

:func:`debias_ratings` runs the protocol of Schnabel et al., "Recommendations as Treatments: Debiasing Learning and
Evaluation", ICML 2016 (Section 6.4), for any data with a missing-not-at-random training set and a
missing-completely-at-random test set (Coat, Yahoo! R3):

1. observation propensities ``P(O_ui = 1)`` of the training cells, estimated by
   :func:`~causalrec.exposure.estimate_observation_propensities` (the naive-Bayes methods take a random slice of
   the MCAR ratings, which is then removed from the evaluation of *every* model) or given by the caller;
2. matrix factorisation trained naive and propensity-weighted (IPS), each with its hyper-parameters chosen by
   K-fold cross-validation on the training ratings only (naive held-out MSE for the naive model, the SNIPS
   propensity-weighted MSE for the weighted one);
3. both scored on the MCAR ratings: MSE with its standard error, and the paired difference (weighted minus
   naive) over the same test ratings with a two-sided normal interval. A user's test ratings share that user's
   errors, so the standard errors are cluster-robust by user, not the i.i.d. formula.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._checks import open_unit_interval
from causalrec._results import ResultMixin, to_jsonable
from causalrec._text import confidence_level
from causalrec.exceptions import ValidationError
from causalrec.exposure.observation import (
    OBSERVATION_METHODS,
    ObservationPropensityEstimate,
    estimate_observation_propensities,
)

_OWNER = "debias_ratings"
# The grid of benchmarks/exposure_coat.py.
DEFAULT_GRID: dict[str, list] = {"n_factors": [4, 8, 16, 32], "l2": [0.1, 0.2, 0.3, 0.5, 1.0]}
# Share of the MCAR ratings drawn as the randomised slice of the naive-Bayes propensity methods.
MCAR_SLICE_SHARE = 0.05
COLUMNS = ("user", "item", "rating")


@dataclass(frozen=True)
class RatingDebiasing(ResultMixin):
    """Naive against propensity-weighted matrix factorisation, scored on MCAR ratings.

    Attributes
    ----------
    table : DataFrame
        One row per training (``naive``, ``ips``): chosen hyper-parameters, cross-validated risk on the training
        ratings (``validation``: which risk), MSE on the MCAR ratings and its standard error.
    difference : dict
        ``ips`` minus ``naive`` MSE over the same MCAR ratings: ``value``, ``se``, ``ci_low``, ``ci_high``,
        ``p_value`` (paired; standard error cluster-robust by user; two-sided normal interval at ``alpha``).
    observation : ObservationPropensityEstimate or None
        The estimated propensities and their diagnostics (None when the caller gave propensities).
    propensity_source : str
        Where the propensities came from.
    n_train, n_test : int
        Training ratings, and MCAR ratings scored (after removing the slice the propensities used, if any).
    n_mcar_slice : int
        MCAR ratings used by the propensity model and left out of the scoring (0 for the other methods).
    alpha : float
        1 - confidence level of the difference's interval.
    """

    table: pd.DataFrame
    difference: dict
    observation: ObservationPropensityEstimate | None
    propensity_source: str
    n_train: int
    n_test: int
    n_mcar_slice: int
    alpha: float

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": to_jsonable(self.table),
            "difference": to_jsonable(self.difference),
            "observation_propensity": None if self.observation is None else self.observation.to_dict(),
            "propensity_source": self.propensity_source,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_mcar_slice": self.n_mcar_slice,
            "alpha": self.alpha,
        }

    def summary(self) -> str:
        d = self.difference
        level = confidence_level(self.alpha)
        lines = [
            f"Matrix factorisation on {self.n_train} self-selected ratings, scored on {self.n_test} random (MCAR) "
            f"ratings; propensities: {self.propensity_source}",
            self.table.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
            f"IPS minus naive MSE: {d['value']:+.4f} (se {d['se']:.4f}, {level} CI [{d['ci_low']:+.4f}, "
            f"{d['ci_high']:+.4f}], p = {d['p_value']:.3g}); negative = the weighted model predicts random ratings "
            "better",
        ]
        if self.n_mcar_slice:
            lines.append(f"{self.n_mcar_slice} MCAR ratings fed the propensity model and were left out of scoring.")
        return "\n".join(lines)


def _ratings(frame: Any, field: str, n_users: int, n_items: int) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(field, "a DataFrame with columns user, item, rating", type(frame).__name__,
                              owner=_OWNER)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError(field, "columns user, item, rating", f"no column {missing}", owner=_OWNER)
    if len(frame) == 0:
        raise ValidationError(field, "at least one rating", "0 rows", owner=_OWNER)
    out = frame.loc[:, list(COLUMNS)].copy()
    for column, bound in (("user", n_users), ("item", n_items)):
        values = out[column].to_numpy()
        if not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= bound:
            raise ValidationError(f"{field}.{column}", f"integer indices in [0, {bound})",
                                  f"dtype {values.dtype}, range [{values.min()}, {values.max()}]", owner=_OWNER)
    rating = out["rating"].to_numpy(dtype=np.float64)
    if not np.isfinite(rating).all():
        raise ValidationError(f"{field}.rating", "finite numbers", "NaN or infinity", owner=_OWNER)
    return out


def _mean_se(values: np.ndarray, groups: np.ndarray) -> float:
    """Standard error of the mean of ``values`` with the rows of one group (a user) dependent: the cluster-robust
    sandwich ``sqrt(G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2) / n`` over the G groups."""
    _, index = np.unique(groups, return_inverse=True)
    totals = np.bincount(index, weights=values - values.mean())
    n_groups = len(totals)
    if n_groups < 2:
        return float("nan")
    return float(np.sqrt(n_groups / (n_groups - 1) * np.sum(totals**2)) / len(values))


def debias_ratings(
    train: pd.DataFrame,
    test: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    propensity: str | np.ndarray = "features",
    user_features: np.ndarray | None = None,
    item_features: np.ndarray | None = None,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
    rating_range: tuple[float, float] | None = None,
    n_splits: int = 4,
    alpha: float = 0.05,
    random_state: int | None = None,
) -> RatingDebiasing:
    """Train naive and propensity-weighted matrix factorisation on ``train`` (MNAR) and score both on ``test`` (MCAR).

    ``train`` and ``test`` are frames with columns ``user, item, rating`` (0-based indices). ``propensity`` is an
    observation-propensity method of :func:`~causalrec.exposure.estimate_observation_propensities`
    (``features`` needs ``user_features`` and ``item_features``; ``naive_bayes`` and ``features_naive_bayes``
    draw a random 5% of ``test`` as their MCAR slice and leave it out of the scoring) or an array with one
    propensity per training rating. ``param_grid`` defaults to :data:`DEFAULT_GRID`; ``rating_range`` clips the
    predictions (default: the range of the training ratings). Neither frame is modified.
    """
    from causalrec.models.matrix_factorization import MatrixFactorization, select_matrix_factorization

    alpha = open_unit_interval(_OWNER, "alpha", alpha)
    train = _ratings(train, "train", n_users, n_items)
    test = _ratings(test, "test", n_users, n_items)
    cells = train[["user", "item"]].to_numpy()
    ratings = train["rating"].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(random_state)
    in_slice = np.zeros(len(test), dtype=bool)
    observation = None
    if isinstance(propensity, str):
        if propensity not in OBSERVATION_METHODS:
            raise ValidationError("propensity", f"one of {OBSERVATION_METHODS} or one propensity per training rating",
                                  repr(propensity), owner=_OWNER)
        mcar = None
        if propensity in ("naive_bayes", "features_naive_bayes"):
            in_slice = rng.random(len(test)) < MCAR_SLICE_SHARE
            mcar = test["rating"].to_numpy(dtype=np.float64)[in_slice]
        observation = estimate_observation_propensities(
            cells[:, 0], cells[:, 1], n_users, n_items, method=propensity, ratings=ratings,
            user_features=user_features, item_features=item_features, mcar_ratings=mcar,
            random_state=random_state, warn=False,
        )
        weights, source = observation.propensity, f"estimated by causalrec ({observation.method})"
    else:
        weights = np.asarray(propensity, dtype=np.float64)
        if weights.shape != (len(train),) or not np.isfinite(weights).all() or (weights <= 0).any() or (
                weights > 1).any():
            raise ValidationError("propensity", f"a method name or {len(train)} propensities in (0, 1]",
                                  f"shape {weights.shape}" if weights.shape != (len(train),) else
                                  "values outside (0, 1] or not finite", owner=_OWNER)
        source = "given by the caller"
    scored = test.loc[~in_slice]
    test_cells = scored[["user", "item"]].to_numpy()
    truth = scored["rating"].to_numpy(dtype=np.float64)
    users = scored["user"].to_numpy()
    low, high = rating_range if rating_range is not None else (float(ratings.min()), float(ratings.max()))
    grid = DEFAULT_GRID if param_grid is None else param_grid
    rows, errors = [], {}
    for weighting in ("naive", "ips"):
        base = MatrixFactorization(weighting=weighting, rating_range=(low, high), random_state=random_state)
        chosen = select_matrix_factorization(
            cells, ratings, None if weighting == "naive" else weights, param_grid=grid, base=base,
            n_splits=n_splits, n_users=n_users, n_items=n_items, random_state=random_state,
        )
        squared = (truth - chosen.model.predict(test_cells)) ** 2
        errors[weighting] = squared
        best = int(np.argmin(chosen.table["validation_risk"].to_numpy()))
        rows.append({"training": weighting, **chosen.best_params, "validation": chosen.validation,
                     "validation_risk": float(chosen.table["validation_risk"].iloc[best]),
                     "mcar_mse": float(squared.mean()),
                     "mcar_mse_se": _mean_se(squared, users)})
    paired = errors["ips"] - errors["naive"]
    value, se = float(paired.mean()), _mean_se(paired, users)
    z = stats.norm.ppf(1 - alpha / 2)
    p_value = float(2 * stats.norm.sf(abs(value) / se)) if se > 0 else (1.0 if value == 0 else 0.0)
    difference = {"value": value, "se": se, "ci_low": float(value - z * se), "ci_high": float(value + z * se),
                  "p_value": p_value}
    return RatingDebiasing(
        table=pd.DataFrame(rows), difference=difference, observation=observation, propensity_source=source,
        n_train=len(train), n_test=int(len(scored)), n_mcar_slice=int(in_slice.sum()), alpha=alpha,
    )


__all__ = ["DEFAULT_GRID", "RatingDebiasing", "debias_ratings"]

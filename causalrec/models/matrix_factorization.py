"""Matrix factorisation for explicit ratings with naive, IPS, SNIPS or doubly robust training.

The model predicts ``Yhat_ui = mu + a_u + b_i + p_u . q_i`` and minimises a weighted, regularised squared error

``sum_(u,i) w_ui (Y_ui - Yhat_ui)^2 + l2 * [sum_u W_u (|p_u|^2 + a_u^2) + sum_i W_i (|q_i|^2 + b_i^2)]``

with ``W_u = sum_i w_ui`` and ``W_i = sum_u w_ui`` (the weighted-lambda regularisation of ALS-WR, Zhou et al.,
"Large-scale parallel collaborative filtering for the Netflix Prize", AAIM 2008): a common factor of the weights
does not change the solution, so one ``l2`` means the same under every weighting. It is solved exactly by
alternating least squares (each half-step is a batch of small ridge regressions).

The weighting (Schnabel et al., "Recommendations as Treatments", ICML 2016; formulas in
:mod:`causalrec.exposure.weighting`) decides what the fit estimates:

* ``naive``: ``w = 1`` on the observed ratings: the fit of the self-selected (MNAR) ratings;
* ``ips`` / ``snips``: ``w proportional to 1 / p_ui`` on the observed ratings: an unbiased (IPS) or consistent
  (SNIPS) estimate of the squared error on *all* cells, i.e. of the error a uniformly random (MCAR) test set
  measures. The two losses differ by a common factor of the weights (``N`` against ``sum 1 / p``), which the
  weighted-lambda regularisation makes irrelevant: they train the same model (the distinction matters for
  evaluation, :func:`causalrec.exposure.debiased_mse`);
* ``dr``: the doubly robust risk, which for squared error equals an unweighted fit of the pseudo-ratings
  ``Ytilde + O (Y - Ytilde) / p`` on every cell (Wang et al., ICML 2019; derivation in
  :mod:`causalrec.exposure.weighting`), where ``Ytilde`` is an imputation (by default an IPS fit); a
  ``sample_weight`` ``s`` multiplies the correction, ``Ytilde + O s (Y - Ytilde) / p``.

Hyper-parameters are chosen without test data by :func:`select_matrix_factorization`: K-fold cross-validation on
the training ratings scored with the propensity-weighted (SNIPS) squared error, as in Schnabel et al.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin, clone

from causalrec._results import ResultMixin
from causalrec.exceptions import ValidationError
from causalrec.exposure.weighting import (
    check_propensity,
    doubly_robust_pseudo_ratings,
    estimate_risk,
    training_weights,
)

logger = logging.getLogger(__name__)
_OWNER = "MatrixFactorization"
WEIGHTINGS = ("naive", "ips", "snips", "dr")


def _check_pairs(X, n_users: int | None, n_items: int | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``X`` as (user, item) integer columns, with catalogue sizes."""
    pairs = np.asarray(X)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
        raise ValidationError("X", "a non-empty (n, 2) array of (user, item) indices", f"shape {pairs.shape}",
                              owner=_OWNER)
    if pairs.dtype.kind not in "iu":
        if pairs.dtype.kind != "f" or not np.all(np.isfinite(pairs)) or np.any(pairs != np.floor(pairs)):
            raise ValidationError("X", "integer user and item indices", f"dtype {pairs.dtype}", owner=_OWNER)
        pairs = pairs.astype(np.int64)
    users, items = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    if (pairs < 0).any():
        row = int(np.flatnonzero((pairs < 0).any(axis=1))[0])
        raise ValidationError("X", "non-negative indices", f"{pairs[row].tolist()}", row, owner=_OWNER)
    n_users = int(users.max()) + 1 if n_users is None else int(n_users)
    n_items = int(items.max()) + 1 if n_items is None else int(n_items)
    for name, values, size in (("X (user column)", users, n_users), ("X (item column)", items, n_items)):
        if values.max() >= size:
            row = int(np.flatnonzero(values >= size)[0])
            raise ValidationError(name, f"indices below {size}", f"{values[row]}", row, owner=_OWNER)
    return users, items, n_users, n_items


class MatrixFactorization(RegressorMixin, BaseEstimator):
    """Biased matrix factorisation trained by weighted alternating least squares (module docstring).

    Parameters
    ----------
    n_factors : int
        Latent dimension ``k``.
    l2 : float
        Regularisation strength (weighted-lambda, so comparable across weightings).
    weighting : {"naive", "ips", "snips", "dr"}
        Training loss; all but ``naive`` need ``propensity`` in :meth:`fit`.
    clip : float, optional
        Lower bound applied to the propensities (bounds the weights at ``1 / clip``; biases the IPS loss towards
        the naive one on the clipped cells, see :mod:`causalrec.exposure.weighting`).
    imputation : "ips", "naive", float or array (n_users, n_items)
        ``Ytilde`` for ``weighting="dr"``: an IPS or naive fit with the same hyper-parameters, a constant, or a
        matrix. On Coat (k = 16, l2 = 0.3, shipped propensities) DR reached an MCAR MSE of 1.14 with the IPS
        imputation and 1.32 with the naive one, against 1.08 for plain IPS: the pseudo-ratings
        ``Ytilde + (Y - Ytilde) / p`` are very noisy when propensities are small.
    n_iterations, tol : int, float
        At most ``n_iterations`` ALS sweeps; stops when the objective improves by less than ``tol`` (relative).
    init_scale : float
        Standard deviation of the random initial factors.
    rating_range : (float, float), optional
        Predictions are clipped to this range (e.g. ``(1, 5)``).
    random_state : int, optional
        Seed of the initial factors.

    Attributes
    ----------
    global_mean_, user_bias_, item_bias_, user_factors_, item_factors_ : learned parameters
    n_users_, n_items_ : catalogue sizes; n_iter_ : sweeps run; objective_ : objective after each sweep
    """

    def __init__(
        self,
        n_factors: int = 8,
        l2: float = 1.0,
        weighting: str = "naive",
        clip: float | None = None,
        imputation: str | float | np.ndarray = "ips",
        n_iterations: int = 50,
        tol: float = 1e-6,
        init_scale: float = 0.1,
        rating_range: tuple[float, float] | None = None,
        random_state: int | None = None,
    ):
        self.n_factors = n_factors
        self.l2 = l2
        self.weighting = weighting
        self.clip = clip
        self.imputation = imputation
        self.n_iterations = n_iterations
        self.tol = tol
        self.init_scale = init_scale
        self.rating_range = rating_range
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------- fit
    def fit(
        self,
        X,
        y,
        propensity=None,
        sample_weight=None,
        n_users: int | None = None,
        n_items: int | None = None,
        n_total: int | None = None,
    ) -> MatrixFactorization:
        """Fit on observed ratings ``y`` at the (user, item) pairs ``X``.

        ``propensity`` is each observed rating's probability of being observed (needed unless
        ``weighting="naive"``); ``sample_weight`` multiplies the training weights (under ``"dr"``, each rating's
        correction term and the imputation fit's weights), so a rating with weight 0 has no influence;
        ``n_users`` / ``n_items`` set the catalogue (default: the largest index + 1); ``n_total`` is ``N`` of the
        IPS loss (default ``n_users * n_items``).
        """
        self._check_params()
        users, items, n_users, n_items = _check_pairs(X, n_users, n_items)
        ratings = np.asarray(y, dtype=np.float64).reshape(-1)
        if ratings.shape[0] != users.shape[0]:
            raise ValidationError("y", f"one rating per row of X ({users.shape[0]})", f"{ratings.shape[0]}",
                                  owner=_OWNER)
        if not np.isfinite(ratings).all():
            row = int(np.flatnonzero(~np.isfinite(ratings))[0])
            raise ValidationError("y", "finite ratings", f"{ratings[row]!r}", row, owner=_OWNER)
        if self.weighting != "naive":
            if propensity is None:
                raise ValidationError("propensity", f"given for weighting={self.weighting!r}", "None", owner=_OWNER)
            propensity = check_propensity(propensity, "propensity", len(ratings))
        extra = np.ones(len(ratings))
        if sample_weight is not None:
            extra = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
            if extra.shape[0] != len(ratings) or not np.isfinite(extra).all() or (extra < 0).any():
                raise ValidationError("sample_weight", f"{len(ratings)} finite non-negative weights",
                                      f"shape {extra.shape}", owner=_OWNER)
        n_total = n_users * n_items if n_total is None else int(n_total)

        if self.weighting == "dr":
            imputed = self._imputation(users, items, ratings, propensity, n_users, n_items, extra)
            # sample_weight scales each rating's correction (Y - Ytilde) / p: weight 0 leaves the cell at Ytilde,
            # exactly as if the rating had not been observed.
            observed_imputed = imputed[users, items]
            weighted_ratings = observed_imputed + extra * (ratings - observed_imputed)
            pseudo = doubly_robust_pseudo_ratings(imputed, users, items, weighted_ratings, propensity, self.clip)
            weights: sp.csr_matrix | None = None  # unit weight on every cell
            targets: np.ndarray | sp.csr_matrix = pseudo
            self.imputed_mean_ = float(imputed.mean())
            entries = None
        else:
            if self.weighting == "naive":
                cell_weight = extra
            else:
                cell_weight = training_weights(propensity, self.weighting, self.clip, n_total) * extra
            weights = sp.csr_matrix((cell_weight, (users, items)), shape=(n_users, n_items))
            # A repeated (user, item) pair adds up in both matrices, which is the same loss.
            targets = sp.csr_matrix((cell_weight * ratings, (users, items)), shape=(n_users, n_items))
            entries = (users, items, ratings, cell_weight)
        self._als(weights, targets, n_users, n_items, entries)
        return self

    def _check_params(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValidationError("weighting", f"one of {WEIGHTINGS}", repr(self.weighting), owner=_OWNER)
        if not (isinstance(self.n_factors, int | np.integer) and self.n_factors >= 0):
            raise ValidationError("n_factors", "a non-negative integer", repr(self.n_factors), owner=_OWNER)
        if not (np.isfinite(self.l2) and self.l2 >= 0):
            raise ValidationError("l2", "a non-negative number", repr(self.l2), owner=_OWNER)
        if self.clip is not None and not 0 < self.clip <= 1:
            raise ValidationError("clip", "None or a lower bound in (0, 1]", repr(self.clip), owner=_OWNER)
        if not (isinstance(self.n_iterations, int | np.integer) and self.n_iterations >= 1):
            raise ValidationError("n_iterations", "a positive integer", repr(self.n_iterations), owner=_OWNER)

    def _imputation(self, users, items, ratings, propensity, n_users, n_items, extra) -> np.ndarray:
        imputation = self.imputation
        if isinstance(imputation, str):
            if imputation not in ("ips", "naive"):
                raise ValidationError("imputation", "'ips', 'naive', a number or an (n_users, n_items) array",
                                      repr(imputation), owner=_OWNER)
            base = clone(self).set_params(weighting=imputation, imputation="naive")
            base.fit(np.column_stack([users, items]), ratings, propensity, sample_weight=extra, n_users=n_users,
                     n_items=n_items)
            return base._raw_matrix()
        if np.ndim(imputation) == 0:
            return np.full((n_users, n_items), float(imputation))
        matrix = np.asarray(imputation, dtype=np.float64)
        if matrix.shape != (n_users, n_items) or not np.isfinite(matrix).all():
            raise ValidationError("imputation", f"a finite array of shape {(n_users, n_items)}", f"{matrix.shape}",
                                  owner=_OWNER)
        return matrix

    def _als(self, weights, targets, n_users: int, n_items: int, entries) -> None:
        """Alternating exact ridge solves of the objective in the module docstring."""
        rng = np.random.default_rng(self.random_state)
        k = int(self.n_factors)
        if weights is None:
            user_weight = np.full(n_users, float(n_items))
            item_weight = np.full(n_items, float(n_users))
            total_weight = float(n_users * n_items)
        else:
            user_weight = np.asarray(weights.sum(axis=1)).reshape(-1)
            item_weight = np.asarray(weights.sum(axis=0)).reshape(-1)
            total_weight = float(weights.sum())
        if total_weight <= 0:
            raise ValidationError("sample_weight", "a positive total weight", "all weights zero", owner=_OWNER)
        mean = float(targets.sum() / total_weight)
        user_factors = rng.normal(scale=self.init_scale, size=(n_users, k))
        item_factors = rng.normal(scale=self.init_scale, size=(n_items, k))
        user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
        weights_t = None if weights is None else weights.T.tocsr()
        targets_t = targets.T.tocsr() if sp.issparse(targets) else np.ascontiguousarray(targets.T)
        history: list[float] = []
        for _ in range(int(self.n_iterations)):
            user_factors, user_bias = self._half_step(weights, targets, item_factors, mean + item_bias, user_weight)
            item_factors, item_bias = self._half_step(weights_t, targets_t, user_factors, mean + user_bias,
                                                      item_weight)
            objective = self._objective(weights, targets, entries, mean, user_bias, item_bias, user_factors,
                                        item_factors, user_weight, item_weight)
            history.append(objective)
            if len(history) > 1 and history[-2] - objective <= self.tol * max(abs(history[-2]), 1e-12):
                break
        self.global_mean_ = mean
        self.user_bias_, self.item_bias_ = user_bias, item_bias
        self.user_factors_, self.item_factors_ = user_factors, item_factors
        self.n_users_, self.n_items_ = n_users, n_items
        self.n_iter_ = len(history)
        self.objective_ = np.asarray(history)
        logger.debug("MatrixFactorization(%s) converged after %d sweeps", self.weighting, self.n_iter_)

    def _half_step(self, weights, targets, other_factors, other_offset, own_weight):
        """Solve every row's ridge problem for ``[factors, bias]`` given the other side's factors and offsets.

        Row ``u`` minimises ``sum_i w_ui (y_ui - offset_i - x_u . [q_i, 1])^2 + l2 W_u |x_u|^2``; its normal
        equations use ``sum_i w_ui z_i z_i^T`` computed for all rows at once as ``W @ vec(z_i z_i^T)``. With unit
        weights on every cell (doubly robust pseudo-ratings) all rows share one normal matrix: one solve.
        """
        design = np.column_stack([other_factors, np.ones(other_factors.shape[0])])
        size = design.shape[1]
        if weights is None:  # unit weights on a dense matrix of targets
            gram = design.T @ design + (self.l2 * design.shape[0] + 1e-9) * np.eye(size)
            rhs = targets @ design - (other_offset @ design)[None, :]
            solution = np.linalg.solve(gram, rhs.T).T
            return solution[:, :-1], solution[:, -1]
        outer = np.einsum("ik,il->ikl", design, design).reshape(design.shape[0], size * size)
        gram = np.asarray(weights @ outer).reshape(-1, size, size)
        rhs = np.asarray(targets @ design) - np.asarray(weights @ (other_offset[:, None] * design))
        ridge = self.l2 * own_weight + 1e-9
        gram[:, np.arange(size), np.arange(size)] += ridge[:, None]
        solution = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
        return solution[:, :-1], solution[:, -1]

    def _objective(self, weights, targets, entries, mean, user_bias, item_bias, user_factors, item_factors,
                   user_weight, item_weight) -> float:
        if entries is not None:
            rows, columns, y, w = entries
            prediction = (mean + user_bias[rows] + item_bias[columns]
                          + np.einsum("ij,ij->i", user_factors[rows], item_factors[columns]))
            fit = float(np.sum(w * (y - prediction) ** 2))
        else:  # unit weights on every cell
            prediction = mean + user_bias[:, None] + item_bias[None, :] + user_factors @ item_factors.T
            fit = float(np.sum((targets - prediction) ** 2))
        penalty = self.l2 * (np.sum(user_weight * (np.sum(user_factors**2, axis=1) + user_bias**2))
                             + np.sum(item_weight * (np.sum(item_factors**2, axis=1) + item_bias**2)))
        return fit + float(penalty)

    # ------------------------------------------------------------------------------------------- predict
    def _raw_matrix(self) -> np.ndarray:
        return (self.global_mean_ + self.user_bias_[:, None] + self.item_bias_[None, :]
                + self.user_factors_ @ self.item_factors_.T)

    def _check_fitted(self) -> None:
        if not hasattr(self, "user_factors_"):
            raise ValidationError("model", "fitted (call fit first)", "an unfitted MatrixFactorization", owner=_OWNER)

    def _clip(self, values: np.ndarray) -> np.ndarray:
        if self.rating_range is None:
            return values
        low, high = self.rating_range
        return np.clip(values, low, high)

    def predict(self, X) -> np.ndarray:
        """Predicted ratings at the (user, item) pairs ``X``."""
        self._check_fitted()
        users, items, _, _ = _check_pairs(X, self.n_users_, self.n_items_)
        raw = (self.global_mean_ + self.user_bias_[users] + self.item_bias_[items]
               + np.einsum("ij,ij->i", self.user_factors_[users], self.item_factors_[items]))
        return self._clip(raw)

    def predict_matrix(self) -> np.ndarray:
        """Predicted ratings for every (user, item), shape ``(n_users_, n_items_)``."""
        self._check_fitted()
        return self._clip(self._raw_matrix())


# ----------------------------------------------------------------------------------------------- selection
@dataclass(frozen=True)
class MatrixFactorizationSelection(ResultMixin):
    """Cross-validated hyper-parameter search of :func:`select_matrix_factorization`.

    ``table`` has one row per candidate with its mean validation risk over folds; ``best_params`` the winner;
    ``validation`` names the risk estimator; ``model`` is the winner refitted on all training ratings.
    """

    best_params: dict
    validation: str
    table: pd.DataFrame
    model: Any

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def to_dict(self) -> dict:
        from causalrec._results import to_jsonable

        return {"best_params": to_jsonable(self.best_params), "validation": self.validation,
                "table": to_jsonable(self.table)}


def select_matrix_factorization(
    X,
    y,
    propensity=None,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
    base: MatrixFactorization | None = None,
    validation: str = "auto",
    n_splits: int = 4,
    n_users: int | None = None,
    n_items: int | None = None,
    random_state: int | None = None,
) -> MatrixFactorizationSelection:
    """Choose hyper-parameters by K-fold cross-validation *on the training ratings only*, then refit.

    Each candidate (the product of ``param_grid`` over ``base``'s parameters) is fit on ``n_splits - 1`` folds and
    scored on the held-out fold by ``validation``: ``"snips"`` (the propensity-weighted squared error
    ``sum e / p / sum 1 / p`` of the held-out ratings, an estimate of the MCAR error; Schnabel et al. 2016),
    ``"naive"`` (plain held-out MSE), or ``"auto"`` (naive for a naive model, SNIPS otherwise). Folds are drawn
    uniformly at random over the ratings with ``random_state``; ties go to the first candidate of the grid.
    """
    base = MatrixFactorization() if base is None else base
    users, items, n_users, n_items = _check_pairs(X, n_users, n_items)
    pairs = np.column_stack([users, items])
    ratings = np.asarray(y, dtype=np.float64)
    if validation == "auto":
        validation = "naive" if base.weighting == "naive" else "snips"
    if validation not in ("naive", "snips"):
        raise ValidationError("validation", "'auto', 'naive' or 'snips'", repr(validation), owner=_OWNER)
    if propensity is not None:
        propensity = check_propensity(propensity, "propensity", len(ratings))
    elif validation == "snips" or base.weighting != "naive":
        raise ValidationError("propensity", "given for propensity-weighted training or validation", "None",
                              owner=_OWNER)
    if not 2 <= n_splits <= len(ratings):
        raise ValidationError("n_splits", f"in [2, {len(ratings)}]", repr(n_splits), owner=_OWNER)
    grid = dict(param_grid or {})
    names = list(grid)
    candidates = [dict(zip(names, values, strict=True)) for values in product(*(grid[n] for n in names))] or [{}]
    rng = np.random.default_rng(random_state)
    fold = rng.permutation(len(ratings)) % n_splits
    rows = []
    for params in candidates:
        risks = []
        for k in range(n_splits):
            train, held_out = fold != k, fold == k
            model = clone(base).set_params(**params)
            model.fit(pairs[train], ratings[train], None if propensity is None else propensity[train],
                      n_users=n_users, n_items=n_items)
            errors = (ratings[held_out] - model.predict(pairs[held_out])) ** 2
            risks.append(estimate_risk(errors, None if propensity is None else propensity[held_out], validation))
        rows.append({**params, "validation_risk": float(np.mean(risks)), "validation_se": float(
            np.std(risks, ddof=1) / np.sqrt(n_splits))})
    table = pd.DataFrame(rows)
    best = int(np.argmin(table["validation_risk"].to_numpy()))
    best_params = candidates[best]
    model = clone(base).set_params(**best_params)
    model.fit(pairs, ratings, propensity, n_users=n_users, n_items=n_items)
    return MatrixFactorizationSelection(best_params=best_params, validation=validation, table=table, model=model)


__all__ = ["MatrixFactorization", "MatrixFactorizationSelection", "WEIGHTINGS", "select_matrix_factorization"]

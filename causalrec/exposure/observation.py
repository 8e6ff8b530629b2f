"""Observation (exposure) propensities of explicit ratings that are missing not at random.

In a rating matrix, ``O_ui = 1`` when user ``u``'s rating of item ``i`` is observed; users rate what they chose
to see and like, so observation depends on the rating (MNAR). ``p_ui = P(O_ui = 1)`` is what propensity-weighted
training and evaluation need (Schnabel et al., "Recommendations as Treatments: Debiasing Learning and
Evaluation", ICML 2016, Section 5). Estimators:

* ``"features"``: a classifier of ``O_ui`` on user features, item features and (``interactions=True``) their
  pairwise products, fit on all ``n_users x n_items`` cells (default: logistic regression), cross-fitted over
  cells. Needs no randomised data, but cannot see a dependence on the rating itself.
* ``"naive_bayes"``: ``P(O = 1 | r) = P(r | O = 1) P(O = 1) / P(r)`` with ``P(r | O = 1)`` and ``P(O = 1)``
  from the observed (MNAR) ratings and ``P(r)`` from a small missing-completely-at-random slice
  (``mcar_ratings``, e.g. 5% of a uniformly random test set; Laplace smoothing ``smoothing``); Schnabel et al.,
  Section 6.2. Any MCAR ratings used here must be removed from an evaluation set.
* ``"features_naive_bayes"``: both, under the assumption that the rating's selection ratio does not vary with
  the features: ``P(O = 1 | x, r) = P(O = 1 | x) P(r | O = 1) / P(r)`` (Bayes' rule with
  ``P(r | O = 1, x) / P(r | x) = P(r | O = 1) / P(r)``), capped at 1.
* ``"popularity"``: ``p_ui = n_u n_i / n_obs`` (user activity times item popularity, capped at 1), the
  independence model of the observed counts; a crude baseline.

Diagnostics: ``inverse_mass_ratio = sum_{O = 1} (1 / p_ui) / N`` has expectation 1 under correct propensities
(``E[sum O / p] = N``, variance ``sum (1 - p) / p / N^2``; a warning fires beyond 99.9% sampling error); for ``features`` the cross-fitted ``P(O = 1 | x)`` of every cell is checked for
calibration (quantile-bin ECE) and per-user counts (``sum_i p_ui`` against the ratings user ``u`` gave); with
``mcar_ratings`` the IPS-weighted distribution of the observed ratings is compared with the MCAR one (total
variation distance: 0 when the propensities undo the selection on ratings). Kish's effective sample size of
``1 / p`` says how many equally weighted ratings the weighted loss is worth.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from sklearn.base import clone

from causalrec._results import ResultMixin, to_jsonable
from causalrec.exceptions import CausalrecWarning, ValidationError
from causalrec.exposure import diagnostics as diag

_OWNER = "estimate_observation_propensities"
OBSERVATION_METHODS = ("features", "naive_bayes", "features_naive_bayes", "popularity")
PROPENSITY_FLOOR = 1e-6


@dataclass(frozen=True, eq=False, repr=False)
class ObservationPropensityEstimate(ResultMixin):
    """Estimated observation propensities of the observed cells and the evidence for trusting them.

    ``propensity[k]`` is ``P(O = 1)`` of the k-th observed cell ``(users[k], items[k])`` (after clipping);
    ``matrix`` holds ``P(O = 1 | x)`` for every cell when the method defines it without the rating
    (``features``, ``popularity``; cross-fitted for ``features``), else None; ``rating_factor`` maps each rating
    level to its naive-Bayes factor ``P(r | O = 1) / P(r)`` for the naive-Bayes methods.
    """

    propensity: np.ndarray
    method: str
    diagnostics: dict
    matrix: np.ndarray | None = None
    rating_factor: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (f"ObservationPropensityEstimate(method={self.method!r}, n_observed={len(self.propensity)}, "
                f"warnings={len(self.warnings)})")

    def to_frame(self) -> pd.DataFrame:
        rows = {k: v for k, v in self.diagnostics.items() if not isinstance(v, list | dict | tuple)}
        return pd.DataFrame({"diagnostic": list(rows), "value": [to_jsonable(v) for v in rows.values()]})

    def to_dict(self) -> dict:
        quantiles = np.quantile(self.propensity, [0.0, 0.01, 0.5, 0.99, 1.0])
        return {
            "method": self.method,
            "n_observed": int(len(self.propensity)),
            "propensity_quantiles": dict(zip(("min", "q01", "median", "q99", "max"), quantiles.tolist(), strict=True)),
            "rating_factor": to_jsonable(self.rating_factor),
            "diagnostics": to_jsonable(self.diagnostics),
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        header = f"Estimated observation propensities: {self.method}, {len(self.propensity)} observed cells"
        return "\n".join([header, *[f"WARNING: {w}" for w in self.warnings], diag.diagnostics_text(self.to_frame())])


def _check_cells(users, items, n_users, n_items) -> tuple[np.ndarray, np.ndarray]:
    users = np.asarray(users)
    items = np.asarray(items)
    if users.ndim != 1 or users.shape != items.shape or users.size == 0:
        raise ValidationError("users/items", "non-empty 1-D arrays of equal length", f"shapes {users.shape}, {items.shape}",
                              owner=_OWNER)
    for name, values, size in (("users", users, n_users), ("items", items, n_items)):
        if values.dtype.kind not in "iu":
            raise ValidationError(name, "integer indices", f"dtype {values.dtype}", owner=_OWNER)
        bad = (values < 0) | (values >= size)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValidationError(name, f"indices in [0, {size})", f"{values[row]}", row, owner=_OWNER)
    cells = users.astype(np.int64) * n_items + items
    if len(np.unique(cells)) != len(cells):
        row = int(np.flatnonzero(pd.Series(cells).duplicated().to_numpy())[0])
        raise ValidationError("users/items", "distinct observed cells", "a repeated (user, item)", row, owner=_OWNER)
    return users.astype(np.int64), items.astype(np.int64)


def _features(matrix, n_rows: int, name: str) -> sp.csr_matrix:
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n_rows or not np.isfinite(array).all():
        raise ValidationError(name, f"a finite 2-D array with {n_rows} rows", f"shape {array.shape}", owner=_OWNER)
    return sp.csr_matrix(array)


def cell_design(user_features, item_features, interactions: bool = True) -> sp.csr_matrix:
    """Sparse design of every (user, item) cell, row ``u * n_items + i``: ``[x_u, z_i, x_u (x) z_i]``.

    The pairwise block is the row-wise Kronecker product (``n_user_features * n_item_features`` columns), which
    lets a linear model express "this kind of user rates that kind of item" (Schnabel et al.'s propensity model).
    """
    users = sp.csr_matrix(user_features)
    items = sp.csr_matrix(item_features)
    n_users, n_items = users.shape[0], items.shape[0]
    user_rows = users[np.repeat(np.arange(n_users), n_items)]
    item_rows = items[np.tile(np.arange(n_items), n_users)]
    blocks = [user_rows, item_rows]
    if interactions:
        blocks += [user_rows[:, [j]].multiply(item_rows) for j in range(users.shape[1])]
    return sp.hstack(blocks, format="csr")


def _default_classifier(random_state):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=5000, random_state=random_state)


def _cross_fit_observation(classifier, design, observed: np.ndarray, n_folds: int, rng) -> np.ndarray:
    if not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ValidationError("n_folds", "an integer >= 2", repr(n_folds), owner=_OWNER)
    folds = rng.permutation(len(observed)) % n_folds
    probability = np.empty(len(observed))
    for fold in range(n_folds):
        train, test = folds != fold, folds == fold
        model = clone(classifier).fit(design[train], observed[train])
        positive = int(np.flatnonzero(np.asarray(model.classes_) == 1)[0])
        probability[test] = model.predict_proba(design[test])[:, positive]
    return probability


def _rating_factor(ratings: np.ndarray, mcar_ratings, smoothing: float) -> tuple[dict, np.ndarray]:
    """``P(r | O = 1) / P(r)`` per rating level (Laplace-smoothed MCAR frequencies), and its value per rating."""
    if mcar_ratings is None:
        raise ValidationError("mcar_ratings", "ratings from a missing-completely-at-random slice", "None",
                              owner=_OWNER)
    mcar = np.asarray(mcar_ratings, dtype=np.float64).reshape(-1)
    if mcar.size == 0 or not np.isfinite(mcar).all():
        raise ValidationError("mcar_ratings", "a non-empty array of finite ratings", f"{mcar.size} values", owner=_OWNER)
    if smoothing < 0:
        raise ValidationError("smoothing", "a non-negative pseudo-count", repr(smoothing), owner=_OWNER)
    levels = np.unique(np.concatenate([ratings, mcar]))
    observed_share = np.array([(ratings == level).mean() for level in levels])
    mcar_counts = np.array([(mcar == level).sum() for level in levels], dtype=np.float64)
    mcar_share = (mcar_counts + smoothing) / (mcar.size + smoothing * len(levels))
    if (mcar_share == 0).any():
        level = levels[np.flatnonzero(mcar_share == 0)[0]]
        raise ValidationError("mcar_ratings", "every observed rating level (or smoothing > 0)",
                              f"no MCAR rating equal to {level:g}", owner=_OWNER)
    factor = observed_share / mcar_share
    lookup = dict(zip(levels.tolist(), factor.tolist(), strict=True))
    return lookup, np.array([lookup[value] for value in ratings.tolist()])


def estimate_observation_propensities(
    users,
    items,
    n_users: int,
    n_items: int,
    *,
    method: str = "features",
    ratings=None,
    user_features=None,
    item_features=None,
    mcar_ratings=None,
    classifier=None,
    interactions: bool = True,
    smoothing: float = 1.0,
    n_folds: int = 5,
    clip: float | None = None,
    random_state: int | None = None,
    warn: bool = True,
) -> ObservationPropensityEstimate:
    """Estimate ``P(O_ui = 1)`` for each observed cell ``(users[k], items[k])`` (methods in the module docstring).

    Parameters
    ----------
    users, items : int arrays
        The observed cells (distinct) of an ``n_users x n_items`` matrix.
    ratings : array, optional
        The observed ratings (needed by the naive-Bayes methods and the rating-distribution check).
    user_features, item_features : arrays (n_users, d), (n_items, p)
        Features of the ``features`` methods.
    mcar_ratings : array, optional
        Ratings of a missing-completely-at-random slice (naive-Bayes methods; also enables the rating check).
    classifier : scikit-learn classifier, optional
        Replaces the default logistic regression of the ``features`` methods.
    interactions : bool
        Add the pairwise user x item feature products.
    smoothing : float
        Laplace pseudo-count of the MCAR rating frequencies.
    n_folds : int
        Cross-fitting folds over cells for the ``features`` model.
    clip : float, optional
        Lower bound on the propensities (weights at most ``1 / clip``; cost reported in the diagnostics).
    random_state : int, optional
        Seed of the folds and of the classifier.
    """
    if method not in OBSERVATION_METHODS:
        raise ValidationError("method", f"one of {OBSERVATION_METHODS}", repr(method), owner=_OWNER)
    if clip is not None and not 0 < clip <= 1:
        raise ValidationError("clip", "None or a lower bound in (0, 1]", repr(clip), owner=_OWNER)
    users, items = _check_cells(users, items, n_users, n_items)
    n_total, n_observed = n_users * n_items, len(users)
    if ratings is not None:
        ratings = np.asarray(ratings, dtype=np.float64).reshape(-1)
        if ratings.shape[0] != n_observed or not np.isfinite(ratings).all():
            raise ValidationError("ratings", f"{n_observed} finite ratings (one per observed cell)",
                                  f"{ratings.shape[0]} values", owner=_OWNER)
    rng = np.random.default_rng(random_state)
    facts: dict = {"method": method, "n_observed": n_observed, "n_cells": n_total,
                   "observed_share": n_observed / n_total}
    matrix = None
    rating_factor: dict = {}
    observed = np.zeros(n_total, dtype=np.int64)
    observed[users * n_items + items] = 1

    if method in ("features", "features_naive_bayes"):
        if user_features is None or item_features is None:
            raise ValidationError("user_features", f"given with item_features for method={method!r}", "None",
                                  owner=_OWNER)
        design = cell_design(_features(user_features, n_users, "user_features"),
                             _features(item_features, n_items, "item_features"), interactions)
        model = _default_classifier(random_state) if classifier is None else classifier
        flat = _cross_fit_observation(model, design, observed, n_folds, rng)
        matrix = np.clip(flat, PROPENSITY_FLOOR, 1.0).reshape(n_users, n_items)
        reliability = diag.reliability_table(observed.astype(np.float64), matrix.reshape(-1))
        counts = np.bincount(users, minlength=n_users)
        expected = matrix.sum(axis=1)
        spread = np.sqrt(np.maximum((matrix * (1 - matrix)).sum(axis=1), 1e-12))
        facts.update({
            "ece_quantile": diag.expected_calibration_error(reliability),
            "reliability": reliability,
            "user_count_share_beyond_3sd": float(np.mean(np.abs(counts - expected) / spread > 3)),
        })
        propensity = matrix[users, items]
        if method == "features_naive_bayes":
            if ratings is None:
                raise ValidationError("ratings", "given for the naive-Bayes factor", "None", owner=_OWNER)
            rating_factor, factor = _rating_factor(ratings, mcar_ratings, smoothing)
            propensity = np.minimum(propensity * factor, 1.0)
        label = f"{method} ({type(model).__name__}{' with pairwise interactions' if interactions else ''})"
    elif method == "naive_bayes":
        if ratings is None:
            raise ValidationError("ratings", "given for method='naive_bayes'", "None", owner=_OWNER)
        rating_factor, factor = _rating_factor(ratings, mcar_ratings, smoothing)
        propensity = np.minimum(factor * (n_observed / n_total), 1.0)
        label = "naive_bayes (P(r | O=1) P(O=1) / P(r), P(r) from the MCAR slice)"
    else:
        user_counts = np.bincount(users, minlength=n_users).astype(np.float64)
        item_counts = np.bincount(items, minlength=n_items).astype(np.float64)
        matrix = np.clip(np.outer(user_counts, item_counts) / n_observed, PROPENSITY_FLOOR, 1.0)
        propensity = matrix[users, items]
        label = "popularity (user activity x item popularity)"

    propensity = np.clip(propensity, PROPENSITY_FLOOR, 1.0)
    facts.update(diag.clipping_facts(propensity, clip))
    if clip is not None:
        propensity = np.maximum(propensity, clip)
    inverse = 1.0 / propensity
    ess = diag.kish_effective_sample_size(inverse)
    # E[sum O / p] = N and var(sum O / p) = sum (1 - p) / p, estimated by sum_{O = 1} (1 - p) / p^2.
    ratio_se = float(np.sqrt(np.sum((1 - propensity) * inverse**2)) / n_total)
    facts.update({"inverse_mass_ratio": float(inverse.sum() / n_total), "inverse_mass_ratio_se": ratio_se,
                  "ess": ess, "ess_share": ess / n_observed})
    if ratings is not None and mcar_ratings is not None:
        mcar = np.asarray(mcar_ratings, dtype=np.float64).reshape(-1)
        levels = np.unique(np.concatenate([ratings, mcar]))
        weighted = np.array([inverse[ratings == level].sum() for level in levels]) / inverse.sum()
        target = np.array([(mcar == level).mean() for level in levels])
        naive = np.array([(ratings == level).mean() for level in levels])
        facts["ips_rating_distribution_tv"] = float(0.5 * np.abs(weighted - target).sum())
        facts["naive_rating_distribution_tv"] = float(0.5 * np.abs(naive - target).sum())
    messages = list(diag.warnings_for({k: v for k, v in facts.items() if k in ("clip", "clipped_share",
                                                                                "weight_mass_removed")}))
    if abs(facts["inverse_mass_ratio"] - 1) > stats.norm.ppf(1 - diag.MEAN_WEIGHT_WARNING_LEVEL / 2) * ratio_se:
        messages.append(
            f"sum of 1 / propensity over the observed cells is {facts['inverse_mass_ratio']:.3f} times the number of "
            f"cells (+- {ratio_se:.3f}), not 1 within sampling error (99.9% level): the small propensities are off"
        )
    if facts["ess_share"] < diag.MIN_ESS_SHARE:
        messages.append(f"the weights leave an effective sample size of {ess:.1f} ratings ({facts['ess_share']:.2%})")
    if warn:
        for message in messages:
            warnings.warn(message, CausalrecWarning, stacklevel=2)
    propensity.flags.writeable = False
    if matrix is not None:
        matrix.flags.writeable = False
    return ObservationPropensityEstimate(
        propensity=propensity, method=label, diagnostics=facts, matrix=matrix, rating_factor=rating_factor,
        warnings=tuple(messages),
    )


__all__ = ["OBSERVATION_METHODS", "ObservationPropensityEstimate", "cell_design", "estimate_observation_propensities"]

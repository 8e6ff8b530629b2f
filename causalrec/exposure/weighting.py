"""Propensity-weighted losses: naive, IPS, SNIPS and doubly robust, for training and for evaluation.

Setting (Schnabel et al., "Recommendations as Treatments: Debiasing Learning and Evaluation", ICML 2016): a
prediction matrix ``Yhat`` is to be scored on *all* ``N = n_users x n_items`` cells by a per-cell loss
``e_ui = loss(Y_ui, Yhat_ui)`` (squared error for ratings), but only the cells with ``O_ui = 1`` are observed,
with observation propensity ``p_ui = P(O_ui = 1)``. The estimators of the full-matrix risk
``R = (1 / N) sum_ui e_ui`` are

* naive: ``(1 / |O|) sum_{O_ui = 1} e_ui``; biased whenever observation depends on the rating (MNAR);
* IPS: ``(1 / N) sum_{O_ui = 1} e_ui / p_ui``; unbiased when every ``p_ui > 0`` is right, with variance
  ``(1 / N^2) sum_ui e_ui^2 (1 - p_ui) / p_ui`` (observations independent given ``p``);
* SNIPS: ``sum_{O = 1} e_ui / p_ui / sum_{O = 1} 1 / p_ui`` (Swaminathan & Joachims, NeurIPS 2015):
  consistent, usually lower variance, no need to know ``N``;
* doubly robust (Dudik et al., ICML 2011; for ratings Wang et al., "Doubly Robust Joint Learning for
  Recommendation on Data Missing Not at Random", ICML 2019): with an imputed error ``ehat_ui``,
  ``(1 / N) sum_ui [ehat_ui + O_ui (e_ui - ehat_ui) / p_ui]``; unbiased if either the propensities or the
  imputed errors are right.

For squared error with an imputed *rating* ``Ytilde`` (``ehat = (Yhat - Ytilde)^2``), the doubly robust risk is,
up to a term free of ``Yhat``, the plain squared error against the pseudo-ratings
``Ydr_ui = Ytilde_ui + O_ui (Y_ui - Ytilde_ui) / p_ui`` on every cell: expanding, each cell's coefficient of
``Yhat^2`` is ``(1 - O/p) + O/p = 1``. Doubly robust training of a squared-loss model is therefore an unweighted
fit to :func:`doubly_robust_pseudo_ratings`.

Clipping a propensity from ``p`` to ``c > p`` caps its weight at ``1 / c``: the IPS risk then *under*-weights
those cells by the factor ``p / c`` and is biased by ``-(1 / N) sum_{p_ui < c} e_ui (1 - p_ui / c)`` (downwards for
a non-negative loss); the bias is reported, not hidden (:func:`clipping_bias`).
"""

from __future__ import annotations

import numpy as np

from causalrec._arrays import as_numeric, check_finite
from causalrec._checks import finite_number
from causalrec.exceptions import ValidationError

_OWNER = "exposure.weighting"
LOSS_ESTIMATORS = ("naive", "ips", "snips", "dr")


def _finite(values, name: str, n_rows: int | None = None, flatten: bool = False) -> np.ndarray:
    """A finite float array (flattened if asked; of ``n_rows`` values if given), or a ValidationError."""
    array = np.asarray(values)
    array = as_numeric(array.reshape(-1) if flatten else array, name, None, owner=_OWNER).astype(np.float64)
    if n_rows is not None and len(array) != n_rows:
        raise ValidationError(name, f"one value per observed cell ({n_rows}, as 'errors')", f"{len(array)} values",
                              owner=_OWNER)
    check_finite(array, name, owner=_OWNER)
    return array


def _n_total(n_total, n_observed: int) -> float:
    if n_total is None:
        raise ValidationError("n_total", f"the number of cells N >= {n_observed} observed", "None", owner=_OWNER)
    number = finite_number(_OWNER, "n_total", n_total)
    if number < max(n_observed, 1):
        raise ValidationError("n_total", f"the number of cells N >= {n_observed} observed", repr(n_total),
                              owner=_OWNER)
    return number


def check_propensity(propensity, name: str = "propensity", n_rows: int | None = None) -> np.ndarray:
    """A float array of probabilities in (0, 1], or a ValidationError naming ``name`` and the first bad row."""
    array = np.asarray(propensity, dtype=np.float64)
    if n_rows is not None and array.shape[0] != n_rows:
        raise ValidationError(name, f"one value per row ({n_rows})", f"{array.shape[0]} values", owner=_OWNER)
    bad = ~np.isfinite(array) | (array <= 0) | (array > 1)
    if bad.any():
        flat = int(np.flatnonzero(bad.reshape(-1))[0])
        raise ValidationError(name, "probabilities in (0, 1]", f"{array.reshape(-1)[flat]!r}", flat, owner=_OWNER)
    return array


def clip_propensity(propensity: np.ndarray, clip: float | None) -> np.ndarray:
    """``max(p, clip)``: a new array (``clip=None`` returns a copy)."""
    propensity = check_propensity(propensity)
    if clip is None:
        return propensity.copy()
    if not 0 < clip <= 1:
        raise ValidationError("clip", "a lower bound in (0, 1]", repr(clip), owner=_OWNER)
    return np.maximum(propensity, clip)


def inverse_propensity_weights(
    propensity, clip: float | None = None, self_normalize: bool = False
) -> np.ndarray:
    """``w_i = 1 / max(p_i, clip)``; with ``self_normalize`` rescaled to mean 1 over the given rows (SNIPS)."""
    weight = 1.0 / clip_propensity(propensity, clip)
    if self_normalize:
        weight = weight * (len(weight) / weight.sum())
    return weight


def training_weights(
    propensity, scheme: str = "ips", clip: float | None = None, n_total: int | None = None
) -> np.ndarray:
    """Per-observation weights of a propensity-weighted training loss ``sum_i w_i e_i``.

    ``naive``: 1. ``ips``: ``n_obs / (N p_i)`` (the IPS risk of the module docstring times ``n_obs``, so that
    the weights average about 1 and a regularisation strength means the same as for the naive loss; ``N`` is
    ``n_total`` or, if omitted, ``sum_i 1 / p_i``, its unbiased estimate, which makes IPS equal SNIPS).
    ``snips``: ``n_obs (1 / p_i) / sum_j 1 / p_j``. A minimiser does not change under a common factor of the
    weights, so IPS and SNIPS differ only through ``N``.
    """
    if scheme not in ("naive", "ips", "snips"):
        raise ValidationError("scheme", "'naive', 'ips' or 'snips' (doubly robust uses pseudo-ratings)",
                              repr(scheme), owner=_OWNER)
    propensity = check_propensity(propensity)
    n_obs = len(propensity)
    if scheme == "naive":
        return np.ones(n_obs)
    inverse = inverse_propensity_weights(propensity, clip)
    if scheme == "snips" or n_total is None:
        return inverse * (n_obs / inverse.sum())
    return inverse * (n_obs / float(n_total))


def doubly_robust_pseudo_ratings(
    imputed: np.ndarray, rows: np.ndarray, columns: np.ndarray, ratings: np.ndarray, propensity: np.ndarray,
    clip: float | None = None,
) -> np.ndarray:
    """``Ydr = Ytilde + O (Y - Ytilde) / p`` on the whole matrix (a new array; ``imputed`` is not modified).

    ``imputed`` is the ``(n_users, n_items)`` imputed rating matrix ``Ytilde``; the observed cells are
    ``(rows[i], columns[i])`` with rating ``ratings[i]`` and propensity ``propensity[i]``.
    """
    pseudo = np.array(imputed, dtype=np.float64, copy=True)
    propensity = clip_propensity(check_propensity(propensity, n_rows=len(ratings)), clip)
    pseudo[rows, columns] += (np.asarray(ratings, dtype=np.float64) - pseudo[rows, columns]) / propensity
    return pseudo


def estimate_risk(
    errors: np.ndarray,
    propensity: np.ndarray | None = None,
    estimator: str = "ips",
    n_total: int | None = None,
    imputed_errors_all: np.ndarray | None = None,
    imputed_errors_observed: np.ndarray | None = None,
    clip: float | None = None,
) -> float:
    """Estimate the full-matrix risk ``(1 / N) sum e_ui`` from the losses ``errors`` of the observed cells.

    ``estimator`` is one of ``naive, ips, snips, dr`` (formulas in the module docstring). ``ips`` and ``dr``
    need ``n_total = N``; ``dr`` needs the imputed errors of all ``N`` cells (``imputed_errors_all``, any shape)
    and of the observed cells (``imputed_errors_observed``, aligned with ``errors``). Losses and imputed errors
    must be finite (a NaN is refused, not propagated).
    """
    errors = _finite(errors, "errors")
    if estimator not in LOSS_ESTIMATORS:
        raise ValidationError("estimator", f"one of {LOSS_ESTIMATORS}", repr(estimator), owner=_OWNER)
    if estimator == "naive":
        return float(errors.mean())
    if propensity is None:
        raise ValidationError("propensity", f"given for the {estimator} estimator", "None", owner=_OWNER)
    weight = inverse_propensity_weights(check_propensity(propensity, n_rows=len(errors)), clip)
    if estimator == "snips":
        return float(np.sum(weight * errors) / np.sum(weight))
    n_total = _n_total(n_total, len(errors))
    if estimator == "ips":
        return float(np.sum(weight * errors) / n_total)
    if imputed_errors_all is None or imputed_errors_observed is None:
        raise ValidationError("imputed_errors_all", "given (with imputed_errors_observed) for 'dr'", "None",
                              owner=_OWNER)
    imputed_all = _finite(imputed_errors_all, "imputed_errors_all", flatten=True)
    if imputed_all.size != n_total:
        raise ValidationError("imputed_errors_all", f"one value per cell (N = {n_total})", f"{imputed_all.size}",
                              owner=_OWNER)
    imputed_observed = _finite(imputed_errors_observed, "imputed_errors_observed", n_rows=len(errors))
    correction = weight * (errors - imputed_observed)
    return float((imputed_all.sum() + correction.sum()) / n_total)


def ips_risk_variance(errors_all: np.ndarray, propensity_all: np.ndarray) -> float:
    """Exact variance of the IPS risk over independent observation draws ``O_ui ~ Bernoulli(p_ui)``:
    ``(1 / N^2) sum_ui e_ui^2 (1 - p_ui) / p_ui``, for full matrices of losses and propensities."""
    errors_all = np.asarray(errors_all, dtype=np.float64).reshape(-1)
    propensity_all = check_propensity(propensity_all).reshape(-1)
    n_total = errors_all.size
    return float(np.sum(errors_all**2 * (1 - propensity_all) / propensity_all) / n_total**2)


def clipping_bias(errors: np.ndarray, propensity: np.ndarray, clip: float, n_total: int) -> float:
    """Plug-in estimate of the bias that clipping at ``clip`` adds to the IPS risk:
    ``-(1 / N) sum_{observed, p < c} (e / p) (1 - p / c)`` (the clipped minus the unclipped estimate)."""
    errors = _finite(errors, "errors")
    propensity = check_propensity(propensity, n_rows=len(errors))
    if clip is None:
        raise ValidationError("clip", "a lower bound in (0, 1]", "None", owner=_OWNER)
    clip_propensity(propensity, clip)  # validates clip
    n_total = _n_total(n_total, len(errors))
    below = propensity < clip
    return float(-np.sum(errors[below] / propensity[below] * (1 - propensity[below] / clip)) / n_total)

"""Ranking items by what showing them causes, and judging rankings by causal effect (Sato et al., RecSys 2020).

A recommender that ranks by predicted outcome ``P(Y = 1 | user, item)`` fills the list with items the user would
have bought anyway. Ranking by the estimated effect ``tau(user, item) = E[Y(1) - Y(0)]`` fills it with items whose
recommendation changes behaviour (Sato, Takemori, Singh, Ohkuma, "Unbiased learning for the causal effect of
recommendation", RecSys 2020).

Metrics over users ``u`` with a ranking ``pi_u`` of their candidate items (``pi_u(r)`` is the item at rank r):

* causal precision@k: ``CP@k = mean_u (1 / k) sum_{r <= k} tau(u, pi_u(r))``;
* causal DCG@k: ``CDCG@k = mean_u sum_{r <= k} tau(u, pi_u(r)) / log2(1 + r)``.

``tau`` is the known effect in (semi-)synthetic data. On exposure logs it is replaced by the IPS estimate
(Sato et al. 2020, eq. 6), unbiased for ``tau`` when the exposure propensity ``P(Z = 1 | u, i)`` is right::

    tau_hat(u, i) = Z Y / P - (1 - Z) Y / (1 - P)

Propensities are clipped to ``[clip, 1 - clip]``, ``0 <= clip < 0.5`` (a bias-variance trade, Sato et al. use the
same device).
Users with fewer than ``k`` candidates contribute their whole list (CP divides by ``k`` regardless). Ties in the
ranking score are broken by row order (stable sort): give distinct scores if that matters. Intervals: normal
intervals over users (each user's value is one independent term).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._arrays import as_numeric, check_finite
from causalrec._checks import non_negative
from causalrec._results import ResultMixin
from causalrec.exceptions import ValidationError

_OWNER = "ranking"


@dataclass(frozen=True)
class RankingMetric(ResultMixin):
    """A per-user-averaged ranking metric with its standard error and normal interval over users."""

    metric: str
    k: int
    value: float
    se: float
    ci_low: float
    ci_high: float
    n_users: int

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self._row()])


def _rank_within_users(users: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row order sorted by (user, descending score), each row's 0-based rank in its user, and user codes."""
    codes, users_index = np.unique(users, return_inverse=True)
    order = np.lexsort((np.arange(len(scores)), -scores, users_index))
    sorted_users = users_index[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.arange(len(order)) - group_start
    return order, rank, sorted_users


def _check(users, scores, effects) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    users = np.asarray(users).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    effects = np.asarray(effects, dtype=np.float64).ravel()
    if not len(users) == len(scores) == len(effects):
        raise ValidationError("users/scores/effects", "arrays of one length",
                              f"{len(users)}, {len(scores)}, {len(effects)}", owner=_OWNER)
    for name, array in (("scores", scores), ("effects", effects)):
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise ValidationError(name, "finite numbers", repr(array[bad[0]]), row=int(bad[0]), owner=_OWNER)
    return users, scores, effects


def _per_user_metric(name, users, scores, effects, k, discount, alpha) -> RankingMetric:
    if k < 1:
        raise ValidationError("k", "a positive integer", repr(k), owner=_OWNER)
    users, scores, effects = _check(users, scores, effects)
    order, rank, sorted_users = _rank_within_users(users, scores)
    in_top = rank < k
    weight = (1.0 / k) if not discount else 1.0 / np.log2(rank + 2.0)
    contribution = np.where(in_top, effects[order] * weight, 0.0)
    per_user = np.bincount(sorted_users, weights=contribution)
    n_users = len(per_user)
    value = float(per_user.mean())
    se = float(per_user.std(ddof=1) / np.sqrt(n_users)) if n_users > 1 else float("nan")
    z = stats.norm.ppf(1 - alpha / 2)
    return RankingMetric(name, int(k), value, se, value - z * se, value + z * se, n_users)


def causal_precision_at_k(users, scores, effects, k: int = 10, alpha: float = 0.05) -> RankingMetric:
    """``CP@k``: mean effect of the top ``k`` items by ``scores`` per user, averaged over users."""
    return _per_user_metric("causal_precision", users, scores, effects, k, False, alpha)


def causal_dcg_at_k(users, scores, effects, k: int = 10, alpha: float = 0.05) -> RankingMetric:
    """``CDCG@k``: effects of the top ``k`` items discounted by ``1 / log2(1 + rank)``, averaged over users."""
    return _per_user_metric("causal_dcg", users, scores, effects, k, True, alpha)


def ips_effect(exposure, outcome, propensity, clip: float = 0.01) -> np.ndarray:
    """Per-row IPS estimate of the effect of exposure: ``Z Y / P - (1 - Z) Y / (1 - P)`` (Sato et al. 2020).

    ``propensity`` holds probabilities in [0, 1], clipped to ``[clip, 1 - clip]`` with ``0 <= clip < 0.5``; with
    ``clip = 0`` every propensity must lie in (0, 1), since the estimate divides by ``P`` and ``1 - P``.
    """
    clip = non_negative(_OWNER, "clip", clip)
    if clip >= 0.5:
        raise ValidationError("clip", "in [0, 0.5) (propensities are clipped to [clip, 1 - clip])", repr(clip),
                              owner=_OWNER)
    z, y, p = (_column(values, name) for values, name in
               ((exposure, "exposure"), (outcome, "outcome"), (propensity, "propensity")))
    if not len(z) == len(y) == len(p):
        raise ValidationError("exposure/outcome/propensity", "arrays of one length", f"{len(z)}, {len(y)}, {len(p)}",
                              owner=_OWNER)
    bad = np.flatnonzero((z != 0) & (z != 1))
    if bad.size:
        raise ValidationError("exposure", "0/1 values", repr(z[bad[0]]), row=int(bad[0]), owner=_OWNER)
    check_finite(y, "outcome", owner=_OWNER)
    check_finite(p, "propensity", owner=_OWNER)
    outside = (p < 0) | (p > 1)
    if clip == 0:
        outside |= (p == 0) | (p == 1)
    bad = np.flatnonzero(outside)
    if bad.size:
        expected = "probabilities in [0, 1]" if clip > 0 else "probabilities in (0, 1) when clip = 0"
        raise ValidationError("propensity", expected, repr(p[bad[0]]), row=int(bad[0]), owner=_OWNER)
    p = np.clip(p, clip, 1 - clip)
    return z * y / p - (1 - z) * y / (1 - p)


def _column(values, name: str) -> np.ndarray:
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy()
    array = np.asarray(values)
    return as_numeric(array.reshape(-1) if array.ndim > 1 else array, name, None, owner=_OWNER).astype(np.float64)


def top_k(users, items, scores, k: int = 10) -> pd.DataFrame:
    """The ``k`` highest-scoring items of each user: columns ``user, item, score, rank`` (rank 1 = top)."""
    users = np.asarray(users).ravel()
    items = np.asarray(items).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order, rank, _ = _rank_within_users(users, scores)
    keep = rank < k
    rows = order[keep]
    return pd.DataFrame({"user": users[rows], "item": items[rows], "score": scores[rows], "rank": rank[keep] + 1})


def rank_by_effect(result, candidates: pd.DataFrame, user: str = "user", item: str = "item", k: int = 10) -> pd.DataFrame:
    """Recommend each user's ``k`` candidates with the largest estimated effect of exposure.

    ``result`` is an :class:`~causalrec.effects.estimate.EffectResult` (its CATE model scores each row of
    ``candidates``, which must carry the effect modifiers); returns :func:`top_k`'s table, ``score`` being the
    estimated effect.
    """
    return top_k(candidates[user].to_numpy(), candidates[item].to_numpy(), result.cate(candidates), k=k)

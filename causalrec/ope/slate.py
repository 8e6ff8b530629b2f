"""Off-policy estimators for ranked lists (slates) with a reward per slot.

A slate log has one row per (slate, slot): ``slate_id``, ``position`` and ``reward``. The value of a ranking
policy is the expected *sum* of slot rewards per slate. The three classical estimators differ in the importance
weight each slot's reward receives, i.e. in what they assume about how a slot's reward depends on the list:

* standard slate IPS (``sips``): the whole slate's probability ratio ``pi_e(slate) / pi_0(slate)``; no
  assumption, highest variance (Swaminathan et al., "Off-policy Evaluation for Slate Recommendation",
  NeurIPS 2017, the standard IPS baseline);
* independent IPS (``iips``): the ratio of the marginal probabilities of (item, position); assumes a slot's
  reward depends only on its own item (Li et al., "Offline Evaluation of Ranking Policies with Click Models",
  KDD 2018);
* reward-interaction IPS (``rips``): the ratio of the probabilities of the prefix up to the slot (the cascade
  assumption: a slot's reward depends on the items above it) (McInerney et al., "Counterfactual Evaluation of
  Slate Recommendations with Sequential Reward Interactions", KDD 2020).

All three: ``V = (1 / n_slates) sum_rows w_row r_row``, matching Open Bandit Pipeline 0.5.7. The analytic
interval treats slates as the independent units: the per-slate sums of ``w r`` are the influence terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._arrays import as_numeric, check_finite
from causalrec._checks import open_unit_interval
from causalrec._results import ResultMixin
from causalrec._text import split_names
from causalrec.exceptions import ValidationError

SLATE_ESTIMATORS = {
    "sips": "joint",
    "iips": "item_position",
    "rips": "cascade",
}
_OWNER = "evaluate_slate_policy"


@dataclass(frozen=True)
class SlateEstimate(ResultMixin):
    estimator: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    ess: float
    max_weight: float

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self._row()])


@dataclass(frozen=True)
class SlateEvaluation(ResultMixin):
    """Slate estimates of one target ranking policy."""

    estimates: tuple[SlateEstimate, ...]
    n_slates: int
    alpha: float

    def __getitem__(self, name: str) -> SlateEstimate:
        for estimate in self.estimates:
            if estimate.estimator == name:
                return estimate
        raise KeyError(name)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([e._row() for e in self.estimates])


def _probabilities(values, name: str, n_rows: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n_rows,):
        raise ValidationError(name, f"an array of length {n_rows} (one per row)", f"shape {array.shape}", owner=_OWNER)
    bad = ~np.isfinite(array) | (array < 0) | (array > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValidationError(name, "probabilities in [0, 1]", repr(array[row]), row, owner=_OWNER)
    return array


def evaluate_slate_policy(
    slate_id: np.ndarray,
    reward: np.ndarray,
    behavior_pscore: Mapping[str, np.ndarray],
    evaluation_pscore: Mapping[str, np.ndarray],
    estimators: Sequence[str] | str = ("sips", "iips", "rips"),
    alpha: float = 0.05,
) -> SlateEvaluation:
    """Estimate a ranking policy's expected total reward per slate.

    ``behavior_pscore`` and ``evaluation_pscore`` map the kind of probability each estimator needs (``"joint"``
    for sips, ``"item_position"`` for iips, ``"cascade"`` for rips) to per-row arrays: the logging / target
    policy's probability of the logged slate, of the logged item at its slot, and of the logged prefix down to
    the row's slot.
    """
    if isinstance(estimators, str):
        estimators = split_names(estimators)
    estimators = list(estimators)
    if not estimators or len(set(estimators)) != len(estimators):
        raise ValidationError("estimators", f"one or more distinct names among {sorted(SLATE_ESTIMATORS)}",
                              repr(estimators), owner=_OWNER)
    alpha = open_unit_interval(_OWNER, "alpha", alpha)
    slate_id = np.asarray(slate_id)
    n_rows = len(slate_id)
    if slate_id.ndim != 1 or n_rows == 0:
        raise ValidationError("slate_id", "a non-empty 1-D array (one slate label per row)",
                              f"shape {slate_id.shape}", owner=_OWNER)
    missing = pd.isna(slate_id)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValidationError("slate_id", "a label on every row", repr(slate_id[row]), row, owner=_OWNER)
    reward = as_numeric(reward, "reward", n_rows, owner=_OWNER).astype(np.float64)
    check_finite(reward, "reward", owner=_OWNER)
    _, slate_index = np.unique(slate_id, return_inverse=True)
    n_slates = int(slate_index.max()) + 1
    z = stats.norm.ppf(1 - alpha / 2)
    results = []
    for name in estimators:
        if name not in SLATE_ESTIMATORS:
            raise ValidationError("estimators", f"names among {sorted(SLATE_ESTIMATORS)}", repr(name), owner=_OWNER)
        kind = SLATE_ESTIMATORS[name]
        for side, mapping in (("behavior_pscore", behavior_pscore), ("evaluation_pscore", evaluation_pscore)):
            if kind not in mapping:
                raise ValidationError(side, f"a {kind!r} entry for {name}", f"keys {sorted(mapping)}", owner=_OWNER)
        logging_probability = _probabilities(behavior_pscore[kind], f"behavior_pscore[{kind!r}]", n_rows)
        if (logging_probability <= 0).any():
            row = int(np.flatnonzero(logging_probability <= 0)[0])
            raise ValidationError(
                f"behavior_pscore[{kind!r}]", "positive (the logging policy produced these rows)", "0", row, owner=_OWNER
            )
        weight = _probabilities(evaluation_pscore[kind], f"evaluation_pscore[{kind!r}]", n_rows) / logging_probability
        per_slate = np.bincount(slate_index, weights=weight * reward, minlength=n_slates)
        value = float(per_slate.mean())
        se = float(per_slate.std(ddof=1) / np.sqrt(n_slates)) if n_slates > 1 else float("nan")
        ess = float(weight.sum() ** 2 / np.square(weight).sum()) if np.square(weight).sum() > 0 else 0.0
        results.append(SlateEstimate(name, value, se, value - z * se, value + z * se, ess, float(weight.max())))
    return SlateEvaluation(tuple(results), n_slates, alpha)

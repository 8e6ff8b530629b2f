"""Off-policy estimators of a target policy's value from logged feedback.

Notation shared by every estimator (documented once): for logged round ``i`` with action ``a_i`` at slot ``l_i``,
reward ``r_i`` and logging probability ``pi_0(a_i | x_i, l_i)`` (pscore),

* ``w_i = pi_e(a_i | x_i, l_i) / pi_0(a_i | x_i, l_i)`` is the importance weight of the target policy ``pi_e``;
* ``q(x, a, l)`` is a reward model, cross-fitted so that it never predicts a round it was trained on;
* ``qhat_i = q(x_i, a_i, l_i)`` and ``qbar_i = sum_a pi_e(a | x_i, l_i) q(x_i, a, l_i)``;
* ``lambda`` is an estimator's hyper-parameter (clipping threshold, switch threshold, shrinkage strength).

The semantics (including which quantity ``lambda`` acts on) are those of Open Bandit Pipeline 0.5.7, so point
estimates agree with it on identical inputs.

Every estimator is a smooth function of the means of a few per-round statistics: ``statistics(inputs)`` is an
``(n, k)`` array and ``combine(means)`` maps its column means to the value (identity for the linear estimators,
a ratio for the self-normalised ones). That single shape gives both intervals:

* analytic (Wald): the influence terms ``psi_i = value + grad(combine) . (s_i - mean)`` (the delta method), and
  ``value +- t * sd(psi) / sqrt(n)``; for self-normalised estimators this accounts for the estimated
  normaliser instead of treating it as known. ``t`` is the Student-t quantile with the Welch-Satterthwaite degrees
  of freedom of ``sd(psi)^2`` (from the kurtosis of ``psi``): with heavy-tailed weights the standard error is
  itself uncertain and the interval widens accordingly; with light tails ``t`` is the normal quantile. On
  rewards in [0, 1] the weighting estimators (IPS, clipped IPS, SNIPS) get the score (test-inversion) version of
  this interval instead (``causalrec.ope.inference.score_interval``): each candidate value is tested with the
  variance the estimator would have at that value, which stretches the upper limit when a few heavily weighted
  rewards could be missing from the sample (the Wilson-score correction of a rare-event Wald interval). The
  doubly robust family's terms are affine in the reward too once the cross-fitted reward model's predictions are
  fixed; it gets the union of the score and the Wald intervals (the working model holds those predictions
  fixed, and they vary across rows);
* bootstrap (``causalrec.ope.inference``): the statistics of all estimators are stacked and resampled with one
  shared set of weights, and ``combine`` is applied to each resample's means, so self-normalised estimators are
  renormalised per resample.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

from causalrec.exceptions import ValidationError


def check_threshold(value, owner: str) -> float:
    """``lambda``: a real number >= 0 (``inf`` allowed, meaning no clipping / switching / shrinkage), as OBP."""
    if isinstance(value, bool) or not isinstance(value, Real) or np.isnan(value) or value < 0:
        raise ValidationError("lambda_", "a number >= 0 (inf: no threshold)", repr(value), owner=owner)
    return float(value)


@dataclass(frozen=True)
class EstimatorInputs:
    """Per-round arrays shared by all estimators of one evaluation (computed once)."""

    reward: np.ndarray
    weight: np.ndarray
    q_logged: np.ndarray | None = None
    q_target: np.ndarray | None = None


@dataclass(frozen=True)
class EstimatorOutput:
    value: float
    influence: np.ndarray | None
    note: str = ""


class Estimator:
    """Base class: ``statistics(inputs) -> (n, k)`` and ``combine(means) -> value`` (vectorised over leading
    axes). ``name`` is the short key used in APIs and JSON; ``needs_reward_model`` says whether ``q`` is
    required; ``has_interval`` is False when sampling variance does not describe the error (DM)."""

    name: str = ""
    needs_reward_model: bool = False
    has_interval: bool = True

    def statistics(self, inputs: EstimatorInputs) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def combine(self, means: np.ndarray) -> np.ndarray:
        """Linear estimators: the value is the mean of their single statistic."""
        return means[..., 0]

    def gradient(self, means: np.ndarray) -> np.ndarray:
        return np.ones(1)

    def estimate(self, inputs: EstimatorInputs) -> EstimatorOutput:
        stats = self.statistics(inputs)
        means = stats.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = float(self.combine(means))
        if not np.isfinite(value):
            return EstimatorOutput(float("nan"), None, "undefined: all importance weights are zero")
        if stats.shape[1] == 1:
            influence = stats[:, 0]
        else:
            influence = value + (stats - means) @ self.gradient(means)
        return EstimatorOutput(value, influence, self.note())

    def note(self) -> str:
        return ""

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({inner})"


class _Ratio(Estimator):
    """``value = mean(s_0) / mean(s_1)``."""

    def combine(self, means):
        return means[..., 0] / means[..., 1]

    def gradient(self, means):
        return np.array([1 / means[1], -means[0] / means[1] ** 2])


class InverseProbabilityWeighting(Estimator):
    """IPS: ``V = mean_i min(w_i, lambda) r_i`` (``lambda = inf``: no clipping). Unbiased without clipping
    when the logging policy covers the target's support; clipping trades bias for variance.

    Horvitz & Thompson (1952); Strehl et al., "Learning from Logged Implicit Exploration Data", NeurIPS 2010.
    """

    name = "ips"

    def __init__(self, lambda_: float = np.inf):
        self.lambda_ = check_threshold(lambda_, type(self).__name__)

    def statistics(self, inputs):
        return (np.minimum(inputs.weight, self.lambda_) * inputs.reward)[:, None]


class SelfNormalizedInverseProbabilityWeighting(_Ratio):
    """SNIPS: ``V = sum_i w_i r_i / sum_i w_i``. Bounded by the reward range, consistent, slightly biased.

    Swaminathan & Joachims, "The Self-Normalized Estimator for Counterfactual Learning", NeurIPS 2015.
    """

    name = "snips"

    def statistics(self, inputs):
        return np.column_stack([inputs.weight * inputs.reward, inputs.weight])


class DirectMethod(Estimator):
    """DM: ``V = mean_i qbar_i``. Its error is the reward model's bias, which the data cannot reveal, so it
    gets no interval unless the caller bounds that bias (``dm_bias_bound`` in ``evaluate_policy``).

    Beygelzimer & Langford, "The Offset Tree for Learning with Partial Labels", KDD 2009.
    """

    name = "dm"
    needs_reward_model = True
    has_interval = False

    def statistics(self, inputs):
        return inputs.q_target[:, None]

    def note(self) -> str:
        return "no interval: the direct method's error is reward-model bias, which sampling variance does not show"


class DoublyRobust(Estimator):
    """DR: ``V = mean_i [qbar_i + min(w_i, lambda) (r_i - qhat_i)]``; consistent if either the weights or the
    reward model are right.

    Dudik, Langford & Li, "Doubly Robust Policy Evaluation and Learning", ICML 2011.
    """

    name = "dr"
    needs_reward_model = True

    def __init__(self, lambda_: float = np.inf):
        self.lambda_ = check_threshold(lambda_, type(self).__name__)

    def statistics(self, inputs):
        clipped = np.minimum(inputs.weight, self.lambda_)
        return (inputs.q_target + clipped * (inputs.reward - inputs.q_logged))[:, None]


class SelfNormalizedDoublyRobust(Estimator):
    """SNDR: ``V = mean_i qbar_i + sum_i w_i (r_i - qhat_i) / sum_i w_i``.

    Kallus & Uehara, "Intrinsically Efficient, Stable, and Bounded Off-Policy Evaluation", NeurIPS 2019.
    """

    name = "sndr"
    needs_reward_model = True

    def statistics(self, inputs):
        weight = inputs.weight
        return np.column_stack([inputs.q_target, weight * (inputs.reward - inputs.q_logged), weight])

    def combine(self, means):
        return means[..., 0] + means[..., 1] / means[..., 2]

    def gradient(self, means):
        return np.array([1.0, 1 / means[2], -means[1] / means[2] ** 2])


class SwitchDoublyRobust(Estimator):
    """Switch-DR: ``V = mean_i [qbar_i + 1{w_i <= lambda} w_i (r_i - qhat_i)]``: the DR correction where the
    weight is moderate, the direct method where it would explode.

    Wang, Agarwal & Dudik, "Optimal and Adaptive Off-policy Evaluation in Contextual Bandits", ICML 2017.
    """

    name = "switch-dr"
    needs_reward_model = True

    def __init__(self, lambda_: float = np.inf):
        self.lambda_ = check_threshold(lambda_, type(self).__name__)

    def statistics(self, inputs):
        switch = inputs.weight <= self.lambda_
        return (inputs.q_target + switch * inputs.weight * (inputs.reward - inputs.q_logged))[:, None]


class DoublyRobustWithShrinkage(Estimator):
    """DR-os: ``V = mean_i [qbar_i + lambda w_i / (w_i^2 + lambda) (r_i - qhat_i)]``, the optimistic shrinkage of
    the weights (``lambda = inf``: DR; ``lambda = 0``: DM).

    Su, Dimakopoulou, Krishnamurthy & Dudik, "Doubly Robust Off-Policy Evaluation with Shrinkage", ICML 2020.
    """

    name = "dr-os"
    needs_reward_model = True

    def __init__(self, lambda_: float = np.inf):
        self.lambda_ = check_threshold(lambda_, type(self).__name__)

    def shrunk_weight(self, weight: np.ndarray) -> np.ndarray:
        if np.isinf(self.lambda_):
            return weight
        if self.lambda_ == 0:
            return np.zeros_like(weight)
        return self.lambda_ * weight / (weight**2 + self.lambda_)

    def statistics(self, inputs):
        return (inputs.q_target + self.shrunk_weight(inputs.weight) * (inputs.reward - inputs.q_logged))[:, None]


ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls
    for cls in (
        InverseProbabilityWeighting,
        SelfNormalizedInverseProbabilityWeighting,
        DirectMethod,
        DoublyRobust,
        SelfNormalizedDoublyRobust,
        SwitchDoublyRobust,
        DoublyRobustWithShrinkage,
    )
}

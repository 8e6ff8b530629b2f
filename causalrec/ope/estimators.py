"""Off-policy estimators of a target policy's value from logged feedback.

Notation shared by every estimator (documented once): for logged round ``i`` with action ``a_i`` at slot ``l_i``,
reward ``r_i`` and logging probability ``pi_0(a_i | x_i, l_i)`` (pscore),

* ``w_i = pi_e(a_i | x_i, l_i) / pi_0(a_i | x_i, l_i)`` is the importance weight of the target policy ``pi_e``;
* ``q(x, a, l)`` is a reward model, cross-fitted so that it never predicts a round it was trained on;
* ``qhat_i = q(x_i, a_i, l_i)`` and ``qbar_i = sum_a pi_e(a | x_i, l_i) q(x_i, a, l_i)``.

Each estimator returns its value and the per-round influence terms ``psi_i`` whose mean is the estimate and
whose standard deviation gives the analytic (Wald) interval ``value +- z * sd(psi) / sqrt(n)``. For
self-normalised estimators ``psi`` is the linearisation (influence function) of the ratio, so the interval
accounts for the estimated normaliser instead of treating it as known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    """Base class: ``estimate(inputs) -> EstimatorOutput``. ``name`` is the short key used in APIs and JSON."""

    name: str = ""
    needs_reward_model: bool = False

    def estimate(self, inputs: EstimatorInputs) -> EstimatorOutput:  # pragma: no cover - abstract
        raise NotImplementedError


class InverseProbabilityWeighting(Estimator):
    """IPS: ``V = mean_i w_i r_i``. Unbiased when the logging policy covers the target's support.

    Horvitz & Thompson (1952); Precup et al. (2000); Strehl et al., "Learning from Logged Implicit Exploration
    Data", NeurIPS 2010.
    """

    name = "ips"

    def estimate(self, inputs: EstimatorInputs) -> EstimatorOutput:
        influence = inputs.weight * inputs.reward
        return EstimatorOutput(float(influence.mean()), influence)


class SelfNormalizedInverseProbabilityWeighting(Estimator):
    """SNIPS: ``V = sum_i w_i r_i / sum_i w_i``; influence ``psi_i = V + w_i (r_i - V) / mean(w)``.

    Swaminathan & Joachims, "The Self-Normalized Estimator for Counterfactual Learning", NeurIPS 2015.
    """

    name = "snips"

    def estimate(self, inputs: EstimatorInputs) -> EstimatorOutput:
        weight, reward = inputs.weight, inputs.reward
        mean_weight = weight.mean()
        if mean_weight <= 0:
            return EstimatorOutput(float("nan"), None, "all importance weights are zero")
        value = float((weight * reward).sum() / weight.sum())
        influence = value + weight * (reward - value) / mean_weight
        return EstimatorOutput(value, influence)


class DirectMethod(Estimator):
    """DM: ``V = mean_i qbar_i``. Its error is the reward model's bias, which the data cannot reveal, so it
    gets no interval (the sampling spread of ``qbar`` would understate the error).

    Beygelzimer & Langford, "The Offset Tree for Learning with Partial Labels", KDD 2009.
    """

    name = "dm"
    needs_reward_model = True

    def estimate(self, inputs: EstimatorInputs) -> EstimatorOutput:
        return EstimatorOutput(
            float(inputs.q_target.mean()),
            None,
            "no interval: the direct method's error is reward-model bias, which sampling variance does not show",
        )


class DoublyRobust(Estimator):
    """DR: ``V = mean_i [qbar_i + w_i (r_i - qhat_i)]``; consistent if either the weights or the reward model
    are right.

    Dudik, Langford & Li, "Doubly Robust Policy Evaluation and Learning", ICML 2011.
    """

    name = "dr"
    needs_reward_model = True

    def estimate(self, inputs: EstimatorInputs) -> EstimatorOutput:
        influence = inputs.q_target + inputs.weight * (inputs.reward - inputs.q_logged)
        return EstimatorOutput(float(influence.mean()), influence)


ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls
    for cls in (InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting, DirectMethod, DoublyRobust)
}

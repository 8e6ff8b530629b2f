"""Evidence for trusting estimated propensities: held-out calibration, balance, clipping and the effective
sample size the implied weights leave.

Facts used (``p`` the true and ``phat`` the estimated probability of the logged (action, slot)):

* balance: ``E[pi(a_i | x_i) / p(a_i | x_i)] = 1`` for every target ``pi`` with support; for the uniform target
  over the ``C_i`` candidates of a round this is ``E[(1 / C_i) / p_i] = 1``. A mean of ``(1 / C_i) / phat_i`` far
  from 1 means the propensities are off where it matters most for weighting (the small ones);
* calibration: among all (round, candidate) cells given probability ``phat``, a share ``phat`` should be the
  logged action; the expected calibration error over quantile bins of ``phat`` measures the gap;
* Kish's effective sample size ``(sum w)^2 / sum w^2`` of ``w_i = (1 / C_i) / phat_i`` says how many equally
  weighted rounds a uniform-target estimate is worth; for a given target use
  :meth:`~causalrec.exposure.PropensityEstimate.effective_sample_size`;
* clipping ``phat`` at ``c`` removes ``sum_i (1 / phat_i - 1 / max(phat_i, c))`` of the inverse-propensity mass;
  for a target ``pi`` and non-negative rewards, clipped IPS is biased downwards by
  ``E_x sum_{a : p(a|x) < c} pi(a | x) q(x, a) (1 - p(a|x) / c)``, at most ``r_max`` times the target's mass on
  cells with ``p < c``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from causalrec._arrays import quantile_bins

# Warnings fire at these levels.
MIN_ESS_SHARE = 0.01
MEAN_WEIGHT_WARNING_LEVEL = 0.001
MAX_CLIPPED_SHARE = 0.05
CALIBRATION_BINS = 10


def kish_effective_sample_size(weight: np.ndarray) -> float:
    """``(sum w)^2 / sum w^2`` (0 when all weights are 0)."""
    weight = np.asarray(weight, dtype=np.float64)
    squares = float(np.square(weight).sum())
    return float(weight.sum() ** 2 / squares) if squares > 0 else 0.0


def reliability_table(outcome: np.ndarray, probability: np.ndarray, n_bins: int = CALIBRATION_BINS) -> list[dict]:
    """Quantile bins of ``probability`` (by value, ties in one bin: :func:`causalrec._arrays.quantile_bins`): mean
    prediction, observed rate and count per bin (a reliability curve)."""
    bins = quantile_bins(probability, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    predicted = np.bincount(bins, weights=probability, minlength=n_bins)
    observed = np.bincount(bins, weights=outcome, minlength=n_bins)
    keep = counts > 0
    return [
        {"bin": int(b), "mean_predicted": float(predicted[b] / counts[b]), "observed_rate": float(observed[b] / counts[b]),
         "n": int(counts[b])}
        for b in np.flatnonzero(keep)
    ]


def expected_calibration_error(reliability: list[dict]) -> float:
    """``sum_b (n_b / n) |observed_b - predicted_b|`` over the bins of :func:`reliability_table` (the quantile-bin
    ECE of :func:`causalrec.models.metrics.expected_calibration_error`, computed here from the table so that
    this package does not import the model stack)."""
    total = sum(row["n"] for row in reliability)
    return float(sum(row["n"] * abs(row["observed_rate"] - row["mean_predicted"]) for row in reliability) / total)


def clipping_facts(propensity: np.ndarray, clip: float | None) -> dict:
    """Share of rounds clipped and share of the inverse-propensity mass that clipping removes."""
    if clip is None:
        return {"clip": None, "n_clipped": 0, "clipped_share": 0.0, "weight_mass_removed": 0.0}
    below = propensity < clip
    inverse = 1.0 / propensity
    removed = float(np.sum(inverse[below] - 1.0 / clip))
    return {
        "clip": float(clip),
        "n_clipped": int(below.sum()),
        "clipped_share": float(below.mean()),
        "weight_mass_removed": removed / float(inverse.sum()),
    }


def balance_facts(propensity: np.ndarray, n_candidates: np.ndarray, alpha: float = 0.05,
                  expected: float = 1.0) -> dict:
    """Mean of ``(1 / C_i) / p_i`` with its interval, and the ESS. The mean is 1 under the true propensities;
    ``expected`` is its value under correct but estimated ones where the estimation noise's upward (Jensen) bias
    is known, e.g. ``1 + mean_i w_i (1 - p_i) / (m_i p_i)`` for action frequencies counted over ``m_i`` rounds."""
    weight = (1.0 / n_candidates) / propensity
    n = len(weight)
    mean = float(weight.mean())
    se = float(weight.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    z = stats.norm.ppf(1 - alpha / 2)
    ess = kish_effective_sample_size(weight)
    return {
        "uniform_target_mean_weight": mean,
        "uniform_target_mean_weight_ci": (mean - z * se, mean + z * se),
        "uniform_target_mean_weight_se": se,
        "uniform_target_mean_weight_expected": float(expected),
        "ess_uniform_target": ess,
        "ess_share_uniform_target": ess / n,
    }


def diagnostics_text(frame) -> str:
    """A ``diagnostic, value`` frame as text for a summary: the ``method`` row left out (summaries name the method
    in their header; its long text would widen every row), numbers to six significant digits (pandas' six fixed
    decimals would print a 1e-9 floor as 0.0), a missing value as a dash."""
    shown = frame[frame["diagnostic"] != "method"].copy()
    shown["value"] = ["—" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v) for v in shown["value"]]
    return shown.to_string(index=False)


def warnings_for(facts: dict) -> tuple[str, ...]:
    """Plain-language warnings from a diagnostics dict (keys as produced by this module)."""
    messages = []
    share = facts.get("ess_share_uniform_target")
    if share is not None and share < MIN_ESS_SHARE:
        messages.append(
            f"the estimated propensities leave an effective sample size of {facts['ess_uniform_target']:.1f} rounds "
            f"({share:.2%}) for a uniform target: a few rounds with tiny propensities dominate"
        )
    se = facts.get("uniform_target_mean_weight_se")
    mean = facts.get("uniform_target_mean_weight")
    expected = facts.get("uniform_target_mean_weight_expected", 1.0)
    if se is not None and mean is not None and np.isfinite(se):
        limit = stats.norm.ppf(1 - MEAN_WEIGHT_WARNING_LEVEL / 2) * se
        if abs(mean - expected) > limit:
            reference = "1" if expected == 1 else f"{expected:.4f} (1 plus the known upward bias of estimated frequencies)"
            messages.append(
                f"balance check failed: the mean of (1 / n_candidates) / pscore is {mean:.4g}, not {reference} within "
                "sampling error (99.9% level); the estimated propensities are off where they are small"
            )
    if facts.get("clipped_share", 0.0) > MAX_CLIPPED_SHARE:
        messages.append(
            f"{facts['clipped_share']:.1%} of the rounds were clipped at {facts['clip']:g}, removing "
            f"{facts['weight_mass_removed']:.1%} of the inverse-propensity mass: weighted estimates are biased "
            "towards the logging policy"
        )
    gain = facts.get("log_loss_gain")
    if gain is not None and gain < 0:
        messages.append(
            "the propensity model predicts the logged actions worse than their marginal frequencies "
            f"(held-out log loss {facts['log_loss']:.4f} vs {facts['marginal_log_loss']:.4f})"
        )
    if facts.get("n_floored", 0) > 0:
        messages.append(
            f"{facts['n_floored']} logged rounds got an estimated propensity below {facts['floor']:g} and were raised to it"
        )
    return tuple(messages)

"""Exposure debiasing: logging and observation propensities, position bias, weighted losses and metrics.

* :func:`estimate_logging_propensities`: the logging policy's probability of each logged (action, slot) when the
  logs lack it (from the old ranker's scores, from features, or from action frequencies), cross-fitted, with
  calibration, balance, clipping and effective-sample-size diagnostics.
* :func:`estimate_observation_propensities`: the probability that a rating is observed in MNAR rating data (from
  features, or naive Bayes with a small randomised slice).
* :func:`estimate_examination` / :func:`position_based_weights`: position bias and position-aware IPS weights.
* :func:`debias_ratings`: naive against propensity-weighted matrix factorisation trained on self-selected ratings
  and scored on random ones (Schnabel et al. 2016), with the paired difference and its interval.
* :mod:`causalrec.exposure.weighting`: naive / IPS / SNIPS / doubly robust losses;
  :mod:`causalrec.exposure.metrics`: debiased MSE and ranking metrics beside the naive ones.
"""

from causalrec.exposure.diagnostics import kish_effective_sample_size
from causalrec.exposure.metrics import (
    compare_offline_metrics,
    debiased_mse,
    debiased_ranking_metrics,
    ranking_agreement,
)
from causalrec.exposure.observation import ObservationPropensityEstimate, estimate_observation_propensities
from causalrec.exposure.position_bias import (
    ExaminationEstimate,
    estimate_examination,
    examination_weights,
    position_based_weights,
    simulate_position_based_clicks,
)
from causalrec.exposure.propensity import (
    PropensityEstimate,
    ScorePropensityModel,
    estimate_logging_propensities,
)
from causalrec.exposure.ratings import RatingDebiasing, debias_ratings
from causalrec.exposure.weighting import (
    clipping_bias,
    doubly_robust_pseudo_ratings,
    estimate_risk,
    inverse_propensity_weights,
    ips_risk_variance,
    training_weights,
)

__all__ = [
    "ExaminationEstimate", "ObservationPropensityEstimate", "PropensityEstimate", "RatingDebiasing",
    "ScorePropensityModel", "clipping_bias", "compare_offline_metrics", "debias_ratings", "debiased_mse",
    "debiased_ranking_metrics", "doubly_robust_pseudo_ratings", "estimate_examination",
    "estimate_logging_propensities", "estimate_observation_propensities", "estimate_risk", "examination_weights",
    "inverse_propensity_weights", "ips_risk_variance", "kish_effective_sample_size", "position_based_weights",
    "ranking_agreement", "simulate_position_based_clicks", "training_weights",
]

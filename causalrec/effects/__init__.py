"""Effects of exposure: what showing an item causes, with DoWhy's verbs and EconML's estimators.

* :func:`estimate_effect` (model, identify, estimate) returns an :class:`EffectResult` with ATE, ATT, CATE and
  intervals; :meth:`EffectResult.refute` runs the refuters of :mod:`causalrec.effects.refute`.
* :mod:`causalrec.effects.model_selection`: R-loss and DR validation of CATE models without ground truth.
* :mod:`causalrec.effects.uplift_metrics`: uplift / Qini curves, AUUC, Qini coefficient, uplift@k.
* :mod:`causalrec.effects.ranking`: ranking items by estimated effect; causal precision@k and causal DCG.
"""

from causalrec.effects.catalogue import DEFAULT_CANDIDATES, ESTIMATORS, make_estimator
from causalrec.effects.estimate import EffectResult, estimate_effect
from causalrec.effects.model_selection import (
    CateValidation,
    ModelSelection,
    cross_fit_nuisances,
    r_loss,
    r_score,
    select_model,
    validate_cate,
)
from causalrec.effects.problem import EffectProblem
from causalrec.effects.refute import REFUTERS, RefutationResult, refute_estimate

__all__ = [
    "DEFAULT_CANDIDATES", "ESTIMATORS", "REFUTERS", "CateValidation", "EffectProblem", "EffectResult",
    "ModelSelection", "RefutationResult", "cross_fit_nuisances", "estimate_effect", "make_estimator", "r_loss",
    "r_score", "refute_estimate", "select_model", "validate_cate",
]

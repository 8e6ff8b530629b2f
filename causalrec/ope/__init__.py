"""Off-policy evaluation: estimators, cross-fitted reward models, intervals and diagnostics."""

from causalrec.ope.diagnostics import WeightDiagnostics
from causalrec.ope.estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    Estimator,
    EstimatorInputs,
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
)
from causalrec.ope.evaluate import EvaluationResult, PolicyEstimate, evaluate_policy, importance_weights

__all__ = [
    "ESTIMATORS", "DirectMethod", "DoublyRobust", "Estimator", "EstimatorInputs", "EvaluationResult",
    "InverseProbabilityWeighting", "PolicyEstimate", "SelfNormalizedInverseProbabilityWeighting",
    "WeightDiagnostics", "evaluate_policy", "importance_weights",
]

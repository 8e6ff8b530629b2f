"""Off-policy evaluation: estimators, cross-fitted reward models, intervals and diagnostics."""

from causalrec.ope.diagnostics import WeightDiagnostics
from causalrec.ope.estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    Estimator,
    EstimatorInputs,
    InverseProbabilityWeighting,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
)
from causalrec.ope.evaluate import (
    EvaluationResult,
    PolicyComparison,
    PolicyEstimate,
    compare_policies,
    evaluate_policy,
    importance_weights,
)
from causalrec.ope.tuning import AutoEstimator

__all__ = [
    "AutoEstimator", "DoublyRobustWithShrinkage", "PolicyComparison", "SelfNormalizedDoublyRobust",
    "SwitchDoublyRobust", "compare_policies",
    "ESTIMATORS", "DirectMethod", "DoublyRobust", "Estimator", "EstimatorInputs", "EvaluationResult",
    "InverseProbabilityWeighting", "PolicyEstimate", "SelfNormalizedInverseProbabilityWeighting",
    "WeightDiagnostics", "evaluate_policy", "importance_weights",
]

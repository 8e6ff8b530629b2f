"""causalrec: what recommender models cause, not only what they predict."""

from causalrec import policy
from causalrec.data import LoggedFeedback, simulate
from causalrec.exceptions import CausalrecWarning, ValidationError
from causalrec.ope import EvaluationResult, compare_policies, evaluate_policy

__version__ = "0.1.0"

__all__ = [
    "CausalrecWarning", "EvaluationResult", "compare_policies", "LoggedFeedback", "ValidationError", "evaluate_policy", "policy",
    "simulate",
]

"""Recommender models: the transformer family, its training loop, reference baselines and metrics.

``TransformerRecommender`` ranks the catalogue from user histories; ``TransformerClickModel`` /
``TransformerOutcomeRegressor`` predict per-(context, item, slot) outcomes with a scikit-learn face, so they
serve as reward models in off-policy evaluation and as nuisance models in EconML.
"""

from causalrec.models.baselines import ItemKNNRecommender, PopularityRecommender, RepeatPopularityRecommender
from causalrec.models.metrics import (
    calibration_metrics,
    expected_calibration_error,
    log_loss,
    log_loss_difference,
    ranking_metrics,
    summarize_runs,
    target_ranks,
)
from causalrec.models.network import NetworkSpec, RecommenderNetwork
from causalrec.models.training import TrainingConfig, TrainingHistory, resolve_device
from causalrec.models.transformer import (
    TransformerClickModel,
    TransformerOutcomeRegressor,
    TransformerRecommender,
    reward_model_layout,
)

__all__ = [
    "ItemKNNRecommender", "NetworkSpec", "PopularityRecommender", "RecommenderNetwork", "RepeatPopularityRecommender",
    "TrainingConfig", "TrainingHistory", "TransformerClickModel", "TransformerOutcomeRegressor",
    "TransformerRecommender", "calibration_metrics", "expected_calibration_error", "log_loss",
    "log_loss_difference", "ranking_metrics",
    "resolve_device", "reward_model_layout", "summarize_runs", "target_ranks",
]

"""The CATE estimators causalrec can fit, built with explicit, seeded nuisance models.

Every EconML estimator here receives explicit nuisance models (never EconML's ``'auto'``, whose defaults raise
FutureWarnings under scikit-learn 1.9), a ``random_state`` on the estimator and on every nuisance model, and one
job (``n_jobs=1``), so a fit is reproducible. Families:

========================  ==================================================  =========================
name                      estimator                                           CATE intervals
========================  ==================================================  =========================
``linear_dml``            ``econml.dml.LinearDML`` (Chernozhukov et al. 2018)   yes (linear final stage)
``causal_forest_dml``     ``econml.dml.CausalForestDML`` (Athey et al. 2019)    yes (GRF)
``linear_dr``             ``econml.dr.LinearDRLearner`` (Kennedy 2020)          yes
``forest_dr``             ``econml.dr.ForestDRLearner``                         yes
``t_learner``             ``econml.metalearners.TLearner`` (Kunzel et al. 2019) no
``s_learner``             ``econml.metalearners.SLearner``                      no
``x_learner``             ``econml.metalearners.XLearner``                      no
========================  ==================================================  =========================

Nuisance models default to LightGBM (gradient-boosted trees); any scikit-learn-compatible regressor /
classifier may be passed instead and is cloned per use.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from sklearn.base import clone

from causalrec._checks import fail, finite_number
from causalrec.exceptions import ValidationError

_OWNER = "effects"

ESTIMATORS = ("linear_dml", "causal_forest_dml", "linear_dr", "forest_dr", "t_learner", "s_learner", "x_learner")
DR_FAMILIES = ("linear_dr", "forest_dr")
META_LEARNERS = ("t_learner", "s_learner", "x_learner")
RAY_CAPABLE = ("linear_dml", "causal_forest_dml", "linear_dr", "forest_dr")
DEFAULT_CANDIDATES = ("linear_dml", "causal_forest_dml", "linear_dr", "t_learner", "x_learner")


def default_outcome_model(random_state: int = 0):
    """LightGBM regressor for ``E[Y | X, W]`` (and per-arm outcome models): small, regularised, one thread."""
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                         subsample=0.8, subsample_freq=1, colsample_bytree=0.9, reg_lambda=1.0,
                         random_state=random_state, n_jobs=1, verbose=-1)


def default_propensity_model(random_state: int = 0):
    """LightGBM classifier for the exposure propensity ``P(T = 1 | X, W)``."""
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                          subsample=0.8, subsample_freq=1, colsample_bytree=0.9, reg_lambda=1.0,
                          random_state=random_state, n_jobs=1, verbose=-1)


def seeded(model, random_state: int):
    """An unfitted clone of ``model`` with ``random_state`` set wherever the model has one."""
    model = clone(model)
    params = model.get_params(deep=True)
    seeds = {name: random_state for name in params if name == "random_state" or name.endswith("__random_state")}
    if seeds:
        model.set_params(**seeds)
    return model


def check_cv(cv: object) -> int:
    """``cv`` as an int >= 2: with one fold EconML would fit the nuisances in-sample."""
    if isinstance(cv, bool) or not hasattr(cv, "__index__") or int(cv) < 2:  # type: ignore[call-overload]
        raise fail(_OWNER, "cv", "an integer >= 2 (cross-fitting folds)", cv)
    return int(cv)  # type: ignore[call-overload]


def check_min_propensity(min_propensity: object) -> float:
    """``min_propensity`` in (0, 0.5): propensities are clipped to ``[m, 1 - m]`` and divided by."""
    number = finite_number(_OWNER, "min_propensity", min_propensity)
    if not 0.0 < number < 0.5:
        raise fail(_OWNER, "min_propensity", "in the open interval (0, 0.5)", min_propensity)
    return number


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def make_estimator(
    name: str,
    random_state: int = 0,
    outcome_model=None,
    propensity_model=None,
    cv: int = 3,
    min_propensity: float = 0.01,
    use_ray: bool = False,
    forest_trees: int = 200,
) -> Any:
    """An unfitted EconML estimator of family ``name`` (see the module table), fully seeded.

    ``cv`` (an int >= 2) is the number of cross-fitting folds. ``min_propensity`` (in (0, 0.5)) clips the DR learners' propensities (EconML's default 1e-6 lets near-deterministic
    exposure blow up the pseudo-outcomes). ``use_ray`` distributes the nuisance cross-fitting of DML and DR
    learners with Ray (``pip install causalrec[ray]``); meta-learners have no such option.
    """
    if name not in ESTIMATORS:
        raise ValidationError("estimator", f"one of {ESTIMATORS} or 'auto'", repr(name), owner=_OWNER)
    cv, min_propensity = check_cv(cv), check_min_propensity(min_propensity)
    if use_ray and name not in RAY_CAPABLE:
        raise ValidationError("use_ray", f"used only with {RAY_CAPABLE}", repr(name), owner=_OWNER)
    if use_ray and not ray_available():
        raise ImportError("use_ray=True needs Ray: pip install 'causalrec[ray]'")
    outcome_model = default_outcome_model(random_state) if outcome_model is None else outcome_model
    propensity_model = default_propensity_model(random_state) if propensity_model is None else propensity_model
    regressor = seeded(outcome_model, random_state)
    classifier = seeded(propensity_model, random_state)
    ray = {"use_ray": True} if use_ray else {}
    forest = dict(n_estimators=forest_trees, min_samples_leaf=10, max_samples=0.45, max_features=1.0,
                  n_jobs=1, random_state=random_state)
    if name == "linear_dml":
        from econml.dml import LinearDML

        return LinearDML(model_y=regressor, model_t=classifier, discrete_treatment=True, cv=cv,
                         random_state=random_state, **ray)
    if name == "causal_forest_dml":
        from econml.dml import CausalForestDML

        return CausalForestDML(model_y=regressor, model_t=classifier, discrete_treatment=True, cv=cv,
                               drate=True, **forest, **ray)
    if name == "linear_dr":
        from econml.dr import LinearDRLearner

        return LinearDRLearner(model_propensity=classifier, model_regression=regressor, cv=cv,
                               min_propensity=min_propensity, random_state=random_state, **ray)
    if name == "forest_dr":
        from econml.dr import ForestDRLearner

        return ForestDRLearner(model_propensity=classifier, model_regression=regressor, cv=cv,
                               min_propensity=min_propensity, **forest, **ray)
    from econml.metalearners import SLearner, TLearner, XLearner

    if name == "t_learner":
        return TLearner(models=regressor)
    if name == "s_learner":
        return SLearner(overall_model=regressor)
    return XLearner(models=regressor, cate_models=seeded(outcome_model, random_state + 1),
                    propensity_model=classifier)


def family_of(estimator: Any) -> str:
    """The catalogue name of a (possibly user-built) EconML estimator, or its class name."""
    mapping = {"LinearDML": "linear_dml", "CausalForestDML": "causal_forest_dml", "LinearDRLearner": "linear_dr",
               "ForestDRLearner": "forest_dr", "TLearner": "t_learner", "SLearner": "s_learner",
               "XLearner": "x_learner", "DRLearner": "dr_learner", "SparseLinearDRLearner": "linear_dr"}
    return mapping.get(type(estimator).__name__, type(estimator).__name__)


def is_meta_learner(estimator: Any) -> bool:
    return type(estimator).__module__.startswith("econml.metalearners")


def fit_arrays(estimator: Any, y: np.ndarray, t: np.ndarray, features: np.ndarray, controls: np.ndarray) -> Any:
    """Fit ``estimator`` on arrays as DoWhy's EconML wrapper would (meta-learners get ``X = [X, W]``)."""
    if is_meta_learner(estimator):
        estimator.fit(y, t, X=np.hstack([features, controls]))
    else:
        estimator.fit(y, t, X=features, W=controls if controls.shape[1] else None)
    return estimator


def effect_arrays(estimator: Any, features: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """CATE of a fitted estimator; meta-learners need the controls too (they were fit on ``[X, W]``)."""
    matrix = np.hstack([features, controls]) if is_meta_learner(estimator) else features
    return np.asarray(estimator.effect(matrix), dtype=np.float64).ravel()

"""Hillstrom's randomised e-mail experiment: the difference in means is the truth for every e-mail arm.

Skipped when the reference data are not in ``CAUSALREC_DATA_DIR``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor

from causalrec.effects import estimate_effect
from causalrec.effects.examples import HILLSTROM_CONFOUNDERS, hillstrom_arm

pytestmark = pytest.mark.data

# Difference in visit rates against no e-mail with its 95% interval (shared/data README: arm means 0.18276,
# 0.15140, 0.10617 over 21,307 / 21,387 / 21,306 customers).
RANDOMISED = {"mens": (0.0700, 0.0832), "womens": (0.0389, 0.0516)}


def _light_nuisances():
    """Smaller LightGBM nuisances than the defaults keep these 43k-row fits fast (visit has little signal)."""
    options = dict(n_estimators=60, learning_rate=0.1, num_leaves=7, min_child_samples=50, n_jobs=1, verbose=-1)
    return {"outcome_model": LGBMRegressor(**options), "propensity_model": LGBMClassifier(**options)}


def _arm(arm):
    try:
        return hillstrom_arm(arm)
    except FileNotFoundError as error:
        pytest.skip(f"Hillstrom data not available: {error}")


@pytest.mark.parametrize("arm", ["mens", "womens"])
def test_observational_estimate_recovers_the_randomised_ate(arm):
    rows = _arm(arm)
    before = rows.copy()
    result = estimate_effect(rows, treatment="email", outcome="visit", confounders=HILLSTROM_CONFOUNDERS,
                             estimator="linear_dr", cv=2, random_state=0, **_light_nuisances())
    low, high = RANDOMISED[arm]
    assert low <= result.ate <= high
    # The naive difference is the randomised estimate itself; it must agree with the published arm means.
    assert low < result.naive_difference < high
    # Random assignment: the cross-fitted propensity model finds no signal.
    auc, se = result.diagnostics["propensity_auc"], result.diagnostics["propensity_auc_se"]
    assert abs(auc - 0.5) < max(3 * se, 0.01)
    assert rows.equals(before)


def test_qini_of_the_cate_model_on_held_out_customers_has_an_interval():
    rows = _arm("mens")
    # A third of the customers keeps the test fast: fit on 20%, score the ranking on another 13%.
    split = np.random.default_rng(0).random(len(rows))
    result = estimate_effect(rows[split < 0.2], treatment="email", outcome="visit",
                             confounders=HILLSTROM_CONFOUNDERS, estimator="linear_dr", cv=2, random_state=0,
                             **_light_nuisances())
    metrics = result.uplift_metrics(rows[(split >= 0.2) & (split < 0.33)], n_bootstrap=100,
                                    random_state=1).set_index("metric")
    qini = metrics.loc["qini_coefficient"]
    assert qini.ci_low <= qini.value <= qini.ci_high and qini.ci_high - qini.ci_low > 0
    json.dumps(result.to_dict())

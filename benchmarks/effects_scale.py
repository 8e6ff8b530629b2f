"""Fit time and peak memory of ``estimate_effect`` at 100k and 1M rows (2 cores, one job, LightGBM nuisances).

Rows come from the simulator (``make_world(n_users=20000, n_items=50, random_state=0).sample_exposure(n)``; 4 user
+ 4 item features and the ranker score as confounders). Each (estimator, n) runs in a fresh child process so its
peak resident memory (``ru_maxrss``) is its own; time covers the whole call: private copy, cross-fitted
diagnostics nuisances, DoWhy model/identify, the EconML fit and, for non-DR families, the DR model for the ATE.
CausalForestDML runs at 100k only (116 s there on an idle machine, 610 s in an earlier run on a busy one; 10x the
rows would take, by extrapolation, well over 20 minutes). Timings need an otherwise idle machine: the 2026-11-23 run
was 3-5x slower throughout than the 2026-11-25 one on the same host type. The ATE error against the simulator's
truth is recorded alongside.

Run: ``nice -n 10 .venv/bin/python benchmarks/effects_scale.py``; writes ``benchmarks/results/effects_scale.json``.
``use_ray=True`` (DML/DR cross-fitting on Ray) is measured only when Ray is installed (``causalrec[ray]``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings

import pandas as pd

CONFIGS = [("linear_dml", 100_000), ("linear_dr", 100_000), ("x_learner", 100_000), ("causal_forest_dml", 100_000),
           ("linear_dml", 1_000_000), ("linear_dr", 1_000_000), ("x_learner", 1_000_000)]


def machine_facts() -> dict:
    packages = ["numpy", "pandas", "scikit-learn", "econml", "dowhy", "lightgbm", "scipy"]
    return {"platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "packages": {p: importlib.metadata.version(p) for p in packages}}


def run_one(estimator: str, n_rows: int, use_ray: bool) -> dict:
    warnings.simplefilter("ignore")
    from causalrec.data.simulate import make_world
    from causalrec.effects import estimate_effect

    world = make_world(n_users=20000, n_items=50, n_user_features=4, n_item_features=4, exposure_intercept=1.5,
                       exposure_slope=0.8, base_rate=0.1, random_state=0)
    rows = world.sample_exposure(n_rows, random_state=1)
    confounders = [c for c in rows.columns if c.startswith(("x_", "z_"))]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = estimate_effect(rows, treatment="treatment", outcome="outcome", confounders=confounders, score="score",
                             estimator=estimator, random_state=0, use_ray=use_ray)
    seconds = time.perf_counter() - start
    return {"estimator": estimator, "n_rows": n_rows, "use_ray": use_ray, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_fit_mb": before / 1024, "ate": result.ate, "true_ate": float(rows["true_effect"].mean()),
            "ate_ci_low": result.ate_interval[0], "ate_ci_high": result.ate_interval[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=3, metavar=("ESTIMATOR", "N_ROWS", "USE_RAY"))
    parser.add_argument("--max-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.one[2] == "1")))
        return
    from causalrec._results import write_json_atomic
    from causalrec.effects.catalogue import ray_available

    started = time.perf_counter()
    rows = []
    configs = [c for c in CONFIGS if c[1] <= args.max_rows]
    configs += [(e, n, True) for e, n in configs if e in ("linear_dml", "linear_dr")] if ray_available() else []
    for config in configs:
        estimator, n_rows, use_ray = (*config, False)[:3]
        output = subprocess.run([sys.executable, __file__, "--one", estimator, str(n_rows), "1" if use_ray else "0"],
                                capture_output=True, text=True, check=True)
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    payload = {"benchmark": "effects_scale", "protocol": __doc__, "machine": machine_facts(),
               "runtime_seconds": time.perf_counter() - started, "ray_installed": ray_available(),
               "results": pd.DataFrame(rows)}
    write_json_atomic("benchmarks/results/effects_scale.json", payload)


if __name__ == "__main__":
    main()

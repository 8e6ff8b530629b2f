"""Open Bandit Pipeline 0.5.7 side of ``benchmarks/ope_vs_obp.py`` (run by it; not a benchmark on its own).

Runs under the separate Python 3.10 environment ``/work/obp-env`` (OBP 0.5.7 does not install on Python >= 3.11)
and never imports causalrec. Arrays come from and go back to the driver as ``.npz`` files; results as JSON.

Subcommands (each is one process, so its peak RSS is its own):

* ``info``: versions of Python, OBP and the numeric stack of this environment;
* ``obd-prepare``: OBP's view of the Open Bandit sample (its own loader), OBP's Monte-Carlo BTS action
  distribution per campaign, and one fixed LightGBM reward model per campaign on the random logs;
* ``points``: point estimates of a list of estimators on given arrays (equality check);
* ``obd-resamples``: OBP's standard pipeline (RegressionModel + LightGBM, OffPolicyEvaluation) on bootstrap
  resamples of the logs, with the driver's resample indices;
* ``speed``: timed point estimates or bootstrap intervals on large arrays, with peak RSS.

Run without arguments (e.g. by ``make bench``) it only prints this note and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

OBP_LIGHTGBM = dict(  # OBP's benchmark/ope/conf/reg_model_hyperparams/default.yaml, "lightgbm" entry
    n_estimators=100, learning_rate=0.01, max_depth=5, min_child_samples=10, random_state=12345, n_jobs=1,
    verbose=-1,
)
# OBP's example examples/obd/evaluate_off_policy_estimators.py with ``--base_model lightgbm``: OBP's examples map
# "lightgbm" to scikit-learn's GradientBoostingClassifier with their conf/hyperparams.yaml entry below, and fit
# the reward model with a fixed fold seed (``random_state=12345``) on every resample. This pipeline reproduces
# the per-cell reference numbers (see ope_vs_obp.py --obp-pipeline example).
OBP_EXAMPLE_GBC = dict(n_estimators=30, learning_rate=0.01, max_depth=5, min_samples_leaf=10, random_state=12345)
OBP_EXAMPLE_FOLD_SEED = 12345
BTS_SIMULATIONS = 100_000
BTS_RANDOM_STATE = 12345
BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_json(path: str, payload: dict) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, default=float), encoding="utf-8")


def _lam(value) -> float:
    return float("inf") if value is None or value == "inf" else float(value)


def make_estimator(spec: dict):
    """One OBP estimator from ``{"key", "kind", "lambda"}`` (``lambda`` None = inf; ``lambdas`` for tuning)."""
    from obp import ope

    key, kind = spec["key"], spec["kind"]
    lam = _lam(spec.get("lambda"))
    if kind == "dm":
        return ope.DirectMethod(estimator_name=key)
    if kind == "ips":
        return ope.InverseProbabilityWeighting(lambda_=lam, estimator_name=key)
    if kind == "snips":
        return ope.SelfNormalizedInverseProbabilityWeighting(estimator_name=key)
    if kind == "dr":
        return ope.DoublyRobust(lambda_=lam, estimator_name=key)
    if kind == "sndr":
        return ope.SelfNormalizedDoublyRobust(estimator_name=key)
    if kind == "switch-dr":
        return ope.SwitchDoublyRobust(lambda_=lam, estimator_name=key)
    if kind == "dr-os":
        return ope.DoublyRobustWithShrinkage(lambda_=lam, estimator_name=key)
    if kind == "switch-dr-tuning":
        return ope.SwitchDoublyRobustTuning(lambdas=[_lam(v) for v in spec["lambdas"]], estimator_name=key)
    if kind == "dr-os-tuning":
        return ope.DoublyRobustWithShrinkageTuning(lambdas=[_lam(v) for v in spec["lambdas"]], estimator_name=key)
    raise ValueError(f"unknown estimator kind {kind!r}")


# ------------------------------------------------------------------------------------------------ info
def cmd_info(args) -> None:
    import lightgbm
    import obp
    import pandas
    import scipy
    import sklearn
    import torch

    _write_json(args.out, {
        "python": sys.version,
        "executable": sys.executable,
        "platform": platform.platform(),
        "obp": obp.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "scipy": scipy.__version__,
        "lightgbm": lightgbm.__version__,
        "torch": getattr(torch, "__version__", "unknown"),
        "torch_is_import_shim": bool(getattr(torch, "SHIM", False)),
    })


# ------------------------------------------------------------------------------------------------ OBD
def _feedback(behavior: str, campaign: str, data_path: str):
    from obp.dataset import OpenBanditDataset

    dataset = OpenBanditDataset(behavior_policy=behavior, campaign=campaign, data_path=Path(data_path))
    return dataset, dataset.obtain_batch_bandit_feedback()


def _bts_table(campaign: str, n_actions: int, len_list: int, n_sim: int = BTS_SIMULATIONS):
    """OBP's BTS action distribution (Monte Carlo from the production prior), one (A, L) table."""
    from obp.policy import BernoulliTS

    policy = BernoulliTS(
        n_actions=n_actions, len_list=len_list, random_state=BTS_RANDOM_STATE, is_zozotown_prior=True,
        campaign=campaign,
    )
    # The distribution is the same for every round (OBP tiles it); one round is enough to store it.
    return policy.compute_batch_action_dist(n_sim=n_sim, n_rounds=1)[0]


def _regression_model(n_actions: int, len_list: int, action_context: np.ndarray, pipeline: str = "benchmark"):
    """OBP's RegressionModel (one base model per slot) with LightGBM (``benchmark``) or the example's GBC."""
    from obp.ope import RegressionModel

    if pipeline == "example":
        from sklearn.ensemble import GradientBoostingClassifier

        base_model = GradientBoostingClassifier(**OBP_EXAMPLE_GBC)
    else:
        from lightgbm import LGBMClassifier

        base_model = LGBMClassifier(**OBP_LIGHTGBM)
    return RegressionModel(n_actions=n_actions, len_list=len_list, action_context=action_context,
                           base_model=base_model)


def cmd_obd_prepare(args) -> None:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    facts: dict = {"files": {}, "bts_tables": {}, "reward_models": {}}
    for behavior in BEHAVIORS:
        for campaign in CAMPAIGNS:
            dataset, feedback = _feedback(behavior, campaign, args.data_path)
            np.savez(
                out / f"obp_logs_{behavior}_{campaign}.npz",
                action=feedback["action"], reward=feedback["reward"], position=feedback["position"],
                pscore=feedback["pscore"], context=np.asarray(feedback["context"], dtype=np.float64),
                action_context=np.asarray(feedback["action_context"], dtype=np.float64),
            )
            facts["files"][f"{behavior}/{campaign}"] = {
                "n_rounds": int(feedback["n_rounds"]), "n_actions": int(feedback["n_actions"]),
                "len_list": int(dataset.len_list), "on_policy_value": float(feedback["reward"].mean()),
            }
    for campaign in CAMPAIGNS:
        dataset, feedback = _feedback("random", campaign, args.data_path)
        start = time.perf_counter()
        table = _bts_table(campaign, dataset.n_actions, dataset.len_list, args.bts_n_sim)
        facts["bts_tables"][campaign] = {"seconds": time.perf_counter() - start, "n_sim": args.bts_n_sim}
        np.save(out / f"obp_bts_table_{campaign}.npy", table)
        # One fixed reward model per campaign on the random logs, shared by both libraries in the equality check.
        start = time.perf_counter()
        model = _regression_model(dataset.n_actions, dataset.len_list, dataset.action_context)
        q = model.fit_predict(
            context=feedback["context"], action=feedback["action"], reward=feedback["reward"],
            position=feedback["position"], pscore=feedback["pscore"], n_folds=3, random_state=12345,
        )
        facts["reward_models"][campaign] = {"seconds": time.perf_counter() - start, "n_folds": 3}
        np.save(out / f"obp_q_random_{campaign}.npy", q)
    facts["lightgbm"] = OBP_LIGHTGBM
    _write_json(args.out, facts)


def _estimate_all(estimators, reward, action, position, pscore, action_dist, q) -> dict:
    values = {}
    for estimator in estimators:
        values[estimator.estimator_name] = float(estimator.estimate_policy_value(
            reward=reward, action=action, position=position, pscore=pscore, action_dist=action_dist,
            estimated_rewards_by_reg_model=q,
        ))
    return values


def cmd_points(args) -> None:
    specs = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    data = np.load(args.inputs)
    estimators = [make_estimator(spec) for spec in specs]
    values = _estimate_all(
        estimators, data["reward"], data["action"], data["position"], data["pscore"], data["action_dist"],
        data["q"],
    )
    _write_json(args.out, {"values": values})


def cmd_obd_resamples(args) -> None:
    """OBP's pipeline per (behavior -> evaluation, campaign) cell and bootstrap resample of the logs."""
    from obp.ope import OffPolicyEvaluation

    specs = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    resamples = np.load(args.resamples)
    tables = Path(args.tables_dir)
    cells = json.loads(args.cells)
    results = {}
    for cell in cells:
        behavior, evaluation, campaign = cell["behavior"], cell["evaluation"], cell["campaign"]
        dataset, feedback = _feedback(behavior, campaign, args.data_path)
        truth = float(type(dataset).calc_on_policy_policy_value_estimate(
            behavior_policy=evaluation, campaign=campaign, data_path=Path(args.data_path)
        ))
        n, n_actions, len_list = int(feedback["n_rounds"]), int(feedback["n_actions"]), int(dataset.len_list)
        if evaluation == "bts":
            table = np.load(tables / f"obp_bts_table_{campaign}.npy")
        else:
            from obp.policy import Random

            table = Random(n_actions=n_actions, len_list=len_list).compute_batch_action_dist(n_rounds=1)[0]
        action_dist = np.broadcast_to(table, (n, n_actions, len_list)).copy()
        indices = resamples[f"{behavior}_{campaign}"]
        # ``reuse``: one instance for every resample of the cell, as OBP's example script builds its estimator
        # list once. OBP 0.5.7's tuning estimators cache ``best_hyperparam`` on the instance (``if not
        # hasattr(self, "best_hyperparam")``), so such an instance keeps the threshold tuned on the first resample.
        reused = {s["key"]: make_estimator(s) for s in specs if s.get("reuse")}
        runs = []
        start = time.perf_counter()
        for b, rows in enumerate(indices):
            boot = {key: feedback[key][rows] for key in ("action", "position", "reward", "pscore", "context")}
            boot.update(n_rounds=n, n_actions=n_actions, action_context=feedback["action_context"])
            try:
                model = _regression_model(n_actions, len_list, dataset.action_context, args.pipeline)
                q = model.fit_predict(
                    context=boot["context"], action=boot["action"], reward=boot["reward"],
                    position=boot["position"], pscore=boot["pscore"], n_folds=args.n_folds,
                    random_state=(OBP_EXAMPLE_FOLD_SEED if args.pipeline == "example"
                                  else int(args.seed_offset + b)),
                )
                estimators = [reused.get(s["key"]) or make_estimator(s) for s in specs]
                ope = OffPolicyEvaluation(bandit_feedback=boot, ope_estimators=estimators)
                values = ope.estimate_policy_values(action_dist=action_dist, estimated_rewards_by_reg_model=q)
                runs.append({"resample": b, "values": {k: float(v) for k, v in values.items()}})
            except Exception as error:  # a crash is a result here: record it and go on
                runs.append({"resample": b, "error": f"{type(error).__name__}: {error}",
                             "traceback": traceback.format_exc()[-2000:]})
        results[f"{evaluation}<-{behavior}/{campaign}"] = {
            "truth": truth, "n_rounds": n, "seconds": time.perf_counter() - start, "runs": runs,
        }
    _write_json(args.out, {
        "cells": results, "n_folds": args.n_folds, "pipeline": args.pipeline,
        **({"gradient_boosting_classifier": OBP_EXAMPLE_GBC, "fold_seed": OBP_EXAMPLE_FOLD_SEED}
           if args.pipeline == "example" else {"lightgbm": OBP_LIGHTGBM, "fold_seed": "seed offset + resample"}),
    })


# ------------------------------------------------------------------------------------------------ speed
def cmd_speed(args) -> None:
    from obp.ope import OffPolicyEvaluation

    rss_start = _rss_mb()
    specs = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    data = np.load(args.inputs)
    arrays = {key: data[key] for key in ("action", "reward", "position", "pscore", "action_dist", "q")}
    del data
    rss_loaded = _rss_mb()
    feedback = {
        "action": arrays["action"], "reward": arrays["reward"], "position": arrays["position"],
        "pscore": arrays["pscore"], "context": np.zeros((arrays["action"].shape[0], 1)),
        "n_rounds": arrays["action"].shape[0], "n_actions": arrays["action_dist"].shape[1],
    }
    estimators = [make_estimator(spec) for spec in specs]
    result: dict = {"task": args.task, "rss_after_imports_mb": rss_start, "rss_after_load_mb": rss_loaded}
    if args.task == "points":
        ope = OffPolicyEvaluation(bandit_feedback=feedback, ope_estimators=estimators)
        wall, cpu = time.perf_counter(), time.process_time()
        values = ope.estimate_policy_values(
            action_dist=arrays["action_dist"], estimated_rewards_by_reg_model=arrays["q"]
        )
        result.update(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu,
                      values={k: float(v) for k, v in values.items()})
        per_estimator = {}
        for estimator in estimators:  # each estimator alone (its input checks included), for the record
            wall, cpu = time.perf_counter(), time.process_time()
            estimator.estimate_policy_value(
                reward=arrays["reward"], action=arrays["action"], position=arrays["position"],
                pscore=arrays["pscore"], action_dist=arrays["action_dist"],
                estimated_rewards_by_reg_model=arrays["q"],
            )
            per_estimator[estimator.estimator_name] = {"wall_s": time.perf_counter() - wall,
                                                       "cpu_s": time.process_time() - cpu}
        result["per_estimator"] = per_estimator
    elif args.task == "bootstrap":
        per_estimator = {}
        total_wall = total_cpu = 0.0
        for estimator in estimators:
            wall, cpu = time.perf_counter(), time.process_time()
            interval = estimator.estimate_interval(
                reward=arrays["reward"], action=arrays["action"], position=arrays["position"],
                pscore=arrays["pscore"], action_dist=arrays["action_dist"],
                estimated_rewards_by_reg_model=arrays["q"], n_bootstrap_samples=args.n_bootstrap,
                random_state=0,
            )
            spent_wall, spent_cpu = time.perf_counter() - wall, time.process_time() - cpu
            # The part of estimate_interval that is not resampling: input checks and per-round rewards.
            wall, cpu = time.perf_counter(), time.process_time()
            estimator.estimate_policy_value(
                reward=arrays["reward"], action=arrays["action"], position=arrays["position"],
                pscore=arrays["pscore"], action_dist=arrays["action_dist"],
                estimated_rewards_by_reg_model=arrays["q"],
            )
            fixed_wall, fixed_cpu = time.perf_counter() - wall, time.process_time() - cpu
            per_estimator[estimator.estimator_name] = {
                "wall_s": spent_wall, "cpu_s": spent_cpu, "fixed_wall_s": fixed_wall, "fixed_cpu_s": fixed_cpu,
                "interval": {k: float(v) for k, v in interval.items()},
            }
            total_wall += spent_wall
            total_cpu += spent_cpu
        result.update(wall_s=total_wall, cpu_s=total_cpu, n_bootstrap=args.n_bootstrap,
                      per_estimator=per_estimator)
    else:
        raise ValueError(f"unknown task {args.task!r}")
    result["peak_rss_mb"] = _peak_mb()
    _write_json(args.out, result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    info = sub.add_parser("info")
    info.add_argument("--out", required=True)
    prepare = sub.add_parser("obd-prepare")
    prepare.add_argument("--data-path", required=True)
    prepare.add_argument("--out-dir", required=True)
    prepare.add_argument("--bts-n-sim", type=int, default=BTS_SIMULATIONS)
    prepare.add_argument("--out", required=True)
    points = sub.add_parser("points")
    points.add_argument("--inputs", required=True)
    points.add_argument("--spec", required=True)
    points.add_argument("--out", required=True)
    resampled = sub.add_parser("obd-resamples")
    resampled.add_argument("--data-path", required=True)
    resampled.add_argument("--tables-dir", required=True)
    resampled.add_argument("--resamples", required=True)
    resampled.add_argument("--spec", required=True)
    resampled.add_argument("--cells", required=True)
    resampled.add_argument("--n-folds", type=int, default=3)
    resampled.add_argument("--seed-offset", type=int, default=0)
    resampled.add_argument("--pipeline", choices=("benchmark", "example"), default="benchmark")
    resampled.add_argument("--out", required=True)
    speed = sub.add_parser("speed")
    speed.add_argument("--inputs", required=True)
    speed.add_argument("--spec", required=True)
    speed.add_argument("--task", choices=("points", "bootstrap"), required=True)
    speed.add_argument("--n-bootstrap", type=int, default=1000)
    speed.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command is None:
        print("benchmarks/_obp_side.py is the OBP worker of benchmarks/ope_vs_obp.py; run that script instead.")
        return 0
    if "causalrec" in sys.modules:  # pragma: no cover - a guard, not a feature
        raise RuntimeError("the OBP side must not import causalrec")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    {"info": cmd_info, "obd-prepare": cmd_obd_prepare, "points": cmd_points, "obd-resamples": cmd_obd_resamples,
     "speed": cmd_speed}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

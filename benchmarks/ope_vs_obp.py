"""causalrec's off-policy evaluation side by side with Open Bandit Pipeline (OBP) 0.5.7, the incumbent.

Three questions, each written to its own JSON file in ``benchmarks/results/``:

1. ``ope_vs_obp_equality.json``: do the point estimates equal OBP's on identical inputs (same logs, same
   ``action_dist`` arrays, same reward-model predictions)? Open Bandit sample (random logs; BTS and uniform
   targets) and simulated logs; DM, IPS (with and without clipping), SNIPS, DR (with and without clipping),
   SNDR, Switch-DR and DR-os at several lambdas. Max relative difference per estimator.
2. ``ope_vs_obp_obd.json``: BTS <- random and random <- BTS on the campaigns all / men / women, over paired
   bootstrap resamples of the logs (same resample indices for both libraries); each library's own pipeline
   (OBP: ``RegressionModel`` with LightGBM and its Monte-Carlo BTS distribution; causalrec:
   ``evaluate_open_bandit``-equivalent calls with its defaults, BTS distribution from the logs and from the
   prior); mean relative error ``|estimate - truth| / truth`` per estimator, crashes, causalrec's diagnostics.
   ``--resampling obp-example --obp-pipeline example`` runs OBP's side as OBP's own example script
   ``examples/obd/evaluate_off_policy_estimators.py --base_model lightgbm`` (its resamples, scikit-learn's
   GradientBoostingClassifier as "lightgbm", fold seed 12345, BTS from 1,000,000 draws, its SLOPE-tuned
   estimators), the protocol that reproduces the issue's per-cell reference numbers; causalrec then runs both
   with its own default reward model and with OBP's.
3. ``ope_vs_obp_speed.json``: time and peak memory of all point estimates, analytic intervals and 1,000
   bootstrap resamples at 1M simulated rounds, 80 actions, 3 positions, given precomputed reward predictions.

OBP does not install on Python >= 3.11, so it runs in its own Python 3.10 environment (``/work/obp-env``,
outside the repository, created by this script when missing; ``OBP_ENV`` overrides the path) through the worker
``benchmarks/_obp_side.py``; causalrec's side runs in worker processes of this script. Every measured side is its
own process, so peak RSS (``ru_maxrss``) is that side's alone. Arrays travel as ``.npz`` files in a temp dir.

OBP 0.5.7 imports torch at module level (its neural policy learners), although the estimators, RegressionModel
and the data loader never use it, and no CPU-only torch wheel for CPython 3.10 is available here. The OBP
environment therefore gets an *import shim* named ``torch`` (written into that environment only, never into the
repository): every attribute is a placeholder that raises if called. The results record this.

Usage (from the repository root)::

    nice .venv/bin/python benchmarks/ope_vs_obp.py                    # all three parts
    nice .venv/bin/python benchmarks/ope_vs_obp.py --parts equality,obd --n-resamples 30
    nice .venv/bin/python benchmarks/ope_vs_obp.py --parts speed --obp-bootstrap-samples 1000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _obp_side import (  # stdlib + NumPy only at import time: the same memory probes both sides
    BTS_SIMULATIONS,
    OBP_EXAMPLE_FOLD_SEED,
    OBP_EXAMPLE_GBC,
    _peak_mb,
    _rss_mb,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OBP_SIDE = ROOT / "benchmarks" / "_obp_side.py"
OBP_ENV = Path(os.environ.get("OBP_ENV", "/work/obp-env"))
OBP_BASE_PYTHON = os.environ.get("OBP_BASE_PYTHON", "/root/.pyenv/versions/3.10.13/bin/python")
# OBP 0.5.7's own pins (its wheel metadata), except torch (shim, see above) and pingouin / pyieoe (never imported
# by the modules used here). LightGBM is not an OBP dependency: the same version as causalrec's environment.
OBP_REQUIREMENTS = [
    "numpy==1.23.5", "pandas==1.5.2", "scikit-learn==1.1.3", "scipy==1.9.3", "PyYAML==6.0", "Pillow==9.1.1",
    "seaborn>=0.11.2,<0.12", "matplotlib>=3.4.3,<3.8", "tqdm>=4.62.2,<5", "mypy-extensions>=0.4.3,<0.5",
    "lightgbm==4.7.0",
]
TORCH_SHIM_VERSION = "0.0.0+obp-import-shim"
TORCH_SHIM = f'''"""NOT PyTorch: an import shim so that ``import obp`` (0.5.7) works without torch.

Written by causalrec's benchmarks/ope_vs_obp.py into this benchmark-only environment. OBP imports torch at
module level only for its neural policy learners (obp.policy.offline*) and one helper in obp.utils; its
off-policy estimators, RegressionModel and OpenBanditDataset never call it. Every attribute is a placeholder
class that raises when instantiated.
"""
import sys
import types

SHIM = True
__version__ = "{TORCH_SHIM_VERSION}"


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torch is an import shim in this environment (PyTorch is not installed)")


def _module(name):
    module = types.ModuleType(name)
    module.__getattr__ = lambda attr: _Unavailable
    module.SHIM = True
    sys.modules[name] = module
    return module


def __getattr__(attr):
    return _Unavailable


nn = _module("torch.nn")
nn.functional = _module("torch.nn.functional")
optim = _module("torch.optim")
utils = _module("torch.utils")
utils.data = _module("torch.utils.data")
'''
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CAMPAIGNS = ("all", "men", "women")
LAMBDA_GRID = [1, 5, 10, 50, 100, 500, 1000, 5000, 10000]  # OBP's benchmark/ope estimator_hyperparams grid
# The issue's bar per Open Bandit cell: OBP's best doubly robust variant, as measured by the issue's author.
ISSUE_REFERENCE_OBP_BEST = {
    "bts<-random/all": 0.123, "bts<-random/men": 0.257, "bts<-random/women": 0.217,
    "random<-bts/all": 0.206, "random<-bts/men": 0.196, "random<-bts/women": 0.144,
}


# ================================================================================================ environment
def _run(command: list, env: dict | None = None, log: Path | None = None) -> None:
    full_env = {**os.environ, **THREAD_ENV, **(env or {})}
    completed = subprocess.run(command, env=full_env, capture_output=True, text=True, check=False)
    if log is not None:
        with log.open("a", encoding="utf-8") as stream:
            stream.write(f"$ {shlex.join(map(str, command))}\n{completed.stdout[-4000:]}{completed.stderr[-8000:]}\n")
    if completed.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(map(str, command))} exited {completed.returncode}:\n{completed.stderr[-4000:]}"
        )


def obp_python() -> Path:
    return OBP_ENV / "bin" / "python"


def ensure_obp_env() -> None:
    """Create ``OBP_ENV`` (Python 3.10, obp 0.5.7 with its pinned stack, torch import shim) when missing."""
    python = obp_python()
    probe = [str(python), "-c", "import obp, obp.ope, obp.dataset, lightgbm; assert obp.__version__ == '0.5.7'"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return
    print(f"creating the OBP environment {OBP_ENV} (Python 3.10, obp==0.5.7)", flush=True)
    if not python.exists():
        _run([OBP_BASE_PYTHON, "-m", "venv", str(OBP_ENV)])
    pip = [str(python), "-m", "pip", "install", "--quiet", "--progress-bar", "off"]
    _run([*pip, "obp==0.5.7", "--no-deps"])
    _run([*pip, *OBP_REQUIREMENTS])
    has_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, check=False)
    if has_torch.returncode != 0:
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        shim = Path(site) / "torch" / "__init__.py"
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(TORCH_SHIM, encoding="utf-8")
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        raise RuntimeError(f"{OBP_ENV} was created but `import obp` still fails")


# ================================================================================================ workers
class Workers:
    """Runs OBP-side and causalrec-side worker processes and keeps the exact commands for the record."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.commands: list[str] = []
        self.log = tmp / "workers.log"
        self.counter = 0

    def _path(self, stem: str, suffix: str) -> Path:
        self.counter += 1
        return self.tmp / f"{self.counter:03d}_{stem}{suffix}"

    def _command(self, side: str, name: str, arguments: list) -> tuple[list, Path]:
        out = self._path(f"{side}_{name}", ".json")
        if side == "obp":
            command = ["nice", str(obp_python()), str(OBP_SIDE), name, *map(str, arguments), "--out", str(out)]
        else:
            command = ["nice", sys.executable, str(Path(__file__).resolve()), "--worker", name,
                       *map(str, arguments), "--out", str(out)]
        self.commands.append(shlex.join(command))
        return command, out

    def run(self, side: str, name: str, arguments: list) -> dict:
        command, out = self._command(side, name, arguments)
        _run(command, log=self.log)
        return json.loads(out.read_text(encoding="utf-8"))

    def start(self, side: str, name: str, arguments: list):
        """Start a worker in the background; returns a callable that waits for it and returns its JSON."""
        command, out = self._command(side, name, arguments)
        stderr = self._path(f"{side}_{name}", ".stderr")
        with stderr.open("w", encoding="utf-8") as stream:
            process = subprocess.Popen(command, env={**os.environ, **THREAD_ENV}, stdout=stream, stderr=stream)

        def wait() -> dict:
            if process.wait() != 0:
                raise RuntimeError(f"{shlex.join(command)} exited {process.returncode}:\n{stderr.read_text()[-4000:]}")
            return json.loads(out.read_text(encoding="utf-8"))

        return wait

    def config(self, stem: str, payload) -> Path:
        path = self._path(stem, ".json")
        path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        return path


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ================================================================================================ estimators
def spec(key: str, kind: str, lam=None, **extra) -> dict:
    return {"key": key, "kind": kind, "lambda": None if lam is None or lam == np.inf else float(lam), **extra}


def lambda_specs(kind: str, lambdas) -> list[dict]:
    return [spec(f"{kind}(lambda={'inf' if lam is None else f'{lam:g}'})", kind, lam) for lam in lambdas]


EQUALITY_SPECS = [
    spec("dm", "dm"), spec("ips", "ips"), *lambda_specs("ips", [2, 10]), spec("snips", "snips"),
    spec("dr", "dr"), *lambda_specs("dr", [2, 10]), spec("sndr", "sndr"),
    *lambda_specs("switch-dr", [1, 5, 20, None]), *lambda_specs("dr-os", [1, 10, 100, 1000, None]),
]
OBD_SPECS = [
    spec("dm", "dm"), spec("ips", "ips"), spec("snips", "snips"), spec("dr", "dr"), spec("sndr", "sndr"),
    *lambda_specs("switch-dr", LAMBDA_GRID), *lambda_specs("dr-os", LAMBDA_GRID),
]
OBP_TUNING_SPECS = [
    spec("switch-dr(SLOPE-tuned)", "switch-dr-tuning", lambdas=LAMBDA_GRID),
    spec("dr-os(SLOPE-tuned)", "dr-os-tuning", lambdas=LAMBDA_GRID),
]
# OBP's example examples/obd/evaluate_off_policy_estimators.py compares DM, IPW, SNIPW, DR, SNDR and the two
# SLOPE-tuned estimators below (its lambda grid, which ends at inf); its doubly robust family is the last four.
EXAMPLE_LAMBDAS = [10, 50, 100, 500, 1000, 5000, 10000, None]
# The example builds its estimator list once and reuses it on every resample; OBP 0.5.7's tuning estimators cache
# the threshold tuned on their first call, so there every resample uses the threshold of the first one ("as run
# by the example": this reproduces the issue's numbers). Fresh instances per resample tune on each resample.
OBP_EXAMPLE_TUNING_SPECS = [
    spec("switch-dr(example SLOPE-tuned)", "switch-dr-tuning", lambdas=EXAMPLE_LAMBDAS),
    spec("dr-os(example SLOPE-tuned)", "dr-os-tuning", lambdas=EXAMPLE_LAMBDAS),
    spec("switch-dr(example SLOPE-tuned, threshold of the first resample)", "switch-dr-tuning",
         lambdas=EXAMPLE_LAMBDAS, reuse=True),
    spec("dr-os(example SLOPE-tuned, threshold of the first resample)", "dr-os-tuning",
         lambdas=EXAMPLE_LAMBDAS, reuse=True),
]
OBP_EXAMPLE_DR_FAMILY = ["dr", "sndr", *(s["key"] for s in OBP_EXAMPLE_TUNING_SPECS[:2])]
OBP_EXAMPLE_AS_RUN_DR_FAMILY = ["dr", "sndr", *(s["key"] for s in OBP_EXAMPLE_TUNING_SPECS[2:])]
DR_FAMILY_KINDS = ("dr", "sndr", "switch-dr", "dr-os", "switch-dr-tuning", "dr-os-tuning")
SPEED_SPECS = [
    spec("dm", "dm"), spec("ips", "ips"), spec("ips(lambda=20)", "ips", 20), spec("snips", "snips"),
    spec("dr", "dr"), spec("sndr", "sndr"), spec("switch-dr(lambda=20)", "switch-dr", 20),
    spec("dr-os(lambda=100)", "dr-os", 100),
]


def causalrec_estimator(item: dict):
    """The causalrec estimator of a spec; named by the spec's key so that several lambdas fit in one call."""
    from causalrec.ope.estimators import ESTIMATORS
    from causalrec.ope.tuning import AutoEstimator

    if item["kind"] == "auto":
        estimator = AutoEstimator()
    elif item["kind"] in ("ips", "dr", "switch-dr", "dr-os"):
        lam = np.inf if item["lambda"] is None else item["lambda"]
        estimator = ESTIMATORS[item["kind"]](lam)
    else:
        estimator = ESTIMATORS[item["kind"]]()
    # evaluate_policy refuses two estimators of one name; an instance attribute gives each lambda its own.
    estimator.name = item["key"]
    return estimator


def _relative_difference(ours: float, theirs: float) -> float:
    if theirs == ours:
        return 0.0
    return abs(ours - theirs) / abs(theirs) if theirs != 0 else abs(ours - theirs)


# ================================================================================================ worker bodies
def _feedback_from_arrays(arrays, n_actions: int, n_positions: int):
    from causalrec.data.feedback import LoggedFeedback

    return LoggedFeedback(
        action=arrays["action"], reward=arrays["reward"], position=arrays["position"], pscore=arrays["pscore"],
        n_actions=n_actions, n_positions=n_positions,
    )


def worker_points(config: dict) -> dict:
    """Part 1, causalrec side: the same arrays as OBP, target = TableDistribution.from_dense(action_dist)."""
    from causalrec.ope.evaluate import evaluate_policy
    from causalrec.policy import TableDistribution

    data = np.load(config["inputs"])
    action_dist = data["action_dist"]
    feedback = _feedback_from_arrays(data, action_dist.shape[1], action_dist.shape[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate_policy(
            feedback, TableDistribution.from_dense(action_dist),
            estimators=[causalrec_estimator(item) for item in config["specs"]], estimated_rewards=data["q"],
        )
    return {"values": {e.estimator: e.value for e in result.estimates}}


def _resample_targets(logs, truth_logs, evaluation: str) -> dict:
    from causalrec.ope.open_bandit import bts_target
    from causalrec.policy import uniform_random

    feedback = logs.feedback
    if evaluation == "random":
        return {"uniform": uniform_random(feedback.n_rounds, feedback.n_actions, feedback.n_positions)}
    return {source: bts_target(logs, truth_logs, feedback.n_positions, source, random_state=0)[0]
            for source in ("logs", "prior")}


def worker_obd_resamples(config: dict) -> dict:
    """Part 2, causalrec side: evaluate_open_bandit-equivalent calls on each resample of the logs."""
    from causalrec.data.datasets import load_open_bandit
    from causalrec.ope.open_bandit import evaluate_open_bandit

    resamples = np.load(config["resamples"])
    estimator_specs = config["specs"]
    cells = {}
    for cell in config["cells"]:
        behavior, evaluation, campaign = cell["behavior"], cell["evaluation"], cell["campaign"]
        logs = load_open_bandit(behavior=behavior, campaign=campaign)
        truth_logs = load_open_bandit(behavior=evaluation, campaign=campaign)
        truth = float(truth_logs.feedback.reward.mean())
        targets = _resample_targets(logs, truth_logs, evaluation)
        sources = {}
        for source, target in targets.items():
            # The library's own entry point on the full logs, with its defaults: the diagnostics a user sees.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                full = evaluate_open_bandit(
                    campaign=campaign, behavior=behavior, evaluation=evaluation,
                    estimators=("auto", "ips", "snips", "dm", "dr"),
                    bts_source=source if evaluation == "bts" else "logs",
                )
            start = time.perf_counter()
            runs = _resample_runs(logs, target, resamples[f"{behavior}_{campaign}"], estimator_specs, config)
            seconds = time.perf_counter() - start
            sources[source] = {
                "seconds": seconds,
                "target": full.target,
                "full_sample": {
                    "values": {e.estimator: e.value for e in full.result.estimates},
                    "auto_note": full.result["auto"].note,
                    "reliable": bool(full.result.diagnostics.reliable),
                    "warnings": list(full.result.diagnostics.warnings),
                    "python_warnings": sorted({str(w.message) for w in caught}),
                    "diagnostics": full.result.diagnostics.to_dict(),
                },
                "runs": runs,
                # The same resamples with OBP's own reward model (like for like: only the estimators differ).
                "runs_by_reward_model": {
                    name: _resample_runs(logs, target, resamples[f"{behavior}_{campaign}"], estimator_specs,
                                         config, _reward_model(params))
                    for name, params in config.get("extra_reward_models", {}).items()
                },
            }
        cells[f"{evaluation}<-{behavior}/{campaign}"] = {"truth": truth, "n_rounds": logs.n_rounds,
                                                        "sources": sources}
    return {"cells": cells}


def _reward_model(params: dict):
    """A reward model for causalrec's side from a benchmark config entry (OBP's example GBC)."""
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(**params)


def _resample_runs(logs, target, indices, estimator_specs: list, config: dict, reward_model=None) -> list:
    """``evaluate_policy`` on every resample of the logs; a crash is recorded as a run, not raised."""
    from causalrec.ope.evaluate import evaluate_policy

    runs = []
    for b, rows in enumerate(indices):
        try:
            with warnings.catch_warnings(record=True) as run_caught:
                warnings.simplefilter("always")
                result = evaluate_policy(
                    logs.feedback.take(rows), target.take(rows),
                    estimators=[causalrec_estimator(item) for item in estimator_specs],
                    reward_model=reward_model, random_state=int(config["seed_offset"] + b),
                )
            runs.append({
                "resample": b,
                "values": {e.estimator: e.value for e in result.estimates},
                "ci": {e.estimator: [e.ci_low, e.ci_high] for e in result.estimates},
                "auto_note": result["auto"].note,
                "reliable": bool(result.diagnostics.reliable),
                "warnings": list(result.diagnostics.warnings),
                "python_warnings": sorted({str(w.message) for w in run_caught}),
                "ess": result.diagnostics.ess,
                "constant_reward_folds": result.metadata.get("constant_reward_folds"),
            })
        except Exception as error:  # a crash is a result here: record it and go on
            runs.append({"resample": b, "error": f"{type(error).__name__}: {error}"})
    return runs


def worker_generate(config: dict) -> dict:
    """Part 3 inputs: simulated logs, a softmax target and a fixed reward model, dense and compact."""
    from causalrec.data.simulate import make_world

    rng = np.random.default_rng(config["seed"] + 1)
    world = make_world(
        n_users=config["n_users"], n_items=config["n_actions"], n_positions=config["n_positions"],
        random_state=config["seed"],
    )
    logs = world.sample_logs(config["n_rounds"], random_state=config["seed"] + 2)
    users = logs.user_id
    # Target: a softmax of a (different) noisy copy of the relevance, the same at every slot.
    scores = world.relevance + rng.normal(scale=0.5, size=world.relevance.shape)
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    target_table = np.repeat((scores / scores.sum(axis=1, keepdims=True))[:, :, None], config["n_positions"], axis=2)
    # A fixed reward model: the true expected reward distorted by per-(user, item, slot) multiplicative noise.
    q_table = np.clip(world.expected_reward() * np.exp(rng.normal(scale=0.3, size=target_table.shape)), 0.0, 1.0)
    # The target's value over the logged (user, slot) pairs, from per-(user, slot) values (no support arrays).
    per_user_slot = (target_table * world.expected_reward()).sum(axis=1)
    truth = float(per_user_slot[users, logs.position].mean())
    np.savez(
        config["out_npz"], action=logs.action, reward=logs.reward, position=logs.position, pscore=logs.pscore,
        user_id=users, action_dist=target_table[users], q=q_table[users], target_table=target_table,
        q_table=q_table,
    )
    return {"truth_conditional": truth, "n_rounds": logs.n_rounds, "n_users": world.n_users,
            "n_actions": world.n_items, "n_positions": world.n_positions,
            "mean_reward": float(logs.reward.mean()), "file_bytes": os.path.getsize(config["out_npz"])}


def worker_speed(config: dict) -> dict:
    """Part 3, causalrec side: one task (points + analytic intervals, or bootstrap) in its own process."""
    from causalrec.ope.evaluate import evaluate_policy
    from causalrec.ope.inference import default_n_jobs
    from causalrec.policy import TableDistribution

    rss_imports = _rss_mb()
    data = np.load(config["inputs"])
    keys = ["action", "reward", "position", "pscore", "q", "user_id"]
    keys += ["action_dist"] if config["target"] == "dense" else ["target_table"]
    arrays = {key: data[key] for key in keys}
    del data
    rss_loaded = _rss_mb()
    n_actions, n_positions = arrays["q"].shape[1], arrays["q"].shape[2]
    estimators = [causalrec_estimator(item) for item in config["specs"]]
    options = {"ci": "analytic"} if config["task"] == "analytic" else {
        "ci": "bootstrap", "n_bootstrap": config["n_bootstrap"], "bootstrap_method": config["task"].split("-")[1],
        "n_jobs": config.get("n_jobs"),
    }
    runs, result = [], None
    for _ in range(config.get("repeats", 1)):  # the same call again in this process: the median is reported
        result = None  # the previous call's result is not held while the next one runs
        wall, cpu = time.perf_counter(), time.process_time()
        feedback = _feedback_from_arrays(arrays, n_actions, n_positions)
        if config["target"] == "dense":
            # The same (n, A, L) array OBP gets; copy=False: a read-only view of the loaded array (nobody modifies
            # it), as a user with a multi-GB array would.
            target = TableDistribution.from_dense(arrays["action_dist"], copy=False)
        else:
            # causalrec's native form of a per-user policy: one table per user and the user of each round.
            target = TableDistribution(arrays["target_table"], arrays["user_id"])
        wrap_wall, wrap_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = evaluate_policy(feedback, target, estimators=estimators, estimated_rewards=arrays["q"],
                                     random_state=0, **options)
        call_wall, call_cpu = time.perf_counter() - wall, time.process_time() - cpu
        runs.append({"wrap_wall_s": wrap_wall, "wrap_cpu_s": wrap_cpu, "call_wall_s": call_wall,
                     "call_cpu_s": call_cpu, "wall_s": wrap_wall + call_wall, "cpu_s": wrap_cpu + call_cpu})
        del feedback, target
    median = sorted(runs, key=lambda run: run["wall_s"])[(len(runs) - 1) // 2]
    return {
        "task": config["task"], "target": config["target"], "n_jobs": options.get("n_jobs"),
        "bootstrap_threads": (options.get("n_jobs") or default_n_jobs()) if options["ci"] == "bootstrap" else None,
        "rss_after_imports_mb": rss_imports, "rss_after_load_mb": rss_loaded,
        **median, "timing": f"the call with the median wall-clock time of {len(runs)}", "runs": runs,
        "peak_rss_mb": _peak_mb(),
        "values": {e.estimator: e.value for e in result.estimates},
        "intervals": {e.estimator: [e.ci_low, e.ci_high] for e in result.estimates},
    }


def worker_info(config: dict) -> dict:
    import lightgbm
    import pandas
    import scipy
    import sklearn

    import causalrec

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    return {"python": sys.version, "executable": sys.executable, "platform": platform.platform(),
            "causalrec": causalrec.__version__, "git_commit": commit, "numpy": np.__version__,
            "pandas": pandas.__version__, "scikit-learn": sklearn.__version__, "scipy": scipy.__version__,
            "lightgbm": lightgbm.__version__}


WORKERS = {"points": worker_points, "obd-resamples": worker_obd_resamples, "generate": worker_generate,
           "speed": worker_speed, "info": worker_info}


# ================================================================================================ part 1
def part_equality(workers: Workers, tmp: Path) -> dict:
    """Point estimates of both libraries on identical arrays."""
    from causalrec.data.simulate import make_world
    from causalrec.policy import epsilon_greedy, greedy_top_k, softmax

    specs_path = workers.config("equality_specs", EQUALITY_SPECS)
    cases = []
    for campaign in CAMPAIGNS:
        logs = np.load(tmp / f"obp_logs_random_{campaign}.npz")
        q = np.load(tmp / f"obp_q_random_{campaign}.npy")
        n, n_actions, n_positions = q.shape
        bts = np.broadcast_to(np.load(tmp / f"obp_bts_table_{campaign}.npy"), q.shape)
        for target_name, action_dist in (("bts (OBP Monte Carlo)", bts),
                                          ("uniform random", np.full(q.shape, 1.0 / n_actions))):
            cases.append((f"obd {campaign}: {target_name} <- random", logs, action_dist, q))
    for n_positions in (3, 1):
        world = make_world(n_users=2000, n_items=40, n_positions=n_positions, random_state=3)
        logs = world.sample_logs(30_000, random_state=4)
        rng = np.random.default_rng(5)
        user_scores = world.relevance + rng.normal(scale=1.0, size=world.relevance.shape)
        q_table = np.clip(world.expected_reward() * np.exp(rng.normal(scale=0.3, size=(2000, 40, n_positions))), 0, 1)
        arrays = {"action": logs.action, "reward": logs.reward, "position": logs.position, "pscore": logs.pscore}
        for target_name, policy in (("softmax(T=0.5)", softmax(user_scores, 0.5, n_positions)),
                                     ("epsilon-greedy(0.1)", epsilon_greedy(user_scores, 0.1, n_positions)),
                                     ("greedy top-k (zero weights)", greedy_top_k(user_scores, n_positions))):
            action_dist = policy.take(logs.user_id).to_dense()
            cases.append((f"simulated L={n_positions}: {target_name} <- logging softmax", arrays, action_dist,
                          q_table[logs.user_id]))
    table = []
    for index, (name, logs, action_dist, q) in enumerate(cases):
        inputs = tmp / f"equality_{index}.npz"
        np.savez(inputs, action=logs["action"], reward=logs["reward"], position=logs["position"],
                 pscore=logs["pscore"], action_dist=np.ascontiguousarray(action_dist), q=q)
        theirs = workers.run("obp", "points", ["--inputs", inputs, "--spec", specs_path])["values"]
        config = workers.config("points", {"inputs": str(inputs), "specs": EQUALITY_SPECS})
        ours = workers.run("causalrec", "points", ["--config", config])["values"]
        weight = action_dist[np.arange(len(logs["action"])), logs["action"], logs["position"]] / logs["pscore"]
        rows = {key: {"causalrec": ours[key], "obp": theirs[key],
                      "relative_difference": _relative_difference(ours[key], theirs[key])} for key in theirs}
        table.append({"case": name, "n_rounds": int(len(logs["action"])), "shape": list(action_dist.shape),
                      "max_weight": float(weight.max()), "share_zero_weight": float((weight == 0).mean()),
                      "estimates": rows})
        print(f"  equality: {name}: max rel diff "
              f"{max(r['relative_difference'] for r in rows.values()):.2e}", flush=True)
    per_estimator = {spec_["key"]: max(case["estimates"][spec_["key"]]["relative_difference"] for case in table)
                     for spec_ in EQUALITY_SPECS}
    worst = max(per_estimator.values())
    return {
        "question": "point estimates equal OBP 0.5.7's on identical inputs to <= 1e-9 relative",
        "target_relative_difference": 1e-9,
        "met": bool(worst <= 1e-9),
        "max_relative_difference": worst,
        "max_relative_difference_per_estimator": per_estimator,
        "inputs": (
            "OBD: OBP's own arrays of the random logs (OpenBanditDataset), action_dist = OBP's BernoulliTS "
            "compute_batch_action_dist (n_sim=100000, zozotown prior, random_state=12345) tiled to (n, A, 3) or "
            "uniform 1/A; estimated_rewards = one OBP RegressionModel(LightGBM) fit_predict (3 folds) on those "
            "logs, the same (n, A, 3) array for both. Simulated: causalrec.simulate.make_world(n_users=2000, "
            "n_items=40) logs (30,000 rounds), dense targets (softmax / epsilon-greedy / greedy top-k of noisy "
            "relevance; greedy gives many zero weights), "
            "estimated rewards = true expected reward x lognormal noise. causalrec gets "
            "TableDistribution.from_dense(action_dist) and estimated_rewards=q; OBP gets the arrays."
        ),
        "cases": table,
    }


# ================================================================================================ part 2
def _row_map(causalrec_feedback, obp_logs) -> tuple[np.ndarray, dict]:
    """``obp_row[i]``: OBP's row holding the same round as causalrec's row ``i`` (both sort by timestamp, but
    OBP's sort is not stable, so rounds with equal timestamps may come in another order)."""

    def order(action, position, reward, pscore, context):
        columns = [*np.asarray(context, dtype=np.float64).T[::-1], np.round(pscore, 12), reward, position, action]
        return np.lexsort(columns)

    ours = order(causalrec_feedback.action, causalrec_feedback.position, causalrec_feedback.reward,
                 causalrec_feedback.pscore, causalrec_feedback.context)
    theirs = order(obp_logs["action"], obp_logs["position"], obp_logs["reward"], obp_logs["pscore"],
                   obp_logs["context"])
    obp_row = np.empty_like(ours)
    obp_row[ours] = theirs
    for key in ("action", "position", "reward"):
        if not np.array_equal(obp_logs[key][obp_row], getattr(causalrec_feedback, key)):
            raise RuntimeError(f"OBP and causalrec rows differ in {key} after matching")
    if not np.array_equal(obp_logs["context"][obp_row], causalrec_feedback.context):
        raise RuntimeError("OBP and causalrec rows differ in context after matching")
    pscore_gap = np.abs(obp_logs["pscore"][obp_row] - causalrec_feedback.pscore) / causalrec_feedback.pscore
    return obp_row, {"rows_in_another_order": int((obp_row != np.arange(len(obp_row))).sum()),
                     "max_relative_pscore_gap": float(pscore_gap.max())}


def _completed(runs: list) -> set:
    """Resample numbers of the runs that returned estimates (not an error)."""
    return {run["resample"] for run in runs if "values" in run}


def _summarise_runs(runs: list, truth: float, keys: list, resamples: set | None = None) -> dict:
    """Mean / SD relative error per estimator over the completed runs, restricted to ``resamples`` when given
    (the resamples every side of a cell completed, so that both libraries are averaged over the same rounds)."""
    ok = [run for run in runs if "values" in run and (resamples is None or run["resample"] in resamples)]
    summary = {}
    for key in keys:
        values = np.array([run["values"][key] for run in ok], dtype=np.float64)
        finite = values[np.isfinite(values)]
        errors = np.abs(finite - truth) / truth
        summary[key] = {
            "mean_relative_error": float(errors.mean()) if errors.size else float("nan"),
            "sd_relative_error": float(errors.std(ddof=1)) if errors.size > 1 else float("nan"),
            "mean_estimate": float(finite.mean()) if finite.size else float("nan"),
            "n_finite": int(finite.size),
        }
    return summary


def bts_n_sim(args) -> int:
    """Monte-Carlo draws of OBP's BTS distribution: OBP's example uses 1,000,000 (its default)."""
    return 1_000_000 if args.obp_pipeline == "example" else BTS_SIMULATIONS


def _example_acceptance(obp_summary: dict, default: dict, ours_default: float, name: str) -> dict:
    """Per-cell comparison with the best of the doubly robust estimators of OBP's example (the issue's
    reference protocol): causalrec's default as is, and causalrec's ``auto`` on OBP's own reward model."""
    best_key = min(OBP_EXAMPLE_DR_FAMILY, key=lambda k: obp_summary[k]["mean_relative_error"])
    best = obp_summary[best_key]["mean_relative_error"]
    as_run_key = min(OBP_EXAMPLE_AS_RUN_DR_FAMILY, key=lambda k: obp_summary[k]["mean_relative_error"])
    as_run = obp_summary[as_run_key]["mean_relative_error"]
    same = default["with_obp_reward_model"]["obp_example_gbc"]["estimators"]["auto"]["mean_relative_error"]
    return {
        "obp_example_best_as_run": {
            "estimator": as_run_key, "mean_relative_error": as_run, "issue_reference": ISSUE_REFERENCE_OBP_BEST[name],
            "reproduces_issue_reference": bool(abs(as_run - ISSUE_REFERENCE_OBP_BEST[name]) < 0.0005)},
        "at_or_below_obp_example_best_as_run": bool(ours_default <= as_run),
        "obp_example_best": {"estimator": best_key, "mean_relative_error": best},
        "at_or_below_obp_example_best": bool(ours_default <= best),
        "causalrec_auto_obp_reward_model_mean_relative_error": same,
        "same_reward_model_at_or_below_obp_example_best": bool(same <= best),
    }


def obd_resample_rows(seed: int, n_resamples: int) -> dict[str, np.ndarray]:
    """Rows of each paired bootstrap resample of every Open Bandit file, keyed ``"{behavior}_{campaign}"``
    (one generator, files in a fixed order: other benchmarks reuse exactly these resamples)."""
    from causalrec.data.datasets import load_open_bandit

    rng = np.random.default_rng(seed)
    rows = {}
    for behavior in ("random", "bts"):
        for campaign in CAMPAIGNS:
            n_rounds = load_open_bandit(behavior=behavior, campaign=campaign).feedback.n_rounds
            rows[f"{behavior}_{campaign}"] = rng.integers(0, n_rounds, size=(n_resamples, n_rounds))
    return rows


def obp_example_resample_rows(n_rounds: int, n_resamples: int) -> np.ndarray:
    """OBP's own bootstrap, in OBP's row order: resample ``b`` is the rows of
    ``OpenBanditDataset.sample_bootstrap_bandit_feedback(random_state=b)``, i.e.
    ``np.random.RandomState(b).choice(n_rounds, n_rounds, replace=True)``, the resamples of OBP's example
    ``examples/obd/evaluate_off_policy_estimators.py`` (``b = 0, ..., n_runs - 1``)."""
    return np.stack([np.random.RandomState(b).choice(np.arange(n_rounds), size=n_rounds, replace=True)
                     for b in range(n_resamples)])


def part_obd(workers: Workers, tmp: Path, args) -> dict:
    from causalrec.data.datasets import load_open_bandit

    cells = [{"behavior": "random", "evaluation": "bts", "campaign": c} for c in CAMPAIGNS]
    cells += [{"behavior": "bts", "evaluation": "random", "campaign": c} for c in CAMPAIGNS]
    ours_indices = obd_resample_rows(args.seed, args.n_resamples) if args.resampling == "default-rng" else {}
    obp_indices, matching = {}, {}
    for behavior in ("random", "bts"):
        for campaign in CAMPAIGNS:
            key = f"{behavior}_{campaign}"
            feedback = load_open_bandit(behavior=behavior, campaign=campaign).feedback
            obp_row, facts = _row_map(feedback, np.load(tmp / f"obp_logs_{key}.npz"))
            if args.resampling == "default-rng":
                obp_indices[key] = obp_row[ours_indices[key]]
            else:  # OBP's rows first, then causalrec's row holding the same round
                obp_indices[key] = obp_example_resample_rows(feedback.n_rounds, args.n_resamples)
                ours_indices[key] = np.argsort(obp_row)[obp_indices[key]]
            matching[f"{behavior}/{campaign}"] = facts
    np.savez(tmp / "resamples_causalrec.npz", **ours_indices)
    np.savez(tmp / "resamples_obp.npz", **obp_indices)
    example = args.obp_pipeline == "example"
    obp_specs = OBD_SPECS + OBP_TUNING_SPECS + (OBP_EXAMPLE_TUNING_SPECS if example else [])
    ours_specs = [spec("auto", "auto"), *OBD_SPECS]
    obp_wait = workers.start("obp", "obd-resamples", [
        "--data-path", Path(os.environ["CAUSALREC_DATA_DIR"]) / "obd-sample", "--tables-dir", tmp,
        "--resamples", tmp / "resamples_obp.npz", "--spec", workers.config("obd_obp_specs", obp_specs),
        "--cells", json.dumps(cells), "--n-folds", 3, "--seed-offset", 0, "--pipeline", args.obp_pipeline,
    ])
    config = workers.config("obd_causalrec", {
        "cells": cells, "resamples": str(tmp / "resamples_causalrec.npz"), "specs": ours_specs, "seed_offset": 0,
        # With OBP's example pipeline, causalrec also runs with OBP's reward model (scikit-learn's GBC).
        "extra_reward_models": {"obp_example_gbc": OBP_EXAMPLE_GBC} if example else {},
    })
    ours = workers.run("causalrec", "obd-resamples", ["--config", config])
    theirs = obp_wait()
    table = {}
    dr_family = [s["key"] for s in obp_specs if s["kind"] in DR_FAMILY_KINDS and not s.get("reuse")]
    for cell in cells:
        name = f"{cell['evaluation']}<-{cell['behavior']}/{cell['campaign']}"
        obp_cell, our_cell = theirs["cells"][name], ours["cells"][name]
        truth = our_cell["truth"]
        # Paired: every mean of the cell is over the resamples that OBP and every causalrec run completed (a
        # resample on which OBP crashed is left out of causalrec's means too, and the reverse).
        paired = _completed(obp_cell["runs"])
        for item in our_cell["sources"].values():
            paired &= _completed(item["runs"])
            for other in item["runs_by_reward_model"].values():
                paired &= _completed(other)
        obp_summary = _summarise_runs(obp_cell["runs"], truth, [s["key"] for s in obp_specs], paired)
        best_key = min(dr_family, key=lambda k: obp_summary[k]["mean_relative_error"])
        our_sources = {}
        for source, item in our_cell["sources"].items():
            runs = item["runs"]
            our_sources[source] = {
                "target": item["target"],
                "estimators": _summarise_runs(runs, truth, [s["key"] for s in ours_specs], paired),
                "crashed_runs": sum("error" in run for run in runs),
                "errors": sorted({run["error"] for run in runs if "error" in run}),
                "share_resamples_unreliable": float(np.mean([not run["reliable"] for run in runs if "values" in run])),
                "resample_warnings": sorted({w for run in runs if "values" in run for w in run["warnings"]})[:20],
                "auto_choices": sorted({run["auto_note"].split(";")[0] for run in runs if "values" in run}),
                "runs_with_constant_reward_folds": sum(bool(run.get("constant_reward_folds")) for run in runs
                                                       if "values" in run),
                "full_sample": item["full_sample"],
                "seconds": item["seconds"],
                **({"with_obp_reward_model": {
                    name: {"estimators": _summarise_runs(other, truth, [s["key"] for s in ours_specs], paired),
                           "crashed_runs": sum("error" in run for run in other)}
                    for name, other in item["runs_by_reward_model"].items()}}
                   if item["runs_by_reward_model"] else {}),
            }
        default_source = "logs" if cell["evaluation"] == "bts" else "uniform"
        slope_best = min(obp_summary[s["key"]]["mean_relative_error"] for s in OBP_TUNING_SPECS)
        ours_default = our_sources[default_source]["estimators"]["auto"]["mean_relative_error"]
        all_resamples = {run["resample"] for run in obp_cell["runs"]}
        table[name] = {
            "truth": truth, "truth_obp": obp_cell["truth"], "n_rounds": our_cell["n_rounds"],
            "paired_resamples": len(paired),
            "resamples_left_out": sorted(all_resamples - paired),
            # The raw estimates behind every mean above, so that each summary can be recomputed.
            "estimates_per_resample": {
                "obp": {str(run["resample"]): run["values"] for run in obp_cell["runs"] if "values" in run},
                **{f"causalrec/{source}": {str(run["resample"]): run["values"] for run in item["runs"]
                                           if "values" in run}
                   for source, item in our_cell["sources"].items()},
                **{f"causalrec/{source}/{model}": {str(run["resample"]): run["values"] for run in other
                                                   if "values" in run}
                   for source, item in our_cell["sources"].items()
                   for model, other in item["runs_by_reward_model"].items()},
            },
            "obp": {
                "estimators": obp_summary,
                "crashed_runs": sum("error" in run for run in obp_cell["runs"]),
                "errors": sorted({run["error"] for run in obp_cell["runs"] if "error" in run}),
                "best_dr_family": {"estimator": best_key, **obp_summary[best_key]},
                "seconds": obp_cell["seconds"],
            },
            "causalrec": our_sources,
            "acceptance": {
                "causalrec_default": f"auto, bts_source={default_source!r}" if default_source == "logs" else "auto",
                "causalrec_default_mean_relative_error": ours_default,
                "obp_best_dr_family_mean_relative_error": obp_summary[best_key]["mean_relative_error"],
                "at_or_below_obp_best": bool(ours_default <= obp_summary[best_key]["mean_relative_error"]),
                # Like for like: OBP's estimators that, as ``auto``, choose their threshold without ground truth.
                "obp_best_slope_tuned_mean_relative_error": slope_best,
                "at_or_below_obp_best_slope_tuned": bool(ours_default <= slope_best),
                "at_or_below_issue_reference": bool(ours_default <= ISSUE_REFERENCE_OBP_BEST[name]),
                **({"causalrec_auto_prior_mean_relative_error":
                    our_sources["prior"]["estimators"]["auto"]["mean_relative_error"],
                    "prior_at_or_below_obp_best": bool(our_sources["prior"]["estimators"]["auto"]
                                                       ["mean_relative_error"]
                                                       <= obp_summary[best_key]["mean_relative_error"])}
                   if "prior" in our_sources else {}),
                **(_example_acceptance(obp_summary, our_sources[default_source], ours_default, name)
                   if example else {}),
            },
        }
        print(f"  obd {name}: causalrec auto {ours_default:.3f} vs OBP best {best_key} "
              f"{obp_summary[best_key]['mean_relative_error']:.3f}, OBP best SLOPE-tuned {slope_best:.3f}"
              + (f", OBP example's best {table[name]['acceptance']['obp_example_best']['mean_relative_error']:.3f}"
                 f" (as run by the example "
                 f"{table[name]['acceptance']['obp_example_best_as_run']['mean_relative_error']:.4f})"
                 if example else ""), flush=True)
    women = table["random<-bts/women"]["causalrec"]["uniform"]
    return {
        "question": "mean relative error per estimator over paired bootstrap resamples of the Open Bandit sample",
        "n_resamples": args.n_resamples,
        "resampling": (("rounds of the logging policy's file drawn with replacement (numpy default_rng("
                        f"{args.seed}).integers)" if args.resampling == "default-rng" else
                        "OBP's own bootstrap: resample b = 0, 1, ... is the rows of OBP's "
                        "OpenBanditDataset.sample_bootstrap_bandit_feedback(random_state=b) (numpy "
                        "RandomState(b).choice over OBP's row order), as in OBP's example "
                        "examples/obd/evaluate_off_policy_estimators.py")
                       + ", the same rounds for both libraries (OBP's row order matched to causalrec's by "
                         "content; OBP sorts by timestamp with an unstable sort)"),
        "row_matching": matching,
        "truth": "the evaluated policy's on-policy mean click of its own file (full file, not resampled)",
        "obp_pipeline": {
            "name": args.obp_pipeline,
            "reward_model": (
                "obp.ope.RegressionModel(GradientBoostingClassifier(**gradient_boosting_classifier), len_list=3, "
                f"action_context=OBD item features).fit_predict(n_folds=3, random_state={OBP_EXAMPLE_FOLD_SEED}): "
                "OBP's example examples/obd/evaluate_off_policy_estimators.py --base_model lightgbm (OBP's "
                "examples map 'lightgbm' to scikit-learn's GradientBoostingClassifier)" if example else
                "obp.ope.RegressionModel(LGBMClassifier(**lightgbm), len_list=3, "
                "action_context=OBD item features).fit_predict(n_folds=3, random_state=resample)"),
            **({"gradient_boosting_classifier": theirs["gradient_boosting_classifier"]} if example
               else {"lightgbm": theirs["lightgbm"]}),
            "bts_target": "obp.policy.BernoulliTS(is_zozotown_prior=True, random_state=12345)"
                          f".compute_batch_action_dist(n_sim={bts_n_sim(args)})",
            "random_target": "obp.policy.Random(...).compute_batch_action_dist (uniform)",
            "estimators": obp_specs,
            "dr_family_for_best": dr_family,
        },
        "causalrec_pipeline": {
            "call": "evaluate_policy(logs.feedback.take(rows), target.take(rows), estimators=[...], "
                    "random_state=resample), defaults otherwise (cross-fitted LightGBM, 3 folds)",
            "bts_target": "causalrec.ope.open_bandit.bts_target(..., source='logs' | 'prior', random_state=0)",
            "estimators": ours_specs,
        },
        "issue_reference_obp_best_dr_family": ISSUE_REFERENCE_OBP_BEST,
        "random<-bts/women flagged unreliable": {
            "full_sample_reliable": women["full_sample"]["reliable"],
            "full_sample_warnings": women["full_sample"]["warnings"],
            "share_resamples_unreliable": women["share_resamples_unreliable"],
        },
        "pairing": "each cell's means (OBP's and causalrec's) are over the resamples that every run of the cell "
                   "completed; cells[...]['resamples_left_out'] lists the others (an OBP crash), and "
                   "cells[...]['estimates_per_resample'] holds every estimate",
        "bts_target_note": ("In the BTS <- random cells the two sides evaluate different descriptions of the BTS "
                            "policy: causalrec's default is the day-by-day distribution rebuilt from the BTS logs' "
                            "propensities (source='logs', the issue's time-indexed target; it reads no rewards), "
                            "OBP's is its static Monte-Carlo distribution from the published prior. The truth is "
                            "the same BTS on-policy value. causalrec with OBP's kind of target (source='prior') is "
                            "in cells[...]['acceptance']['causalrec_auto_prior_mean_relative_error'], and the "
                            "cells it meets are in cells_at_or_below['at_or_below_obp_best_same_bts_target']"),
        "met_all_cells": all(cell["acceptance"]["at_or_below_obp_best"] for cell in table.values()),
        "cells_at_or_below": {
            **{criterion: [name for name, cell in table.items() if cell["acceptance"][criterion]]
               for criterion in ("at_or_below_obp_best", "at_or_below_obp_best_slope_tuned",
                                 "at_or_below_issue_reference",
                                 *(("at_or_below_obp_example_best_as_run", "at_or_below_obp_example_best",
                                    "same_reward_model_at_or_below_obp_example_best") if example else ()))},
            # The same target description on both sides: OBP's prior-based BTS in the BTS <- random cells.
            "at_or_below_obp_best_same_bts_target": [
                name for name, cell in table.items()
                if cell["acceptance"].get("prior_at_or_below_obp_best", cell["acceptance"]["at_or_below_obp_best"])],
        },
        "zero_crashes_causalrec": all(sum(s["crashed_runs"] for s in cell["causalrec"].values()) == 0
                                      for cell in table.values()),
        "zero_crashes_obp": all(cell["obp"]["crashed_runs"] == 0 for cell in table.values()),
        "cells": table,
    }


# ================================================================================================ part 3
def part_speed(workers: Workers, tmp: Path, args) -> dict:
    load_before = os.getloadavg()
    inputs = tmp / "speed_inputs.npz"
    config = workers.config("generate", {
        "seed": 11, "n_users": args.n_users, "n_actions": args.n_actions, "n_positions": args.n_positions,
        "n_rounds": args.n_rounds, "out_npz": str(inputs),
    })
    generated = workers.run("causalrec", "generate", ["--config", config])
    print(f"  speed: inputs {generated['file_bytes'] / 2**30:.2f} GiB", flush=True)
    specs_path = workers.config("speed_specs", SPEED_SPECS)
    obp_points = workers.run("obp", "speed", ["--inputs", inputs, "--spec", specs_path, "--task", "points"])
    print(f"  speed: OBP points {obp_points['wall_s']:.2f} s", flush=True)
    obp_boot = workers.run("obp", "speed", ["--inputs", inputs, "--spec", specs_path, "--task", "bootstrap",
                                            "--n-bootstrap", args.obp_bootstrap_samples])
    print(f"  speed: OBP bootstrap ({args.obp_bootstrap_samples}) {obp_boot['wall_s']:.1f} s", flush=True)
    ours = {}
    for target in ("dense", "native"):
        for task in ("analytic", "bootstrap-poisson", "bootstrap-multinomial"):
            config = workers.config("speed", {"inputs": str(inputs), "specs": SPEED_SPECS, "target": target,
                                              "task": task, "n_bootstrap": args.n_bootstrap,
                                              "repeats": args.repeats})
            ours[f"{task}/{target}"] = workers.run("causalrec", "speed", ["--config", config])
            print(f"  speed: causalrec {task}/{target} {ours[f'{task}/{target}']['wall_s']:.2f} s", flush=True)
    # The same Poisson bootstrap on one thread: the per-core comparison (OBP's bootstrap loop uses one core).
    config = workers.config("speed", {"inputs": str(inputs), "specs": SPEED_SPECS, "target": "native",
                                      "task": "bootstrap-poisson", "n_bootstrap": args.n_bootstrap, "n_jobs": 1,
                                      "repeats": args.repeats})
    ours["bootstrap-poisson-1thread/native"] = workers.run("causalrec", "speed", ["--config", config])
    print(f"  speed: causalrec bootstrap-poisson-1thread/native "
          f"{ours['bootstrap-poisson-1thread/native']['wall_s']:.2f} s", flush=True)
    inputs.unlink()

    # OBP's bootstrap at 1,000 resamples: measured, or extrapolated linearly from fewer (fixed part + per resample).
    scale = args.n_bootstrap / args.obp_bootstrap_samples
    obp_boot_1000 = {}
    for clock in ("wall", "cpu"):
        fixed = sum(item[f"fixed_{clock}_s"] for item in obp_boot["per_estimator"].values())
        obp_boot_1000[f"{clock}_s"] = fixed + (obp_boot[f"{clock}_s"] - fixed) * scale
    point_diffs = {key: _relative_difference(ours["analytic/dense"]["values"][key], obp_points["values"][key])
                   for key in obp_points["values"]}

    def ratios(reference: dict, measured: dict) -> dict:
        return {"wall": reference["wall_s"] / measured["wall_s"], "cpu": reference["cpu_s"] / measured["cpu_s"]}

    summary = {"points_and_analytic": {}, "bootstrap": {}, "memory": {}}
    for target in ("dense", "native"):
        analytic = ours[f"analytic/{target}"]
        summary["points_and_analytic"][target] = {
            "causalrec_wall_s": analytic["wall_s"], "causalrec_cpu_s": analytic["cpu_s"],
            "causalrec_call_only_wall_s": analytic["call_wall_s"],
            "speedup_vs_obp_points": ratios(obp_points, analytic),
            "speedup_target": 10,
            "met_speedup": {clock: bool(value >= 10) for clock, value in ratios(obp_points, analytic).items()},
            "analytic_intervals_within_2s": {"wall": bool(analytic["wall_s"] <= 2.0),
                                             "cpu": bool(analytic["cpu_s"] <= 2.0)},
        }
        methods = ("poisson", "multinomial", "poisson-1thread") if target == "native" else ("poisson", "multinomial")
        for method in methods:
            boot = ours[f"bootstrap-{method}/{target}"]
            summary["bootstrap"][f"{method}/{target}"] = {
                "threads": boot["bootstrap_threads"],
                "causalrec_wall_s": boot["wall_s"], "causalrec_cpu_s": boot["cpu_s"],
                "bootstrap_only_cpu_s": boot["call_cpu_s"] - analytic["call_cpu_s"],
                "speedup_vs_obp": ratios(obp_boot_1000, boot), "speedup_target": 50,
                "met_speedup": {clock: bool(value >= 50) for clock, value in ratios(obp_boot_1000, boot).items()},
            }
        for task in ("analytic", "bootstrap-poisson", "bootstrap-multinomial"):
            reference = obp_points if task == "analytic" else obp_boot
            ratio = ours[f"{task}/{target}"]["peak_rss_mb"] / reference["peak_rss_mb"]
            summary["memory"][f"{task}/{target}"] = {
                "causalrec_peak_rss_mb": ours[f"{task}/{target}"]["peak_rss_mb"],
                "obp_peak_rss_mb": reference["peak_rss_mb"], "ratio": ratio, "met_half": bool(ratio <= 0.5),
            }
    return {
        "question": "speed and peak memory at 1M rounds, 80 actions: points, analytic intervals, 1,000 bootstraps",
        "setup": {
            "n_rounds": args.n_rounds, "n_actions": args.n_actions, "n_positions": args.n_positions,
            "n_users": args.n_users, "estimators": SPEED_SPECS,
            "inputs": ("causalrec.simulate.make_world(n_users, n_items=n_actions, n_positions) logs; target = "
                       "per-user softmax of noisy relevance; estimated rewards = expected reward x lognormal "
                       "noise; generated once, both sides load the same .npz"),
            "obp": ("OffPolicyEvaluation(...).estimate_policy_values(action_dist, estimated_rewards_by_reg_model)"
                    " for points; sum over the 8 estimators of estimate_interval(n_bootstrap_samples=B, "
                    "random_state=0) for the bootstrap"),
            "causalrec": ("evaluate_policy(feedback, target, estimators=8, estimated_rewards=q, ci=...) with "
                          "target 'dense' = TableDistribution.from_dense(action_dist) (OBP's array) or 'native' "
                          "= TableDistribution(per-user tables, user_id) (the compact form; q stays dense: "
                          "estimated_rewards has no compact form); times include building LoggedFeedback and "
                          "the target from the loaded arrays"),
            "obp_bootstrap_samples_measured": args.obp_bootstrap_samples,
            "obp_bootstrap_extrapolated": args.obp_bootstrap_samples != args.n_bootstrap,
            "extrapolation": ("t(1000) = fixed + (t(B) - fixed) * 1000 / B per estimator, fixed = the time of "
                              "that estimator's estimate_policy_value (input checks and per-round rewards)"),
            "threads": THREAD_ENV, "process_priority": "nice 10 (both sides)",
            "causalrec_bootstrap_threads": ("evaluate_policy(n_jobs=None) runs the bootstrap's row chunks in one "
                                            "Python thread per core (2 here; BLAS stays single-threaded); "
                                            "'poisson-1thread' is the same call with n_jobs=1. OBP's "
                                            "estimate_interval is a single-threaded Python loop."),
            "repeats": (f"causalrec: each task is called {args.repeats} times in its worker process (LoggedFeedback, "
                        "target and evaluate_policy each time) and the call with the median wall-clock time is "
                        "reported, all calls under 'runs'; OBP: one run of each task (its bootstrap alone takes "
                        "about 2 minutes)"),
            "peak_rss": "ru_maxrss of the worker process (includes the interpreter, imports and the loaded "
                        "inputs); each task is its own process",
        },
        "generated": generated,
        "load_average": {"before": load_before, "after": os.getloadavg(),
                         "note": "1/5/15-minute load averages of the shared 2-core machine; wall times under "
                                 "load, CPU times (user + sys of the worker) are the steadier comparison"},
        "summary": summary,
        "max_relative_difference_points_vs_obp": max(point_diffs.values()),
        "obp": {"points": obp_points, "bootstrap": obp_boot, "bootstrap_1000": obp_boot_1000},
        "causalrec": ours,
    }


# ================================================================================================ main
def machine_facts(workers: Workers) -> dict:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_at_start": os.getloadavg(),
        "causalrec_env": workers.run("causalrec", "info", ["--config", workers.config("info", {})]),
        "obp_env": workers.run("obp", "info", []),
        "obp_env_note": ("torch in the OBP environment is an import shim (no PyTorch): OBP 0.5.7 imports it "
                         "at module level for unused neural policy learners; pingouin and pyieoe (OBP "
                         "dependencies never imported here) are not installed"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="equality,obd,speed")
    parser.add_argument("--n-resamples", type=int, default=30)
    parser.add_argument("--n-rounds", type=int, default=1_000_000)
    parser.add_argument("--n-actions", type=int, default=80)
    parser.add_argument("--n-positions", type=int, default=3)
    parser.add_argument("--n-users", type=int, default=20_000)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--obp-bootstrap-samples", type=int, default=1000,
                        help="OBP resamples actually run; fewer than --n-bootstrap are extrapolated linearly")
    parser.add_argument("--repeats", type=int, default=3,
                        help="speed part: calls per causalrec task in its worker; the median is reported")
    parser.add_argument("--seed", type=int, default=20240607)
    parser.add_argument("--resampling", choices=("default-rng", "obp-example"), default="default-rng",
                        help="Open Bandit resamples: numpy default_rng(--seed), or OBP's own "
                             "sample_bootstrap_bandit_feedback(random_state=b) rows (--seed unused)")
    parser.add_argument("--obp-pipeline", choices=("benchmark", "example"), default="benchmark",
                        help="OBP's side of the Open Bandit cells: 'benchmark' = LightGBM with OBP's benchmark "
                             "settings, folds seeded per resample, BTS from 100,000 draws; 'example' = OBP's "
                             "examples/obd script (scikit-learn GBC, fold seed 12345, BTS from 1,000,000 draws, "
                             "its SLOPE-tuned estimators), which reproduces the issue's reference numbers; "
                             "causalrec then also runs with that reward model")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--suffix", default="", help="appended to the result file names (e.g. for a quick run)")
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--config")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.obp_pipeline == "example" and args.resampling != "obp-example":
        parser.error("--obp-pipeline example is OBP's example script, which draws its own resamples: "
                     f"pass --resampling obp-example as well (got --resampling {args.resampling})")
    if args.worker:
        config = json.loads(Path(args.config).read_text(encoding="utf-8"))
        _write_json(Path(args.out), WORKERS[args.worker](config))
        return 0

    from causalrec._results import write_json_atomic

    os.environ.setdefault("CAUSALREC_DATA_DIR", str((ROOT / ".." / "shared" / "data").resolve()))
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    ensure_obp_env()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ope_vs_obp_") as directory:
        tmp = Path(directory)
        workers = Workers(tmp)
        facts = machine_facts(workers)
        prepared = None
        if {"equality", "obd"} & set(parts):
            start = time.perf_counter()
            prepared = workers.run("obp", "obd-prepare", [
                "--data-path", Path(os.environ["CAUSALREC_DATA_DIR"]) / "obd-sample", "--out-dir", tmp,
                "--bts-n-sim", bts_n_sim(args),
            ])
            print(f"OBP data, BTS tables and reward models prepared in {time.perf_counter() - start:.0f} s",
                  flush=True)
        runners = {"equality": lambda: part_equality(workers, tmp),
                   "obd": lambda: part_obd(workers, tmp, args),
                   "speed": lambda: part_speed(workers, tmp, args)}
        for part in parts:
            print(f"part {part}", flush=True)
            start = time.perf_counter()
            first_command = len(workers.commands)
            result = runners[part]()
            result = {
                "benchmark": "causalrec OPE vs Open Bandit Pipeline 0.5.7",
                "part": part,
                "runtime_s": time.perf_counter() - start,
                "command": shlex.join(["nice", ".venv/bin/python", "benchmarks/ope_vs_obp.py",
                                       *(argv if argv is not None else sys.argv[1:])]),
                "obp_env_setup": (f"{OBP_BASE_PYTHON} -m venv {OBP_ENV}; {OBP_ENV}/bin/python -m pip install "
                                  f"obp==0.5.7 --no-deps; {OBP_ENV}/bin/python -m pip install "
                                  f"{' '.join(shlex.quote(r) for r in OBP_REQUIREMENTS)}; torch import shim "
                                  "written to its site-packages (done by ensure_obp_env when the env is missing)"),
                "worker_commands": workers.commands[first_command:],
                "machine": facts,
                **({"obp_prepare": prepared} if part in ("equality", "obd") else {}),
                **result,
            }
            path = write_json_atomic(args.out_dir / f"ope_vs_obp_{part}{args.suffix}.json", result)
            print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

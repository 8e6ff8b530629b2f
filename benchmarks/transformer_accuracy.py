"""Accuracy of the transformer models against reference models, on real data, over several seeds.

Two questions, each answered beside its baselines in one run:

1. Complete Journey, next-basket-item prediction (leave-last-basket-out, full-catalogue ranking, pessimistic
   ties, seen items kept): does the transformer recommender beat popularity and item-kNN by a clear margin, and
   does full-softmax cross-entropy beat sampled-negative BCE (SASRec's original loss)? Personal popularity
   (re-buy what you bought, then what everybody buys) is reported too: in grocery data it is the baseline to
   fear. A secondary table ranks only items the household never bought (seen items excluded from candidates
   and targets).
2. Open Bandit sample: is the transformer click model's out-of-fold log loss at least as good as LightGBM's on
   the same features (the ``design_matrix`` of the reward model), and, as the reward model of DM and DR, does
   it keep the off-policy error ``|estimate - on-policy truth of the evaluated policy|`` at or below
   LightGBM's? Each (campaign, direction) is evaluated with the same cross-fitting folds for both models; the
   out-of-fold predictions ``q_logged`` of the cross-fit give the log loss, so both numbers come from one fit.
   Target policies: uniform random, and BTS as a per-day distribution rebuilt from the BTS logs
   (``obd.bts_action_distribution_from_logs``; the static prior matches the logged BTS propensities poorly).

CPU budget: the whole run must finish within 25 minutes on 2 cores, so Complete Journey is subsampled (the
1,000 most bought products, 1,200 random households, a fixed subsample) and models are small; the JSON says
so. The two parts run in two processes with one torch thread each (``--jobs 1`` runs them one after the other).

Run: ``python benchmarks/transformer_accuracy.py`` (needs ``CAUSALREC_DATA_DIR`` for the Open Bandit sample).
Writes ``benchmarks/results/transformer_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "transformer_accuracy.json"
KS = (10, 20)

CJ_DATA = dict(min_item_count=20, max_items=1000, max_households=1200, random_state=0)
CJ_TRANSFORMER = dict(hidden_size=64, n_layers=2, n_heads=2, dropout=0.2, max_history=50, max_windows_per_user=2,
                      max_epochs=6, patience=2, batch_size=128, learning_rate=1e-3, validation_metric="ndcg@10",
                      repeat_aware=True, progress_bar=False)
KNN_GRID = [dict(n_neighbors=k, recency_decay=d) for k in (50, 200) for d in (None, 0.9, 0.8)]
OBD_CLICK_MODEL = dict(hidden_size=32, n_layers=1, n_heads=2, dropout=0.2, max_epochs=8, patience=3,
                       batch_size=512, learning_rate=1e-3, weight_decay=0.1)


def _machine() -> dict:
    import torch

    facts = {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_count": os.cpu_count(), "torch_threads_per_process": torch.get_num_threads(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        facts["load_average_at_start"] = os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    return facts


def _summaries(runs: list[dict]) -> dict:
    from causalrec.models.metrics import summarize_runs

    return summarize_runs(runs)


# ---------------------------------------------------------------------------------------------- Complete Journey
def complete_journey(seeds: list[int], quick: bool) -> dict:
    from causalrec.data.datasets.completejourney import purchase_sequences
    from causalrec.models import (
        ItemKNNRecommender,
        PopularityRecommender,
        RepeatPopularityRecommender,
        TransformerRecommender,
        ranking_metrics,
    )
    from causalrec.models.metrics import TIE_POLICY

    data_options = dict(CJ_DATA)
    transformer_options = dict(CJ_TRANSFORMER)
    if quick:
        data_options.update(max_items=300, max_households=200)
        transformer_options.update(max_epochs=1, hidden_size=32)
    data = purchase_sequences(**data_options)
    train, history, targets = data.train_sequences, data.test_history, data.test_targets
    new_targets = [np.setdiff1d(t, h) for t, h in zip(targets, history, strict=True)]

    def evaluate(scores: np.ndarray) -> dict:
        main = ranking_metrics(scores, targets, ks=KS)
        per_row = ranking_metrics(scores, targets, ks=(10,), per_row=True)["ndcg@10"]
        new = ranking_metrics(scores, new_targets, ks=KS, exclude=[np.unique(h) for h in history])
        return {"metrics": main, "new_items_only": new, "ndcg@10_per_row": per_row}

    results: dict[str, dict] = {}
    started = time.perf_counter()
    for name, model in (("popularity", PopularityRecommender()), ("repeat_popularity", RepeatPopularityRecommender())):
        model.fit(train, data.n_items)
        results[name] = {"runs": [evaluate(model.score(history))], "deterministic": True}
    # item-kNN: neighbourhood size and recency decay chosen on the validation baskets.
    grid = []
    for params in KNN_GRID:
        model = ItemKNNRecommender(**params).fit(train, data.n_items)
        grid.append((ranking_metrics(model.score(train), data.validation_targets, ks=(10,))["ndcg@10"], params))
    best_validation, best_params = max(grid, key=lambda pair: pair[0])
    knn = ItemKNNRecommender(**best_params).fit(train, data.n_items)
    results["item_knn"] = {"runs": [evaluate(knn.score(history))], "deterministic": True, "params": best_params,
                           "validation_grid": [{"ndcg@10": v, **p} for v, p in grid]}
    baseline_seconds = time.perf_counter() - started

    for label, loss in (("transformer_full_softmax", "full_softmax"), ("transformer_sampled_bce", "sampled_bce")):
        runs = []
        for seed in seeds:
            fit_started, fit_cpu = time.perf_counter(), time.process_time()
            model = TransformerRecommender(**transformer_options, loss=loss, random_state=seed).fit(
                train, data.n_items, baskets=data.train_baskets, validation_sequences=train,
                validation_targets=data.validation_targets,
            )
            run = evaluate(model.score(history))
            run.update(seed=seed, fit_seconds=time.perf_counter() - fit_started,
                       fit_cpu_seconds=time.process_time() - fit_cpu, best_epoch=model.history_.best_epoch,
                       epochs_run=len(model.history_.epochs))
            runs.append(run)
            logging.info("CJ %s seed %d: ndcg@10 %.4f (%.0fs)", label, seed, run["metrics"]["ndcg@10"],
                         run["fit_seconds"])
        results[label] = {"runs": runs, "params": {**transformer_options, "loss": loss}}

    table = {}
    for name, result in results.items():
        table[name] = {
            "metrics": _summaries([run["metrics"] for run in result["runs"]]),
            "new_items_only": _summaries([run["new_items_only"] for run in result["runs"]]),
        }
    # Paired per-household NDCG@10 differences of the transformer (each seed) against each baseline.
    comparisons = {}
    reference = results["transformer_full_softmax"]["runs"]
    for name in ("popularity", "item_knn", "repeat_popularity", "transformer_sampled_bce"):
        per_seed = []
        for index, run in enumerate(reference):
            other_runs = results[name]["runs"]
            other = other_runs[min(index, len(other_runs) - 1)]["ndcg@10_per_row"]
            difference = run["ndcg@10_per_row"] - other
            difference = difference[np.isfinite(difference)]
            se = difference.std(ddof=1) / np.sqrt(len(difference))
            per_seed.append({"seed": run["seed"], "mean_difference": float(difference.mean()), "se": float(se),
                             "ci95": [float(difference.mean() - 1.96 * se), float(difference.mean() + 1.96 * se)]})
        comparisons[f"transformer_full_softmax - {name}"] = per_seed

    def mean_ndcg(name: str) -> float:
        return table[name]["metrics"]["ndcg@10"]["mean"]

    def worst_seed_margin(name: str) -> float:
        return min(item["ci95"][0] for item in comparisons[f"transformer_full_softmax - {name}"])

    verdicts = {
        "beats_popularity": worst_seed_margin("popularity") > 0,
        "beats_item_knn": worst_seed_margin("item_knn") > 0,
        "full_softmax_beats_sampled_bce": worst_seed_margin("transformer_sampled_bce") > 0,
        "beats_repeat_popularity": worst_seed_margin("repeat_popularity") > 0,
        "relative_ndcg@10_gain_over_popularity": mean_ndcg("transformer_full_softmax") / mean_ndcg("popularity") - 1,
        "relative_ndcg@10_gain_over_item_knn": mean_ndcg("transformer_full_softmax") / mean_ndcg("item_knn") - 1,
        "relative_ndcg@10_gain_over_sampled_bce": (mean_ndcg("transformer_full_softmax")
                                                   / mean_ndcg("transformer_sampled_bce") - 1),
        "rule": "a verdict holds when the 95% interval of the paired per-household NDCG@10 difference is above 0 "
                "for every seed",
    }
    for result in results.values():
        for run in result["runs"]:
            run.pop("ndcg@10_per_row")
    return {
        "task": "next-basket-item prediction: rank the full catalogue for each household's last basket",
        "split": data.metadata["split"],
        "seen_item_policy": data.seen_item_policy,
        "secondary_table": "new_items_only: candidates and targets exclude every item in the household's history",
        "tie_policy": TIE_POLICY,
        "subsample": {**data_options, "n_households": data.n_households, "n_items": data.n_items,
                      "n_train_tokens": int(sum(len(s) for s in train)),
                      "why": "CPU budget (25 min on 2 cores for the whole benchmark)"},
        "n_test_households": int(sum(len(t) > 0 for t in targets)),
        "n_test_households_with_new_items": int(sum(len(t) > 0 for t in new_targets)),
        "seeds": seeds,
        "best_knn_validation_ndcg@10": best_validation,
        "table": table,
        "paired_ndcg@10_differences": comparisons,
        "verdicts": verdicts,
        "runs": results,
        "baseline_seconds": baseline_seconds,
    }


# ---------------------------------------------------------------------------------------------- Open Bandit
def open_bandit(seeds: list[int], quick: bool) -> dict:
    from sklearn.base import clone

    from causalrec.data.datasets import obd
    from causalrec.exceptions import CausalrecWarning
    from causalrec.models import TransformerClickModel, calibration_metrics, reward_model_layout
    from causalrec.ope.estimators import (
        DirectMethod,
        DoublyRobust,
        EstimatorInputs,
        InverseProbabilityWeighting,
    )
    from causalrec.ope.evaluate import importance_weights
    from causalrec.ope.reward_model import cross_fit_rewards, default_reward_model
    from causalrec.policy import TableDistribution, uniform_random

    warnings.simplefilter("ignore", CausalrecWarning)
    campaigns = ("all",) if quick else obd.CAMPAIGNS
    click_options = dict(OBD_CLICK_MODEL)
    if quick:
        click_options.update(max_epochs=1)
    settings, started = [], time.perf_counter()
    for campaign in campaigns:
        loaded = {b: obd.load_open_bandit(b, campaign, include_affinity=True) for b in obd.BEHAVIORS}
        bts_distribution = obd.bts_action_distribution_from_logs(loaded["bts"].feedback)
        for behavior, evaluation in (("random", "bts"), ("bts", "random")):
            logs = loaded[behavior].feedback
            truth = loaded[evaluation].on_policy_value
            if evaluation == "random":
                target = uniform_random(logs.n_rounds, logs.n_actions, logs.n_positions)
            else:
                target = TableDistribution(bts_distribution.distribution,
                                           bts_distribution.day_index_of(logs.timestamp))
            weight = importance_weights(logs, target)
            ipw = InverseProbabilityWeighting().estimate(EstimatorInputs(logs.reward, weight)).value
            models = {
                "lightgbm": lambda seed: default_reward_model(True, seed),
                "transformer": lambda seed, layout=reward_model_layout(logs): TransformerClickModel(
                    feature_layout=layout, random_state=seed, **click_options),
            }
            per_model = {}
            for name, make in models.items():
                runs = []
                for seed in seeds:
                    fit_started = time.perf_counter()
                    predictions = cross_fit_rewards(logs, target, clone(make(seed)), n_folds=3, random_state=seed)
                    inputs = EstimatorInputs(logs.reward, weight, predictions.q_logged, predictions.q_target)
                    dm = DirectMethod().estimate(inputs).value
                    dr = DoublyRobust().estimate(inputs).value
                    q_logged = np.clip(predictions.q_logged, 1e-6, 1 - 1e-6)
                    runs.append({
                        "seed": seed, "dm": dm, "dr": dr, "dm_error": abs(dm - truth), "dr_error": abs(dr - truth),
                        "oof_log_loss": calibration_metrics(logs.reward, q_logged)["log_loss"],
                        "oof_ece_quantile": calibration_metrics(logs.reward, q_logged)["ece_quantile"],
                        "constant_folds": predictions.n_constant_folds,
                        "seconds": time.perf_counter() - fit_started,
                    })
                per_model[name] = {"runs": runs, "summary": _summaries(runs)}
            constant = calibration_metrics(logs.reward, np.full(logs.n_rounds, logs.reward.mean()))["log_loss"]
            setting = {
                "campaign": campaign, "behavior": behavior, "evaluation": evaluation, "truth": truth,
                "n_clicks": int(logs.reward.sum()), "ipw": ipw, "ipw_error": abs(ipw - truth),
                "in_sample_constant_log_loss": constant, "models": per_model,
            }
            settings.append(setting)
            logging.info("OBD %s %s->%s: log loss lgbm %.5f transformer %.5f; DR error lgbm %.5f transformer %.5f",
                         campaign, behavior, evaluation,
                         per_model["lightgbm"]["summary"]["oof_log_loss"]["mean"],
                         per_model["transformer"]["summary"]["oof_log_loss"]["mean"],
                         per_model["lightgbm"]["summary"]["dr_error"]["mean"],
                         per_model["transformer"]["summary"]["dr_error"]["mean"])

    def mean_over_settings(model: str, key: str) -> float:
        return float(np.mean([s["models"][model]["summary"][key]["mean"] for s in settings]))

    aggregate = {model: {key: mean_over_settings(model, key) for key in ("oof_log_loss", "dm_error", "dr_error")}
                 for model in ("lightgbm", "transformer")}
    log_loss_wins = [s["models"]["transformer"]["summary"]["oof_log_loss"]["mean"]
                     <= s["models"]["lightgbm"]["summary"]["oof_log_loss"]["mean"] for s in settings]
    verdicts = {
        "log_loss_at_least_as_good_in_every_setting": all(log_loss_wins),
        "log_loss_settings_won": f"{sum(log_loss_wins)}/{len(log_loss_wins)}",
        "dm_error_not_worse_on_average": aggregate["transformer"]["dm_error"] <= aggregate["lightgbm"]["dm_error"],
        "dr_error_not_worse_on_average": aggregate["transformer"]["dr_error"] <= aggregate["lightgbm"]["dr_error"],
        "rule": "means over seeds per setting; OPE errors averaged over the settings (campaign x direction)",
    }
    return {
        "task": "click model on (user context, item, position); reward model of DM and DR",
        "features": "causalrec.ope.reward_model.design_matrix: one-hot user features + user-item affinities | "
                    "one-hot item | item features | one-hot position",
        "targets": {"random": "uniform over items at each position",
                    "bts": "per-day BTS distribution rebuilt from the BTS logs (obd.bts_action_distribution_from_logs)"},
        "cross_fitting": "3 folds, stratified on the click, folds seeded by the run's seed; log loss of the "
                         "out-of-fold predictions on the logged rows",
        "click_model_params": click_options,
        "lightgbm_params": "causalrec.ope.reward_model.default_reward_model",
        "seeds": seeds,
        "settings": settings,
        "aggregate": aggregate,
        "verdicts": verdicts,
        "seconds": time.perf_counter() - started,
    }


# ---------------------------------------------------------------------------------------------- driver
def _run_part(part: str, seeds: list[int], quick: bool, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = complete_journey(seeds, quick) if part == "cj" else open_bandit(seeds, quick)
    result["wall_seconds"] = time.perf_counter() - started
    result["process_cpu_seconds"] = time.process_time() - cpu_started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--parts", default="cj,obd")
    parser.add_argument("--jobs", type=int, default=2, help="run the parts in parallel processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (numbers meaningless)")
    parser.add_argument("--part-output", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    parts = [part for part in args.parts.split(",") if part]

    if args.part_output is not None:  # child process of a parallel run
        from causalrec._results import write_json_atomic

        write_json_atomic(args.part_output, _run_part(parts[0], seeds, args.quick, args.threads))
        return

    from causalrec._results import write_json_atomic

    started = time.perf_counter()
    machine = _machine()  # before the runs, so the load average describes the machine we started on
    results = {}
    if args.jobs > 1 and len(parts) > 1:
        with tempfile.TemporaryDirectory() as scratch:
            children = {}
            for part in parts:
                output = Path(scratch) / f"{part}.json"
                command = [sys.executable, __file__, "--parts", part, "--seeds", args.seeds, "--threads",
                           str(args.threads), "--part-output", str(output)] + (["--quick"] if args.quick else [])
                children[part] = (subprocess.Popen(command), output)
            for part, (child, output) in children.items():
                if child.wait() != 0:
                    raise SystemExit(f"part {part} failed with exit code {child.returncode}")
                results[part] = json.loads(output.read_text())
    else:
        for part in parts:
            results[part] = _run_part(part, seeds, args.quick, args.threads)
    payload = {
        "question": "transformer accuracy vs baselines (Complete Journey) and as OPE reward model (Open Bandit)",
        "quick_run": args.quick,
        "complete_journey": results.get("cj"),
        "open_bandit": results.get("obd"),
        "wall_seconds": time.perf_counter() - started,
        "budget": "<= 25 minutes on 2 CPU cores for the whole benchmark",
        "machine": machine | {"processes": min(args.jobs, len(parts)), "torch_threads_per_process": args.threads},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_json_atomic(args.out, payload)
    logging.info("wrote %s in %.0fs", args.out, payload["wall_seconds"])


if __name__ == "__main__":
    main()

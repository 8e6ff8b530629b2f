"""Simulator: off-policy evaluation when the logs lost their propensities.

Each replication builds a world (``make_world``, 1,000 users, 50 items, 3 slots, a softmax logger over the old
ranker's noisy scores with 10% uniform exploration), draws 20,000 logged rounds, removes the pscore
(``logs.with_pscore(None)``) and estimates it with ``causalrec.exposure.estimate_logging_propensities``:

* ``scores``: conditional logit of the old ranker's scores (``world.logging_scores``), cross-fitted;
* ``features``: multinomial logistic regression on the user features and slot, cross-fitted (misspecified here:
  the old ranker adds per-(user, item) noise that features cannot explain; shown as a warning case);
* ``marginal``: action frequencies per slot (ignores the context; a naive baseline).

Five candidate policies are evaluated with IPS, SNIPS and DR (one cross-fitted LightGBM reward model per
replication, shared by all estimates of it) from the true and from each estimated pscore, and compared with the
exact value (``world.policy_value``). Reported per estimator and pscore source: RMSE over replications (pooled
over policies and per policy), the ratio of RMSE to the true-pscore RMSE, and how often the ranking of the five
policies matches the true ranking (Kendall's tau = 1) and the share of correctly ordered pairs.

Run: ``nice .venv/bin/python benchmarks/exposure_simulator.py`` (``--replications 20``).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd
from _common import RESULTS, save_result
from scipy import stats
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from causalrec import CausalrecWarning, evaluate_policy, policy, simulate
from causalrec.exposure import estimate_logging_propensities
from causalrec.ope.reward_model import default_reward_model, design_matrix

N_ROUNDS = 20_000
ESTIMATORS = ("ips", "snips", "dr")
SOURCES = ("true", "scores", "features", "marginal")


def candidate_policies(world, rows: np.ndarray | None, n_positions: int) -> dict:
    """The candidate policies on the users ``rows`` (``None``: one round per user of the population)."""
    take = (lambda matrix: matrix) if rows is None else (lambda matrix: matrix[rows])
    return {
        "softmax relevance T=0.3": policy.softmax(take(world.relevance), 0.3, n_positions),
        "softmax relevance T=1": policy.softmax(take(world.relevance), 1.0, n_positions),
        "epsilon-greedy relevance 0.3": policy.epsilon_greedy(take(world.relevance), 0.3, n_positions),
        "softmax old ranker T=0.5": policy.softmax(take(world.logging_scores), 0.5, n_positions),
        "uniform": policy.uniform_random(len(take(world.relevance)), world.n_items, n_positions),
    }


def cross_fitted_rewards(feedback, n_folds: int, seed: int) -> np.ndarray:
    """``q(x_i, a, l_i)`` for every action of every round from a LightGBM click model fit on the other folds."""
    rng = np.random.default_rng(seed)
    folds = rng.permutation(feedback.n_rounds) % n_folds
    rows = np.arange(feedback.n_rounds)
    model = default_reward_model(True, seed)
    features = design_matrix(feedback, rows, feedback.action, feedback.position)
    q = np.empty((feedback.n_rounds, feedback.n_actions))
    for fold in range(n_folds):
        train, test = rows[folds != fold], rows[folds == fold]
        fitted = clone(model).fit(features[train], feedback.reward[train])
        grid_rows = np.repeat(test, feedback.n_actions)
        grid_actions = np.tile(np.arange(feedback.n_actions), len(test))
        grid = design_matrix(feedback, grid_rows, grid_actions, feedback.position[grid_rows])
        q[test] = fitted.predict_proba(grid)[:, 1].reshape(len(test), feedback.n_actions)
    return q


def replicate(rep: int) -> tuple[list[dict], dict]:
    world = simulate.make_world(n_users=1000, n_items=50, n_positions=3, random_state=1000 + rep)
    logs = world.sample_logs(N_ROUNDS, random_state=2000 + rep)
    bare = logs.with_pscore(None)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CausalrecWarning)
        estimates = {
            "scores": estimate_logging_propensities(bare, "scores", world.logging_scores, random_state=rep,
                                                    score_index=bare.user_id),
            "features": estimate_logging_propensities(bare, "features", random_state=rep),
            "marginal": estimate_logging_propensities(bare, "marginal", random_state=rep),
        }
    seconds = time.perf_counter() - start
    feedback = {"true": logs, **{name: estimate.feedback for name, estimate in estimates.items()}}
    q = cross_fitted_rewards(logs, 3, rep)
    targets = candidate_policies(world, logs.user_id, 3)
    truths = {name: world.policy_value(target) for name, target in candidate_policies(world, None, 3).items()}
    rows = []
    for source, logged in feedback.items():
        for name, target in targets.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CausalrecWarning)
                result = evaluate_policy(logged, target, estimators=ESTIMATORS, estimated_rewards=q)
            for estimator in ESTIMATORS:
                rows.append({"replication": rep, "source": source, "policy": name, "estimator": estimator,
                             "estimate": result[estimator].value, "truth": truths[name],
                             "error": result[estimator].value - truths[name], "ess": result.diagnostics.ess})
    facts = {
        source: {
            "correlation_log_pscore": float(np.corrcoef(np.log(e.pscore), np.log(logs.pscore))[0, 1]),
            "median_abs_log_ratio": float(np.median(np.abs(np.log(e.pscore / logs.pscore)))),
            "uniform_target_mean_weight": e.diagnostics["uniform_target_mean_weight"],
            "ess_share_uniform_target": e.diagnostics["ess_share_uniform_target"],
            "warnings": list(e.warnings),
        }
        for source, e in estimates.items()
    }
    facts["estimation_seconds"] = seconds
    facts["n_warnings"] = len(caught)
    facts["scores_parameters"] = estimates["scores"].parameters
    return rows, facts


def summarise(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rmse = (frame.assign(squared=frame["error"] ** 2)
            .groupby(["estimator", "source"])["squared"].mean().pow(0.5).rename("rmse").reset_index())
    reference = rmse[rmse["source"] == "true"].set_index("estimator")["rmse"]
    rmse["ratio_to_true_pscore"] = rmse["rmse"] / rmse["estimator"].map(reference)
    per_policy = (frame.assign(squared=frame["error"] ** 2)
                  .groupby(["estimator", "source", "policy"])["squared"].mean().pow(0.5).rename("rmse").reset_index())
    reference_policy = per_policy[per_policy["source"] == "true"].set_index(["estimator", "policy"])["rmse"]
    per_policy["ratio_to_true_pscore"] = per_policy["rmse"] / [
        reference_policy[(e, p)] for e, p in zip(per_policy["estimator"], per_policy["policy"], strict=True)
    ]
    ranking_rows = []
    for (estimator, source, rep), part in frame.groupby(["estimator", "source", "replication"]):
        tau = stats.kendalltau(part["estimate"], part["truth"]).statistic
        values, truth = part["estimate"].to_numpy(), part["truth"].to_numpy()
        pairs = [(i, j) for i in range(len(values)) for j in range(i + 1, len(values))]
        concordant = np.mean([np.sign(values[i] - values[j]) == np.sign(truth[i] - truth[j]) for i, j in pairs])
        true_source = frame[(frame["estimator"] == estimator) & (frame["source"] == "true")
                            & (frame["replication"] == rep)].set_index("policy")["estimate"]
        same_as_true = bool((part.set_index("policy")["estimate"].rank() == true_source.rank()).all())
        ranking_rows.append({"estimator": estimator, "source": source, "replication": rep, "kendall_tau": tau,
                             "pairs_correct": concordant, "ranking_equals_truth": bool(concordant == 1.0),
                             "ranking_equals_true_pscore_ranking": same_as_true})
    ranking = (pd.DataFrame(ranking_rows).groupby(["estimator", "source"])
               .agg(mean_kendall_tau=("kendall_tau", "mean"), share_ranking_equals_truth=("ranking_equals_truth", "mean"),
                    share_pairs_correct=("pairs_correct", "mean"),
                    share_same_ranking_as_true_pscore=("ranking_equals_true_pscore_ranking", "mean"))
               .reset_index())
    return rmse, per_policy, ranking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--summarise-only", action="store_true",
                        help="recompute the summaries from the runs stored in benchmarks/results/ (no simulation)")
    args = parser.parse_args()
    if args.summarise_only:
        stored = json.loads((RESULTS / "exposure_simulator.json").read_text())
        frame, facts = pd.DataFrame(stored["runs"]), stored["propensity_facts"]
        args.replications = int(frame["replication"].nunique())
    else:
        rows, facts = [], {}
        with threadpool_limits(1):
            for rep in range(args.replications):
                start = time.perf_counter()
                rep_rows, rep_facts = replicate(rep)
                rows += rep_rows
                facts[f"replication_{rep}"] = rep_facts
                print(f"replication {rep} done in {time.perf_counter() - start:.0f} s; scores corr "
                      f"{rep_facts['scores']['correlation_log_pscore']:.4f}")
        frame = pd.DataFrame(rows)
    rmse, per_policy, ranking = summarise(frame)
    with pd.option_context("display.width", 160):
        print(rmse.to_string(index=False, float_format=lambda v: f"{v:.5f}"))
        print(ranking.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    scores_rows = rmse[rmse["source"] == "scores"]
    scores_ranking = ranking[ranking["source"] == "scores"]
    acceptance = {
        "criterion": "RMSE with estimated (scores) propensities <= 1.5 x RMSE with true propensities, per estimator; "
                     "ranking of the candidate policies preserved in most replications",
        "max_rmse_ratio_scores": float(scores_rows["ratio_to_true_pscore"].max()),
        "max_rmse_ratio_scores_per_policy": float(per_policy[per_policy["source"] == "scores"]["ratio_to_true_pscore"].max()),
        "rmse_within_1_5x": bool((scores_rows["ratio_to_true_pscore"] <= 1.5).all()),
        "share_same_ranking_as_true_pscore": scores_ranking.set_index("estimator")["share_same_ranking_as_true_pscore"].to_dict(),
        "share_ranking_equals_truth": scores_ranking.set_index("estimator")["share_ranking_equals_truth"].to_dict(),
        "n_replications": args.replications,
    }
    print(acceptance)
    save_result("exposure_simulator", {
        "protocol": __doc__, "n_rounds": N_ROUNDS, "rmse": rmse, "rmse_per_policy": per_policy, "ranking": ranking,
        "acceptance": acceptance, "propensity_facts": facts, "runs": frame,
    })


if __name__ == "__main__":
    main()

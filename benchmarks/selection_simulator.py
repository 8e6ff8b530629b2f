"""Model selection by estimated uplift vs by accuracy on the logs, against the simulator's exact truth.

Configurations (each replicated ``--replications`` times with fresh logs; candidates are fixed score functions
over the population, so their true policy values are exact):

* ``default``: the default world; an ``oracle`` (the true conversion probability in the top slot), a ``noisy``
  copy of it, an ``organic`` model that predicts the outcome *without* exposure (it ignores what showing the item
  causes), and ``random`` scores.
* ``active-users``: users differ a lot in how much they convert whatever they are shown
  (``user_activity_scale=1.5``). The ``item-ranker`` knows each user's best items exactly but not how active the
  user is; ``activity-heavy`` knows who converts but ranks items poorly. Across logged rows, accuracy rewards
  modelling *who* converts, so the most accurate model on the logs (``noisy``) is not the best by true uplift
  (``item-ranker``).
* ``null``: a world where the reward does not depend on the item, so every candidate has the same true value as
  the baseline; the leaderboard should say "no significant winner" in at least 1 - alpha of the replications.

Per configuration: hit rate (the selected candidate is the truly best, or within ``--tolerance`` of its true
uplift) for uplift-based and accuracy-based selection, mean regret (true uplift of the best minus that of the
selected), Kendall's tau between estimated and true uplifts, coverage of the uplift intervals (unadjusted 95% and
Bonferroni-simultaneous), the rate of declared winners and of declared winners that are not within the tolerance
of the best (or whose true uplift is not above 0). Several estimators read the same logs in each replication
(``--estimators``; the first, ``dr``, is ``select_models``' default: ``auto``'s conservative intervals cost most
of the decisions it should make).

Run: ``python benchmarks/selection_simulator.py [--replications 200] [--n-rounds 10000] [--reward-model lightgbm]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import save_result
from scipy import stats
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from causalrec import CausalrecWarning, policy, simulate
from causalrec.selection import Candidate, select_models


def population_scores(world, config: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    top_slot = logit(world.organic_prob + world.examination[0] * world.true_effect)
    candidates = {
        "noisy": expit(top_slot + rng.normal(0, 1.0, top_slot.shape)),
        "organic": world.organic_prob,
        "random": rng.random(top_slot.shape),
    }
    if config == "active-users":
        user_level = top_slot.mean(axis=1, keepdims=True)
        candidates["item-ranker"] = expit(top_slot - user_level + top_slot.mean())
        candidates["activity-heavy"] = expit(user_level + 0.3 * (top_slot - user_level)
                                             + rng.normal(0, 1.0, top_slot.shape))
    else:
        candidates["oracle"] = expit(top_slot)
    return candidates


def run_config(config: str, replications: int, n_rounds: int, tolerance: float, seed: int,
               estimators: list[str], reward_model_name: str) -> dict:
    """Every estimator on the same logs in each replication (paired), with one reward model for those using one."""
    if config == "null":
        world = simulate.make_world(relevance_scale=0.0, popularity_scale=0.0, effect_mean=0.0, effect_scale=0.0,
                                    effect_relevance_slope=0.0, base_rate=0.1, random_state=seed)
    elif config == "active-users":
        world = simulate.make_world(user_activity_scale=1.5, random_state=seed)
    else:
        world = simulate.make_world(random_state=seed)
    scores = population_scores(world, config, np.random.default_rng(seed + 1))
    slots = world.n_positions
    baseline_value = world.policy_value(world.logging_policy())
    true_uplift = {name: world.policy_value(policy.greedy_top_k(s, slots)) - baseline_value
                   for name, s in scores.items()}
    names = list(scores)
    truth = np.array([true_uplift[n] for n in names])
    best = float(truth.max())
    near_best = {n for n in names if true_uplift[n] >= best - tolerance}
    tallies = {e: {"hits": 0, "regrets": [], "taus": [], "covered": [], "simultaneous": [], "winners": 0,
                   "winner_not_near_best": 0, "winner_not_above_0": 0, "seconds": 0.0} for e in estimators}
    accuracy_hits, accuracy_regrets = 0, []
    for replication in range(replications):
        logs = world.sample_logs(n_rounds, random_state=seed * 10_000 + replication)
        candidates = [Candidate(name, s[logs.user_id]) for name, s in scores.items()]
        for estimator in estimators:
            reward_model = LogisticRegression(C=1.0, max_iter=300) if reward_model_name == "logistic" else None
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CausalrecWarning)
                board = select_models(candidates, logs, estimator=estimator, reward_model=reward_model,
                                      random_state=replication)
            tally = tallies[estimator]
            tally["seconds"] += time.perf_counter() - started
            table = board.table.set_index("candidate").loc[names]
            by_uplift = names[int(np.argmax(table["uplift"].to_numpy()))] if board.winner is None else board.winner
            tally["hits"] += by_uplift in near_best
            tally["regrets"].append(best - true_uplift[by_uplift])
            if config != "null":
                tally["taus"].append(stats.kendalltau(table["uplift"].to_numpy(), truth).statistic)
            estimate, se = table["uplift"].to_numpy(), table["uplift_se"].to_numpy()
            tally["covered"].append(np.abs(estimate - truth) <= 1.959964 * se)
            tally["simultaneous"].append((table["uplift_ci_low"] <= truth) & (truth <= table["uplift_ci_high"]))
            if board.winner is not None:
                tally["winners"] += 1
                tally["winner_not_near_best"] += board.winner not in near_best
                tally["winner_not_above_0"] += true_uplift[board.winner] <= 0
        by_accuracy = names[int(np.nanargmax(table["auc"].to_numpy()))]  # the same logs for every estimator
        accuracy_hits += by_accuracy in near_best
        accuracy_regrets.append(best - true_uplift[by_accuracy])
    by_estimator = {}
    for estimator, tally in tallies.items():
        covered, simultaneous = np.array(tally["covered"]), np.array(tally["simultaneous"])
        by_estimator[estimator] = {
            "hit_rate": tally["hits"] / replications,
            "mean_regret": float(np.mean(tally["regrets"])),
            "mean_kendall_tau": float(np.mean(tally["taus"])) if tally["taus"] else None,
            "coverage_95_unadjusted_wald": float(covered.mean()),
            "coverage_per_candidate_wald": dict(zip(names, covered.mean(axis=0).round(3).tolist(), strict=True)),
            "coverage_simultaneous_all_candidates": float(simultaneous.all(axis=1).mean()),
            "coverage_simultaneous_per_candidate": dict(zip(names, simultaneous.mean(axis=0).round(3).tolist(),
                                                            strict=True)),
            "winner_declared_rate": tally["winners"] / replications,
            "winner_not_within_tolerance_of_best_rate": tally["winner_not_near_best"] / replications,
            "winner_with_true_uplift_at_most_0_rate": tally["winner_not_above_0"] / replications,
            "seconds_per_leaderboard": round(tally["seconds"] / replications, 3),
        }
    return {
        "true_uplift": true_uplift,
        "true_best": names[int(np.argmax(truth))] if config != "null" else None,
        "tolerance": tolerance,
        "accuracy_selection": {"hit_rate": accuracy_hits / replications,
                               "mean_regret": float(np.mean(accuracy_regrets))},
        "by_estimator": by_estimator,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--n-rounds", type=int, default=10_000)
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--estimators", default="dr,auto,snips",
                        help="compared on the same logs; the first is select_models' default")
    parser.add_argument("--reward-model", choices=("lightgbm", "logistic"), default="lightgbm",
                        help="lightgbm: select_models' default; logistic: faster")
    parser.add_argument("--configs", default="default,active-users,null")
    parser.add_argument("--output", default="selection_simulator")
    args = parser.parse_args()
    estimators = args.estimators.split(",")
    started = time.perf_counter()
    results = {}
    for config in args.configs.split(","):
        results[config] = run_config(config, args.replications, args.n_rounds, args.tolerance, args.seed,
                                     estimators, args.reward_model)
        for estimator, row in results[config]["by_estimator"].items():
            print(config, estimator, {k: row[k] for k in ("hit_rate", "mean_kendall_tau", "winner_declared_rate",
                                                          "winner_not_within_tolerance_of_best_rate",
                                                          "coverage_simultaneous_all_candidates")})
    save_result(args.output, {
        "protocol": {
            "replications": args.replications, "n_rounds": args.n_rounds, "seed": args.seed,
            "estimators": estimators, "baseline": "logging policy",
            "reward_model": ("select_models' default (LightGBM), cross-fitted" if args.reward_model == "lightgbm"
                             else "LogisticRegression(C=1, max_iter=300), cross-fitted"),
            "accuracy_rule": "highest AUC of the logged items' predicted reward",
            "uplift_rule": "the leaderboard's winner, or the highest estimated uplift when it declares none",
            "candidate_policies": "greedy top-3 of each candidate's scores",
            "pairing": "every estimator reads the same logs in each replication",
            "coverage": "simultaneous: the leaderboard's Bonferroni intervals (score intervals for IPS and SNIPS, "
                        "score joined with Student-t Wald for DR, Student-t Wald for auto) contain every true "
                        "uplift; wald: estimate +- 1.96 se, unadjusted",
        },
        "configurations": results,
        "runtime_seconds": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()

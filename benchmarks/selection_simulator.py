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
Bonferroni-simultaneous), and the rate of declared winners.

Run: ``python benchmarks/selection_simulator.py [--replications 50] [--n-rounds 10000]``.
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
               estimator: str = "auto") -> dict:
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
    hits = {"uplift": 0, "accuracy": 0}
    regrets = {"uplift": [], "accuracy": []}
    taus, covered, covered_simultaneous, winners = [], [], [], 0
    reward_model = LogisticRegression(C=1.0, max_iter=300)
    for replication in range(replications):
        logs = world.sample_logs(n_rounds, random_state=seed * 10_000 + replication)
        candidates = [Candidate(name, s[logs.user_id]) for name, s in scores.items()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CausalrecWarning)
            board = select_models(candidates, logs, estimator=estimator, reward_model=reward_model,
                                  random_state=replication)
        table = board.table.set_index("candidate").loc[names]
        by_uplift = names[int(np.argmax(table["uplift"].to_numpy()))] if board.winner is None else board.winner
        by_accuracy = names[int(np.nanargmax(table["auc"].to_numpy()))]
        for rule, chosen in (("uplift", by_uplift), ("accuracy", by_accuracy)):
            hits[rule] += chosen in near_best
            regrets[rule].append(best - true_uplift[chosen])
        if config != "null":
            taus.append(stats.kendalltau(table["uplift"].to_numpy(), truth).statistic)
        se = table["uplift_se"].to_numpy()
        estimate = table["uplift"].to_numpy()
        covered.append(np.abs(estimate - truth) <= 1.959964 * se)
        covered_simultaneous.append((table["uplift_ci_low"] <= truth) & (truth <= table["uplift_ci_high"]))
        winners += board.winner is not None
    covered = np.array(covered)
    simultaneous = np.array(covered_simultaneous)
    return {
        "true_uplift": true_uplift,
        "true_best": names[int(np.argmax(truth))],
        "tolerance": tolerance,
        "hit_rate": {rule: hits[rule] / replications for rule in hits},
        "mean_regret": {rule: float(np.mean(regrets[rule])) for rule in regrets},
        "mean_kendall_tau": float(np.mean(taus)) if taus else None,
        "coverage_95_unadjusted": float(covered.mean()),
        "coverage_per_candidate": dict(zip(names, covered.mean(axis=0).round(3).tolist(), strict=True)),
        "coverage_simultaneous_all_candidates": float(simultaneous.all(axis=1).mean()),
        "winner_declared_rate": winners / replications,
        "false_winner_rate": winners / replications if config == "null" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=50)
    parser.add_argument("--n-rounds", type=int, default=10_000)
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--estimator", default="auto")
    parser.add_argument("--configs", default="default,active-users,null")
    parser.add_argument("--output", default="selection_simulator")
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    for config in args.configs.split(","):
        results[config] = run_config(config, args.replications, args.n_rounds, args.tolerance, args.seed,
                                     args.estimator)
        print(config, {k: results[config][k] for k in ("true_uplift", "hit_rate", "mean_regret", "mean_kendall_tau",
                                                        "coverage_95_unadjusted", "winner_declared_rate")})
    save_result(args.output, {
        "protocol": {
            "replications": args.replications, "n_rounds": args.n_rounds, "seed": args.seed,
            "estimator": args.estimator, "baseline": "logging policy",
            "reward_model": "LogisticRegression(C=1, max_iter=300), cross-fitted (for runtime on 2 cores)",
            "accuracy_rule": "highest AUC of the logged items' predicted reward",
            "uplift_rule": "the leaderboard's winner, or the highest estimated uplift when it declares none",
            "candidate_policies": "greedy top-3 of each candidate's scores",
        },
        "configurations": results,
        "runtime_seconds": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()

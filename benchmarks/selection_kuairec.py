"""Model selection on the KuaiRec subset, where every user's 83 candidate videos are fully observed.

Protocol (fixed; the numbers it prints are measured, nothing is tuned to them):

* Reward: ``like = watch_ratio >= 2`` (KuaiRec's usual threshold for a positive view).
* Catalogue per user: the user's 83 candidate videos; an action is the index of a video in that list (the
  subset gives each user a different list of 83, so policies are per-round distributions over 83 slots).
* Logging policy (known exactly): popularity-biased, ``pi_0(j | u) = 0.9 * softmax(1.5 * z_j) + 0.1 / 83`` where
  ``z_j`` is the standardised log number of users whose list holds video ``j``. One slot per round; each round
  draws a user uniformly. ``--n-rounds`` rounds per replication, ``--replications`` seeds.
* Data-driven candidates are fit on the first half of each replication's logs and the selection runs on the
  second half: a policy evaluated on the rounds it was fit on is scored optimistically (its choices follow the
  noise of those very rewards; measured here: 60% coverage when the halves were the same logs).
* Candidates (scores over each user's 83 videos, greedy top-1 as the policy): ``popularity`` (the list count, i.e.
  the logging score), ``logged-like-rate`` (each video's naive like rate in the logs, smoothed), ``ips-like-rate``
  (the same weighted by 1 / pscore), ``global-like-rate`` (each video's like rate over all users of the subset,
  a strong model that used data outside the logs) and ``random``.
* Truth: the exact value of each candidate's policy, ``mean_u like[u, chosen(u)]``, over all 1,411 users.
* Selection rules: accuracy = highest AUC of the logged videos' scores on the logs; uplift = the leaderboard
  (estimator SNIPS; the reward model of DR cannot identify videos across users in this layout), baseline = the
  logging policy. Reported: hit rates, regret, Kendall's tau between estimated and true uplift.

Run: ``python benchmarks/selection_kuairec.py [--replications 300] [--n-rounds 100000]`` (needs CAUSALREC_DATA_DIR;
about 7 min on 2 cores).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import save_result
from scipy import stats

from causalrec import CausalrecWarning, LoggedFeedback, policy
from causalrec.data.datasets import load_kuairec_random83
from causalrec.selection import Candidate, select_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=300)
    parser.add_argument("--n-rounds", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    started = time.perf_counter()

    subset = load_kuairec_random83()
    like = (subset.watch_ratio >= 2.0).astype(float)
    videos = subset.candidate_video
    n_users, n_slots = like.shape
    list_count = np.bincount(videos.ravel())
    z = np.log(list_count[videos])
    z = (z - z.mean()) / z.std()
    logits = 1.5 * z
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    logging_prob = 0.9 * softmax + 0.1 / n_slots
    global_like_rate = np.bincount(videos.ravel(), weights=like.ravel()) / np.maximum(list_count, 1)
    baseline_value = float((logging_prob * like).sum(axis=1).mean())

    def true_uplift(scores_population: np.ndarray) -> float:
        chosen = np.argmax(scores_population, axis=1)
        return float(like[np.arange(n_users), chosen].mean() - baseline_value)

    rows = []
    for replication in range(args.replications):
        rng = np.random.default_rng(args.seed * 1000 + replication)
        users = rng.integers(0, n_users, args.n_rounds)
        cumulative = np.cumsum(logging_prob[users], axis=1)
        actions = np.minimum((cumulative < rng.random(args.n_rounds)[:, None]).sum(axis=1), n_slots - 1)
        rewards = like[users, actions]
        pscore = logging_prob[users, actions]
        fit = np.arange(args.n_rounds) < args.n_rounds // 2
        held = ~fit
        logs = LoggedFeedback(action=actions[held], reward=rewards[held], pscore=pscore[held], n_actions=n_slots,
                              user_id=users[held])

        logged_video = videos[users[fit], actions[fit]]
        rewards, pscore = rewards[fit], pscore[fit]
        shows = np.bincount(logged_video, minlength=len(list_count))
        likes = np.bincount(logged_video, weights=rewards, minlength=len(list_count))
        weighted_likes = np.bincount(logged_video, weights=rewards / pscore, minlength=len(list_count))
        weighted_shows = np.bincount(logged_video, weights=1 / pscore, minlength=len(list_count))
        prior = rewards.mean()
        population = {
            "popularity": z,
            "logged-like-rate": ((likes + 5 * prior) / (shows + 5))[videos],
            "ips-like-rate": ((weighted_likes + 5 * prior * n_slots) / (weighted_shows + 5 * n_slots))[videos],
            "global-like-rate": global_like_rate[videos],
            "random": rng.random((n_users, n_slots)),
        }
        truth = {name: true_uplift(s) for name, s in population.items()}
        held_users = users[held]
        candidates = [
            Candidate(name, s[held_users], policy=policy.greedy_top_k(s[held_users], 1))
            for name, s in population.items()
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CausalrecWarning)
            board = select_models(candidates, logs, estimator="snips", random_state=replication)
        table = board.table.set_index("candidate").loc[list(population)]
        names = list(population)
        level = 0.05 / len(names)  # the leaderboard's Bonferroni level per comparison
        wald_half = {n: float(stats.t.ppf(1 - level / 2, table.loc[n, "uplift_df"]) * table.loc[n, "uplift_se"])
                     for n in names}
        wald_lcb = {n: float(table.loc[n, "uplift"] - stats.t.ppf(1 - level, table.loc[n, "uplift_df"])
                             * table.loc[n, "uplift_se"]) for n in names}
        wald_pick = max(names, key=wald_lcb.get)
        true_values = np.array([truth[n] for n in names])
        best = names[int(np.argmax(true_values))]
        by_uplift = board.winner or names[int(np.argmax(table["uplift"].to_numpy()))]
        by_accuracy = names[int(np.nanargmax(table["auc"].to_numpy()))]
        rows.append({
            "true_uplift": truth, "estimated_uplift": table["uplift"].to_dict(), "auc": table["auc"].to_dict(),
            "best": best, "by_uplift": by_uplift, "by_accuracy": by_accuracy, "winner_declared": board.winner,
            "regret_uplift": truth[best] - truth[by_uplift], "regret_accuracy": truth[best] - truth[by_accuracy],
            "kendall_tau": float(stats.kendalltau(table["uplift"].to_numpy(), true_values).statistic),
            "covered": {n: bool(table.loc[n, "uplift_ci_low"] <= truth[n] <= table.loc[n, "uplift_ci_high"])
                        for n in names},
            # The Student-t Wald interval on the same estimate, standard error and degrees of freedom (the
            # leaderboard's construction before the score interval), for the side-by-side coverage.
            "winner_declared_wald": wald_pick if wald_lcb[wald_pick] > 0 else None,
            "covered_wald": {n: bool(abs(truth[n] - table.loc[n, "uplift"]) <= wald_half[n]) for n in names},
            "missed_above": {n: bool(truth[n] > table.loc[n, "uplift_ci_high"]) for n in names},
            "missed_above_wald": {n: bool(truth[n] > table.loc[n, "uplift"] + wald_half[n]) for n in names},
            "interval_width": {n: float(table.loc[n, "uplift_ci_high"] - table.loc[n, "uplift_ci_low"])
                               for n in names},
            "interval_width_wald": {n: float(2 * wald_half[n]) for n in names},
            "ess": table["ess"].astype(float).to_dict(), "reliable": table["reliable"].astype(bool).to_dict(),
        })
        print(replication, "best", best, "| uplift picks", by_uplift, "| accuracy picks", by_accuracy,
              "| tau", round(rows[-1]["kendall_tau"], 2))
    summary = {
        "hit_rate_uplift": float(np.mean([r["by_uplift"] == r["best"] for r in rows])),
        "hit_rate_accuracy": float(np.mean([r["by_accuracy"] == r["best"] for r in rows])),
        "mean_regret_uplift": float(np.mean([r["regret_uplift"] for r in rows])),
        "mean_regret_accuracy": float(np.mean([r["regret_accuracy"] for r in rows])),
        "mean_kendall_tau": float(np.mean([r["kendall_tau"] for r in rows])),
        "winner_declared_rate": float(np.mean([r["winner_declared"] is not None for r in rows])),
        "winner_declared_is_best_rate": float(np.mean([r["winner_declared"] == r["best"] for r in rows])),
        "winner_declared_with_true_uplift_at_most_0": float(np.mean([
            r["winner_declared"] is not None and r["true_uplift"][r["winner_declared"]] <= 0 for r in rows])),
        # Simultaneous: every candidate's interval holds its true uplift in the same replication (what the
        # Bonferroni-adjusted leaderboard promises at 95%); the per-candidate rates are the marginal coverages.
        "coverage_simultaneous_all_candidates": float(np.mean([all(r["covered"].values()) for r in rows])),
        "coverage_per_candidate": {n: float(np.mean([r["covered"][n] for r in rows])) for n in rows[0]["covered"]},
        "coverage_mean_over_candidates": float(np.mean([np.mean(list(r["covered"].values())) for r in rows])),
        "coverage_simultaneous_standard_error": None,
        "interval": "score (test inversion; causalrec.compare_policies gives SNIPS differences score intervals)",
        "wald_same_estimates": {
            "what": "the Student-t Wald interval (estimate +- t(df) * se at the same Bonferroni level) on the very same "
                    "estimates: the leaderboard's interval before the score interval",
            "coverage_simultaneous_all_candidates": float(np.mean([all(r["covered_wald"].values()) for r in rows])),
            "coverage_per_candidate": {n: float(np.mean([r["covered_wald"][n] for r in rows]))
                                       for n in rows[0]["covered"]},
            "missed_above_per_candidate": {n: float(np.mean([r["missed_above_wald"][n] for r in rows]))
                                           for n in rows[0]["covered"]},
            "mean_width_per_candidate": {n: float(np.mean([r["interval_width_wald"][n] for r in rows]))
                                         for n in rows[0]["covered"]},
            "winner_declared_rate": float(np.mean([r["winner_declared_wald"] is not None for r in rows])),
            "winner_declared_is_best_rate": float(np.mean([r["winner_declared_wald"] == r["best"] for r in rows])),
            "winner_declared_with_true_uplift_at_most_0": float(np.mean([
                r["winner_declared_wald"] is not None and r["true_uplift"][r["winner_declared_wald"]] <= 0
                for r in rows])),
        },
        "missed_above_per_candidate": {n: float(np.mean([r["missed_above"][n] for r in rows])) for n in rows[0]["covered"]},
        "mean_width_per_candidate": {n: float(np.mean([r["interval_width"][n] for r in rows])) for n in rows[0]["covered"]},
        "mean_true_uplift": {n: float(np.mean([r["true_uplift"][n] for r in rows])) for n in rows[0]["true_uplift"]},
        "mean_auc": {n: float(np.mean([r["auc"][n] for r in rows])) for n in rows[0]["auc"]},
    }
    share = summary["coverage_simultaneous_all_candidates"]
    summary["coverage_simultaneous_standard_error"] = float(np.sqrt(share * (1 - share) / len(rows)))
    print(summary)
    save_result("selection_kuairec", {
        "protocol": {"replications": args.replications, "n_rounds": args.n_rounds, "seed": args.seed,
                     "reward": "like = watch_ratio >= 2", "logging": "0.9 softmax(1.5 z_pop) + 0.1 uniform",
                     "split": "candidates fit on the first half of the rounds, selection on the second half",
                     "estimator": "snips", "baseline": "logging policy", "policies": "greedy top-1"},
        "summary": summary, "replications": rows, "runtime_seconds": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()

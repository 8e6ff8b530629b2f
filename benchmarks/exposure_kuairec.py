"""KuaiRec random-83: do naive offline ranking metrics mis-rank models under popularity-biased exposure, and do
propensity-weighted (debiased) metrics fix it?

Truth. Each of the 1,411 users has 83 candidate videos with a fully observed watch ratio; a video is relevant
when the user watched it to the end (``watch_ratio >= 1``, 33% of pairs). The full-information NDCG@10 of a model
over a user's candidates is therefore known.

Exposure (known, popularity-biased). A video's popularity is its number of relevant users over the whole file;
user ``u`` is exposed to candidate ``j`` with probability ``p_uj = clip(c (popularity + 1) ** eta, 0.02, 0.95)``
(``c`` sets the mean exposure to 20%; ``eta = 0.5`` main setting, ``eta = 1.0`` a stronger bias). Two independent
exposure draws give the training logs ``O1`` and the test logs ``O2``.

Models (trained on the relevance of the ``O1`` pairs only): ``popularity`` (count of relevant training
exposures per video), ``quality`` (smoothed relevance rate per video among its training exposures),
``mf naive`` / ``mf ips`` (``MatrixFactorization`` on the user x video matrix, 8 factors, l2 = 1, naive or
IPS-weighted training), ``random``.

Evaluation. Each user's training-exposed candidates are excluded from ranking and from the truth; the naive
metric uses the relevant ``O2`` pairs as targets, the debiased metric weights each by ``1 / p_uj``
(``causalrec.exposure.debiased_ranking_metrics``); the truth uses every relevant non-excluded candidate.
Reported per seed and exposure strength: the three NDCG@10 (and recall@10) values, the model ranks, Kendall's tau
against the truth, and the model pairs that the naive / debiased metric orders differently from the truth.

Run: ``nice .venv/bin/python benchmarks/exposure_kuairec.py`` (``--seeds 10``).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from _common import save_result
from threadpoolctl import threadpool_limits

from causalrec.data.datasets import load_kuairec_random83
from causalrec.exposure import compare_offline_metrics, ranking_agreement
from causalrec.models.matrix_factorization import MatrixFactorization

RELEVANT_WATCH_RATIO = 1.0
MEAN_EXPOSURE = 0.2
STRENGTHS = (0.5, 1.0)
K = 10


def exposure_propensity(popularity_of_candidate: np.ndarray, eta: float) -> np.ndarray:
    base = (popularity_of_candidate + 1.0) ** eta
    return np.clip(MEAN_EXPOSURE / base.mean() * base, 0.02, 0.95)


def run(data, eta: float, seed: int) -> tuple[pd.DataFrame, list[dict]]:
    videos = data.candidate_video
    relevant = data.watch_ratio >= RELEVANT_WATCH_RATIO
    n_users, n_candidates = relevant.shape
    popularity = np.zeros(data.n_videos)
    np.add.at(popularity, videos.ravel(), relevant.ravel())
    propensity = exposure_propensity(popularity[videos], eta)
    rng = np.random.default_rng(seed)
    train_exposed = rng.random(propensity.shape) < propensity
    test_exposed = rng.random(propensity.shape) < propensity
    exclude = [np.flatnonzero(train_exposed[u]) for u in range(n_users)]
    observed = [np.flatnonzero(relevant[u] & test_exposed[u] & ~train_exposed[u]) for u in range(n_users)]
    truth = [np.flatnonzero(relevant[u] & ~train_exposed[u]) for u in range(n_users)]

    positives = np.zeros(data.n_videos)
    shown = np.zeros(data.n_videos)
    np.add.at(positives, videos[train_exposed], relevant[train_exposed])
    np.add.at(shown, videos[train_exposed], 1.0)
    prior = relevant[train_exposed].mean()
    tie_breaker = 1e-9 * rng.random(videos.shape)  # random order among equal scores, the same for every metric
    users = np.repeat(np.arange(n_users), n_candidates)[train_exposed.ravel()]
    pairs = np.column_stack([users, videos.ravel()[train_exposed.ravel()]])
    labels = relevant.ravel()[train_exposed.ravel()].astype(np.float64)
    fitted = {}
    for weighting in ("naive", "ips"):
        model = MatrixFactorization(n_factors=8, l2=1.0, weighting=weighting, random_state=seed)
        model.fit(pairs, labels, propensity[train_exposed], n_users=n_users, n_items=data.n_videos)
        fitted[weighting] = model.predict_matrix()[np.arange(n_users)[:, None], videos]
    models = {
        "popularity": positives[videos] + tie_breaker,
        "quality": ((positives + 5 * prior) / (shown + 5))[videos] + tie_breaker,
        "mf naive": fitted["naive"],
        "mf ips": fitted["ips"],
        "random": rng.random(videos.shape),
    }
    table = compare_offline_metrics(models, observed, propensity, ks=(K,), true_targets=truth, exclude=exclude)
    table.insert(0, "eta", eta)
    table.insert(0, "seed", seed)
    agreements = []
    for metric in (f"ndcg@{K}", f"recall@{K}"):
        for column in ("naive", "debiased"):
            agreement = ranking_agreement(table, metric, column)
            agreements.append({"seed": seed, "eta": eta, **agreement})
    facts = {"mean_exposure": float(propensity.mean()), "observed_targets_per_user": float(np.mean([len(o) for o in observed])),
             "true_targets_per_user": float(np.mean([len(t) for t in truth]))}
    for row in agreements:
        row.update(facts)
    return table, agreements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    data = load_kuairec_random83()
    tables, agreements = [], []
    with threadpool_limits(1):
        for eta in STRENGTHS:
            for seed in range(args.seeds):
                table, agreement = run(data, eta, seed)
                tables.append(table)
                agreements += agreement
                ndcg = table[table["metric"] == f"ndcg@{K}"]
                print(f"eta {eta} seed {seed}: naive ranks {ndcg['naive_rank'].tolist()}, debiased "
                      f"{ndcg['debiased_rank'].tolist()}, truth {ndcg['truth_rank'].tolist()}")
    runs = pd.concat(tables, ignore_index=True)
    agreement = pd.DataFrame(agreements)
    agreement["n_discordant"] = agreement["discordant_pairs"].apply(len)
    mean_table = (runs.groupby(["eta", "metric", "model"], sort=False)[["naive", "debiased", "truth"]].mean()
                  .reset_index())
    summary = (agreement.groupby(["eta", "metric", "column"])
               .agg(mean_kendall_tau=("kendall_tau", "mean"), mean_discordant_pairs=("n_discordant", "mean"),
                    share_seeds_perfect=("n_discordant", lambda n: float(np.mean(np.asarray(n) == 0))))
               .reset_index())
    ndcg_main = agreement[(agreement["metric"] == f"ndcg@{K}") & (agreement["eta"] == STRENGTHS[0])]
    naive_pairs = ndcg_main[ndcg_main["column"] == "naive"].set_index("seed")["discordant_pairs"]
    debiased_pairs = ndcg_main[ndcg_main["column"] == "debiased"].set_index("seed")["discordant_pairs"]
    fixed = {int(seed): sorted(set(map(tuple, naive_pairs[seed])) - set(map(tuple, debiased_pairs[seed])))
             for seed in naive_pairs.index}
    acceptance = {
        "criterion": "naive NDCG@10 mis-ranks at least one pair of models that debiased NDCG@10 ranks correctly "
                     "against the full-information truth",
        "eta": STRENGTHS[0],
        "seeds_where_it_holds": int(sum(bool(pairs) for pairs in fixed.values())),
        "n_seeds": args.seeds,
        "pairs_fixed_by_debiasing_per_seed": fixed,
    }
    with pd.option_context("display.width", 160):
        print(mean_table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(acceptance)
    save_result("exposure_kuairec", {
        "protocol": __doc__, "relevant_watch_ratio": RELEVANT_WATCH_RATIO, "mean_exposure": MEAN_EXPOSURE,
        "strengths": list(STRENGTHS), "k": K, "mean_metrics": mean_table, "agreement_summary": summary,
        "acceptance": acceptance, "agreement": agreement.drop(columns=["n_discordant"]), "runs": runs,
    })


if __name__ == "__main__":
    main()

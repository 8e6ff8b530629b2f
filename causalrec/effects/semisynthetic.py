"""A semi-synthetic effect-of-promotion world on Complete Journey, in the style of Sato et al. (RecSys 2020).

Sato, Takemori, Singh and Ohkuma ("Unbiased learning for the causal effect of recommendation", RecSys 2020)
build semi-synthetic data on the Dunnhumby grocery logs: the treatment is a real promotion calendar, purchase
probabilities with and without the treatment are set per (user, item), and outcomes are drawn from them, so
every (user, item) effect is known. Here, on Complete Journey (Dunnhumby's 2,469 households, one year):

* **treatment** ``Z[u, i, w] = 1`` when product ``i`` is in the weekly mailer or on display (``weekly_promotions``)
  in household ``u``'s store (its most frequent store) in week ``w``: the real calendar, so exposure follows the
  retailer's own choices (popular products are promoted more often; seasons);
* **features** from the household's *history weeks* (before the simulated weeks): ``affinity`` =
  ``log1p(weeks u bought i)``, ``household_activity`` = ``log1p(baskets of u)``, ``product_popularity`` = share of
  households that bought ``i``, the product's department (one-hot-free integer code) and ``promotion_rate`` = share
  of simulated weeks ``i`` is promoted in ``u``'s store (the "logging policy": the exposure propensity);
* **potential outcomes** (purchase of ``i`` by ``u`` in week ``w``), with standardised features ``s(.)``::

      logit p0[u, i] = base_logit + a_aff * s(affinity) + a_pop * s(popularity) + a_act * s(activity)
                       + a_promo * s(promotion_rate)
      logit p1[u, i] = logit p0 + lift[u, i]
      lift[u, i]     = effect_mean - effect_affinity_slope * s(affinity) + effect_department[dept(i)]
                       + effect_scale * eta[u, i],      eta ~ N(0, 1)

  ``effect_affinity_slope > 0`` makes the lift shrink for products the household buys anyway, so ranking by
  predicted purchase is a poor way to rank by effect; ``a_promo`` ties the organic rate to the promotion rate
  (the retailer promotes what sells), which confounds the naive comparison;
* ``Y[u, i, w] ~ Bernoulli(p0 + Z * (p1 - p0))`` and the known effect ``true_effect[u, i] = p1 - p0``.

The promotion calendar and the histories are real; the response model is ours, with known parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from causalrec.exceptions import ValidationError

_OWNER = "semisynthetic"
FEATURES = ("affinity", "household_activity", "product_popularity", "department", "promotion_rate")


@dataclass(frozen=True, eq=False)
class JourneyWorld:
    """Pairs (household, product) with known potential outcomes, and weekly exposure logs drawn from them."""

    pairs: pd.DataFrame = field(repr=False)
    logs: pd.DataFrame = field(repr=False)
    config: dict = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return FEATURES

    @property
    def true_ate(self) -> float:
        """Average effect of exposure over the logged (household, product, week) rows."""
        return float(self.logs["true_effect"].mean())


def _standardise(values: pd.Series) -> np.ndarray:
    values = values.to_numpy(np.float64)
    spread = values.std()
    return (values - values.mean()) / (spread if spread > 0 else 1.0)


def make_journey(
    n_households: int = 300,
    n_products: int = 60,
    history_weeks: tuple[int, int] = (1, 26),
    simulation_weeks: tuple[int, int] = (27, 52),
    base_rate: float = 0.02,
    affinity_weight: float = 1.2,
    popularity_weight: float = 0.5,
    activity_weight: float = 0.3,
    promotion_weight: float = 0.5,
    effect_mean: float = 1.2,
    effect_affinity_slope: float = 0.8,
    effect_department_scale: float = 0.4,
    effect_scale: float = 0.2,
    random_state: int | np.random.Generator | None = 0,
) -> JourneyWorld:
    """Build the world on the ``n_products`` most purchased products and ``n_households`` most active households.

    Weeks are inclusive ranges of Complete Journey's week numbers (1..53). Deterministic for a given seed: the
    households and products are chosen by counts (ties broken by id), randomness only enters the effect's
    department terms, ``eta`` and the outcome draws.
    """
    from causalrec.data.datasets.completejourney import load_complete_journey_table, weekly_promotions

    if not (history_weeks[0] <= history_weeks[1] < simulation_weeks[0] <= simulation_weeks[1]):
        raise ValidationError("weeks", "history weeks strictly before simulation weeks",
                              f"{history_weeks}, {simulation_weeks}", owner=_OWNER)
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    transactions = load_complete_journey_table(
        "transactions", columns=["household_id", "store_id", "product_id", "week", "basket_id"])
    history = transactions[transactions["week"].between(*history_weeks)]
    product_counts = history.groupby("product_id").size().sort_index().sort_values(ascending=False, kind="mergesort")
    products = np.sort(product_counts.index[:n_products].to_numpy())
    activity = history.groupby("household_id")["basket_id"].nunique().sort_index()
    households = np.sort(activity.sort_values(ascending=False, kind="mergesort").index[:n_households].to_numpy())

    store_of = (history[history["household_id"].isin(households)].groupby(["household_id", "store_id"]).size()
                .rename("n").reset_index().sort_values(["household_id", "n", "store_id"], ascending=[True, False, True])
                .drop_duplicates("household_id").set_index("household_id")["store_id"])
    bought = (history[history["product_id"].isin(products) & history["household_id"].isin(households)]
              .groupby(["household_id", "product_id"])["week"].nunique())
    popularity = (history[history["product_id"].isin(products)].groupby("product_id")["household_id"].nunique()
                  / history["household_id"].nunique())
    product_table = load_complete_journey_table("products", columns=["product_id", "department"])
    department = product_table.set_index("product_id")["department"].reindex(products).fillna("unknown")
    department_codes = {name: k for k, name in enumerate(sorted(department.unique()))}

    weeks = np.arange(simulation_weeks[0], simulation_weeks[1] + 1)
    promotions = weekly_promotions(product_ids=products, weeks=weeks)
    promotions = promotions[promotions["in_mailer"] | promotions["in_display"]]
    promoted = set(zip(promotions["product_id"], promotions["store_id"], promotions["week"], strict=True))

    pairs = pd.MultiIndex.from_product([households, products], names=["household_id", "product_id"]).to_frame(
        index=False)
    pairs["store_id"] = store_of.reindex(pairs["household_id"]).to_numpy()
    pairs["affinity"] = np.log1p(bought.reindex(pd.MultiIndex.from_frame(pairs[["household_id", "product_id"]]))
                                 .fillna(0).to_numpy())
    pairs["household_activity"] = np.log1p(activity.reindex(pairs["household_id"]).to_numpy())
    pairs["product_popularity"] = popularity.reindex(pairs["product_id"]).to_numpy()
    pairs["department"] = department.reindex(pairs["product_id"]).map(department_codes).to_numpy().astype(np.float64)

    # Weekly exposure of every pair, from the real calendar of the household's store.
    exposure = np.zeros((len(pairs), len(weeks)), dtype=np.int64)
    product_ids, store_ids = pairs["product_id"].to_numpy(), pairs["store_id"].to_numpy()
    for j, week in enumerate(weeks):
        exposure[:, j] = [(p, s, week) in promoted for p, s in zip(product_ids, store_ids, strict=True)]
    pairs["promotion_rate"] = exposure.mean(axis=1)

    department_effect = rng.normal(0, effect_department_scale, len(department_codes))
    organic_logit = (logit(base_rate) + affinity_weight * _standardise(pairs["affinity"])
                     + popularity_weight * _standardise(pairs["product_popularity"])
                     + activity_weight * _standardise(pairs["household_activity"])
                     + promotion_weight * _standardise(pairs["promotion_rate"]))
    lift = (effect_mean - effect_affinity_slope * _standardise(pairs["affinity"])
            + department_effect[pairs["department"].to_numpy().astype(int)]
            + effect_scale * rng.normal(size=len(pairs)))
    pairs["p0"] = expit(organic_logit)
    pairs["p1"] = expit(organic_logit + lift)
    pairs["true_effect"] = pairs["p1"] - pairs["p0"]

    pair_index = np.repeat(np.arange(len(pairs)), len(weeks))
    logs = pairs.iloc[pair_index].reset_index(drop=True)
    logs.insert(2, "week", np.tile(weeks, len(pairs)))
    logs["exposure"] = exposure.ravel()
    probability = logs["p0"].to_numpy() + logs["exposure"].to_numpy() * logs["true_effect"].to_numpy()
    logs["purchase"] = (rng.random(len(logs)) < probability).astype(np.int64)
    config = {k: v for k, v in locals().items() if k in make_journey.__code__.co_varnames[:15]
              and isinstance(v, int | float | tuple)}
    return JourneyWorld(pairs=pairs, logs=logs, config=config)

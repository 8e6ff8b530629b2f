"""The Complete Journey loader: projected / filtered reads, promotions and purchase sequences."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from causalrec.data.datasets import completejourney as cj
from causalrec.exceptions import ValidationError


def test_tables_are_listed_and_read_with_projection_and_filters():
    assert {"transactions", "promotions", "products", "demographics"} <= set(cj.available_tables())
    frame = cj.load_complete_journey_table(
        "transactions", columns=["household_id", "week", "product_id"], filters=[("week", "<=", 2)]
    )
    assert list(frame.columns) == ["household_id", "week", "product_id"]
    assert len(frame) > 0 and frame["week"].max() <= 2


def test_unknown_table_or_column_names_the_alternatives():
    with pytest.raises(ValidationError) as error:
        cj.load_complete_journey_table("transaction")
    assert "'transaction'" in str(error.value) and "transactions" in str(error.value)
    with pytest.raises(ValidationError, match="household_id"):
        cj.load_complete_journey_table("demographics", columns=["household"])


def test_weekly_promotions_matches_the_raw_location_codes():
    products = [1000050, 1000092]
    promotions = cj.weekly_promotions(product_ids=products, weeks=[1, 2])
    assert list(promotions.columns) == ["product_id", "store_id", "week", "in_mailer", "in_display"]
    assert promotions["in_mailer"].dtype == bool and promotions["in_display"].dtype == bool
    assert set(promotions["product_id"]) <= set(products) and set(promotions["week"]) <= {1, 2}
    raw = pq.read_table(
        cj._data_folder() / "promotions.parquet",
        filters=[("product_id", "in", products), ("week", "in", [1, 2])],
    ).to_pandas()
    assert len(raw) == len(promotions) > 0
    merged = promotions.merge(raw, on=["product_id", "store_id", "week"], validate="one_to_one")
    np.testing.assert_array_equal(merged["in_mailer"], merged["mailer_location"] != "0")
    np.testing.assert_array_equal(merged["in_display"], merged["display_location"] != "0")


def _transactions() -> pd.DataFrame:
    ts = pd.Timestamp("2017-01-01")
    rows = [
        # household 1: four baskets; basket 11 and 12 share a timestamp (basket_id breaks the tie)
        (1, 10, 100, ts), (1, 10, 101, ts),
        (1, 12, 103, ts + pd.Timedelta("1h")), (1, 11, 102, ts + pd.Timedelta("1h")),
        (1, 11, 100, ts + pd.Timedelta("1h")),
        (1, 13, 101, ts + pd.Timedelta("2h")), (1, 13, 100, ts + pd.Timedelta("2h")),
        # household 2: only two baskets -> not eligible (its purchases still count for item selection)
        (2, 20, 100, ts), (2, 20, 102, ts), (2, 21, 101, ts + pd.Timedelta("1h")), (2, 21, 103, ts),
        # a rare product, filtered out by min_item_count
        (1, 13, 999, ts + pd.Timedelta("2h")),
    ]
    return pd.DataFrame(rows, columns=["household_id", "basket_id", "product_id", "transaction_timestamp"])


def test_purchase_sequences_order_split_and_filters():
    frame = _transactions()
    before = frame.copy()
    data = cj.purchase_sequences(min_item_count=2, transactions=frame)
    pd.testing.assert_frame_equal(frame, before)  # caller's frame untouched
    assert data.item_ids.tolist() == [100, 101, 102, 103]
    assert data.household_ids.tolist() == [1]
    index = data.item_index
    # baskets in time order, ties by basket_id, products ascending inside a basket
    expected = [index[p] for p in (100, 101, 100, 102, 103, 100, 101)]
    assert data.sequences[0].tolist() == expected
    assert data.baskets[0].tolist() == [0, 0, 1, 1, 2, 3, 3]
    assert data.train_sequences[0].tolist() == expected[:4]
    assert data.validation_targets[0].tolist() == [index[103]]
    assert data.test_history[0].tolist() == expected[:5]
    assert data.test_targets[0].tolist() == sorted([index[100], index[101]])
    assert data.item_counts().tolist() == [2, 1, 1, 0]
    assert "seen items kept" in data.seen_item_policy
    with pytest.raises(ValueError, match="read-only"):
        data.sequences[0][0] = 5  # read-only arrays inside a frozen result


def test_purchase_sequences_item_cap_and_validation():
    data = cj.purchase_sequences(min_item_count=1, max_items=2, transactions=_transactions(), min_baskets=3)
    assert data.item_ids.tolist() == [100, 101]  # the two most bought products
    with pytest.raises(ValidationError) as error:
        cj.purchase_sequences(min_item_count=0)
    assert error.value.field == "min_item_count"
    with pytest.raises(ValidationError, match="basket_id") as error:
        cj.purchase_sequences(transactions=_transactions().drop(columns="basket_id"))
    assert error.value.field == "transactions"


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_max_households_must_be_a_positive_integer(bad):
    # 0 ended in a misleading "no households with >= 3 baskets", -1 in numpy's "negative dimensions".
    with pytest.raises(ValidationError) as error:
        cj.purchase_sequences(min_item_count=1, max_households=bad, transactions=_transactions())
    assert error.value.field == "max_households"


def test_transactions_must_be_a_dataframe():
    with pytest.raises(ValidationError, match="a pandas DataFrame; found dict"):  # was an AttributeError
        cj.purchase_sequences(min_item_count=1, transactions=_transactions().to_dict())


def test_purchase_sequences_on_the_shipped_data():
    data = cj.purchase_sequences(min_item_count=50, max_items=300, max_households=40, random_state=1)
    assert data.n_items == 300 and data.n_households == 40
    for train, validation, history, test in zip(
        data.train_sequences, data.validation_targets, data.test_history, data.test_targets, strict=True
    ):
        assert len(validation) > 0 and len(test) > 0
        assert len(history) > len(train)
        assert history[: len(train)].tolist() == train.tolist()
    texts = cj.product_texts(data.item_ids[:3])
    assert len(texts) == 3 and all(isinstance(text, str) and text for text in texts)

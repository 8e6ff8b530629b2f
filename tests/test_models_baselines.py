"""Reference recommenders against hand-computed scores."""

import math

import numpy as np
import pytest

from causalrec.exceptions import ValidationError
from causalrec.models.baselines import ItemKNNRecommender, PopularityRecommender, RepeatPopularityRecommender


def test_popularity_counts_and_deterministic_ties():
    model = PopularityRecommender().fit([[0, 1, 1], [2, 1, 0]], n_items=4)
    np.testing.assert_array_equal(model.score([[3]])[0], [2, 3, 1, 0])
    assert model.recommend([[0], [3]], k=3).tolist() == [[1, 0, 2], [1, 0, 2]]
    tied = PopularityRecommender().fit([[2, 1]], n_items=3)
    assert tied.recommend([[]], k=2).tolist() == [[1, 2]]  # equal counts: lower index first


def test_repeat_popularity_puts_own_items_first():
    model = RepeatPopularityRecommender().fit([[0, 0, 0, 1], [0, 0]], n_items=3)
    scores = model.score([[2, 2, 1]])
    # own counts: item 2 twice, item 1 once; item 0 is globally most popular but never bought by this user.
    assert model.recommend([[2, 2, 1]], k=3).tolist() == [[2, 1, 0]]
    assert scores[0, 0] < 1.0 <= scores[0, 1]


def test_item_knn_cosine_by_hand():
    # Users bought {0, 1}, {0, 1}, {0, 2}: |U0| = 3, |U1| = 2, |U2| = 1.
    model = ItemKNNRecommender(n_neighbors=10, shrinkage=0.0).fit([[0, 1], [1, 0], [0, 2]], n_items=4)
    similarity = model.similarity_.toarray()
    assert similarity[0, 1] == pytest.approx(2 / math.sqrt(3 * 2))
    assert similarity[0, 2] == pytest.approx(1 / math.sqrt(3 * 1))
    assert similarity[1, 2] == 0.0 and similarity[3].sum() == 0.0
    assert similarity[1, 1] == pytest.approx(1.0)
    scores = model.score([[1]])[0]
    np.testing.assert_allclose(scores, similarity[1])


def test_item_knn_neighbour_cap_self_similarity_and_recency():
    model = ItemKNNRecommender(n_neighbors=1, shrinkage=0.0, include_self=False).fit(
        [[0, 1], [0, 1], [0, 2]], n_items=3
    )
    similarity = model.similarity_.toarray()
    assert (similarity > 0).sum(axis=1).tolist() == [1, 1, 1]
    assert np.diag(similarity).sum() == 0.0
    decayed = ItemKNNRecommender(shrinkage=0.0, recency_decay=0.5).fit([[0, 1], [0, 1], [0, 2]], n_items=3)
    # History [1, 2]: item 2 is the most recent (weight 1), item 1 older (weight 0.5).
    expected = 0.5 * decayed.similarity_.toarray()[1] + decayed.similarity_.toarray()[2]
    np.testing.assert_allclose(decayed.score([[1, 2]])[0], expected)


def test_item_index_beyond_catalogue_is_rejected():
    with pytest.raises(ValidationError):
        PopularityRecommender().fit([[0, 5]], n_items=3)


BASELINES = [PopularityRecommender, RepeatPopularityRecommender, ItemKNNRecommender]


@pytest.mark.parametrize("cls", BASELINES)
@pytest.mark.parametrize("sequences, row", [([[0, 1], [0, 1.7, 2]], 1), ([[0, -1, 2]], 0), ([[0, 2], [5]], 1)])
def test_fit_refuses_fractional_negative_and_out_of_range_ids(cls, sequences, row):
    with pytest.raises(ValidationError) as error:
        cls().fit(sequences, n_items=4)
    assert error.value.field == "sequences" and error.value.row == row


@pytest.mark.parametrize("cls", BASELINES)
@pytest.mark.parametrize("histories, row", [([[0], [1.5]], 1), ([[-2]], 0), ([[1], [0, 9]], 1),
                                            (np.array([[0, 1, -1], [-3, 0, 1]]), 1),
                                            (np.array([[0, 1, -1], [4, 0, 1]]), 1)])
def test_score_refuses_fractional_negative_and_out_of_range_ids(cls, histories, row):
    model = cls().fit([[0, 1, 2], [1, 2, 3]], n_items=4)
    with pytest.raises(ValidationError) as error:
        model.score(histories)
    assert error.value.field == "histories" and error.value.row == row
    with pytest.raises(ValidationError):
        model.recommend(histories, k=2)


def test_padded_histories_match_the_lists_by_hand():
    # Counts [5, 1, 0] over 3 items: popularity / (5 + 1) = [5/6, 1/6, 0]; own counts of [2, 2, 1] = [0, 1, 2].
    model = RepeatPopularityRecommender().fit(np.array([[0, 0, 0, 1], [-1, -1, 0, 0]]), n_items=3)
    expected = np.array([[5 / 6, 1 / 6 + 1, 2.0], [5 / 6 + 1, 1 / 6, 0.0]])
    padded = np.array([[-1, 2, 2, 1], [0, -1, -1, -1]])
    np.testing.assert_allclose(model.score(padded), expected)
    np.testing.assert_allclose(model.score([[2, 2, 1], [0]]), expected)
    np.testing.assert_allclose(model.score(np.array([[2.0, 2.0, 1.0]])), expected[:1])  # whole floats are ids
    assert model.recommend(padded, k=2).tolist() == [[2, 1], [0, 1]]
    knn = ItemKNNRecommender(shrinkage=0.0).fit([[0, 1], [1, 2]], n_items=3)
    np.testing.assert_allclose(knn.score(np.array([[1, -1]])), knn.score([[1]]))
    np.testing.assert_allclose(knn.score(np.array([[1, 7]]), padding_value=7), knn.score([[1]]))


@pytest.mark.parametrize("cls", BASELINES)
def test_recommend_needs_an_integer_k_of_at_least_one(cls):
    model = cls().fit([[0, 1, 2], [1, 2, 3]], n_items=4)
    for k in (0, -1, 1.5, 2.0, True, "3"):
        with pytest.raises(ValidationError) as error:
            model.recommend([[0]], k=k)
        assert error.value.field == "k"
    assert model.recommend([[0]], k=np.int64(1)).shape == (1, 1)
    # k above the catalogue returns every item once, as TransformerRecommender.recommend does.
    assert sorted(model.recommend([[0], [1]], k=10)[1].tolist()) == [0, 1, 2, 3]


def test_padding_value_may_not_be_an_item_index():
    model = PopularityRecommender().fit([[0, 1, 2]], n_items=3)
    for padding_value in (0, 2, 1.0, True):
        with pytest.raises(ValidationError) as error:
            model.score(np.array([[0, 1]]), padding_value=padding_value)
        assert error.value.field == "padding_value"

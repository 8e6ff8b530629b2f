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

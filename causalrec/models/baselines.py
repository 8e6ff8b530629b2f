"""Reference recommenders that every accuracy table shows beside the transformer.

All of them follow the same face as :class:`~causalrec.models.TransformerRecommender`:
``fit(sequences, n_items)`` on per-user item-index histories, then ``score(histories)`` returns an
``(n_users, n_items)`` array of scores over the full catalogue and ``recommend(histories, k)`` the top ``k``.
Item ids must be integer-valued indices in ``[0, n_items)`` (fractional, negative or out-of-range ids raise a
ValidationError naming the field and row); a 2-D array of histories may be padded on either side with
``score``'s ``padding_value`` (an integer outside ``[0, n_items)``, default -1) and a 2-D array of training
sequences with -1.

* :class:`PopularityRecommender`: global purchase counts, the same list for everybody.
* :class:`RepeatPopularityRecommender`: a user's own purchase counts, then global popularity ("personal
  popularity"); in grocery data, where about half of a basket is re-purchase, this is a hard baseline.
* :class:`ItemKNNRecommender`: item-to-item cosine similarity of co-purchase, summed over the user's history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from causalrec._arrays import check_padding_value, item_indices
from causalrec._checks import positive_integer


def _sequences(sequences, field: str, owner: str, n_items: int | None = None, padding: int = -1) -> list[np.ndarray]:
    """Item-index lists: a sequence of histories, or a 2-D array whose ``padding`` entries are dropped."""
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        return [item_indices(row, field, index, owner, n_items, padding) for index, row in enumerate(sequences)]
    return [item_indices(sequence, field, index, owner, n_items, None) for index, sequence in enumerate(sequences)]


def _fit_sequences(sequences, n_items: int | None, owner: str) -> tuple[list[np.ndarray], int]:
    sequences = _sequences(sequences, "sequences", owner, n_items)
    if n_items is None:
        n_items = max((int(s.max()) for s in sequences if len(s)), default=-1) + 1
    return sequences, int(n_items)


def _user_item_counts(sequences: list[np.ndarray], n_items: int, weights: list[np.ndarray] | None = None):
    lengths = np.array([len(s) for s in sequences])
    rows = np.repeat(np.arange(len(sequences)), lengths)
    columns = np.concatenate(sequences) if len(sequences) else np.zeros(0, dtype=np.int64)
    values = np.ones(len(columns)) if weights is None else np.concatenate(weights)
    return sp.csr_matrix((values, (rows, columns)), shape=(len(sequences), n_items))


class _SequenceBaseline(BaseEstimator):
    def recommend(self, histories: Sequence[Sequence[int]] | np.ndarray, k: int = 10) -> np.ndarray:
        """Top ``k`` item indices per user, best first (ties: lower item index first).

        ``k`` must be an integer >= 1; a ``k`` above ``n_items`` returns all ``n_items`` items, as
        :meth:`TransformerRecommender.recommend` does."""
        positive_integer(type(self).__name__, "k", k)
        scores = self.score(histories)
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    def _histories(self, histories, padding_value: int) -> list[np.ndarray]:
        """Histories as item-index lists: a sequence of lists, or a 2-D array padded with ``padding_value``
        (either side), as :meth:`TransformerRecommender.score` accepts; ids outside ``[0, n_items_)`` are refused."""
        check_padding_value(padding_value, self.n_items_, type(self).__name__)
        return _sequences(histories, "histories", type(self).__name__, self.n_items_, padding_value)

    def score(self, histories, *, padding_value: int = -1) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class PopularityRecommender(_SequenceBaseline):
    """Scores every item by its number of purchases in the training sequences (same for every user)."""

    def fit(self, sequences: Sequence[Sequence[int]], n_items: int | None = None) -> PopularityRecommender:
        sequences, self.n_items_ = _fit_sequences(sequences, n_items, type(self).__name__)
        tokens = np.concatenate(sequences) if sequences else np.zeros(0, dtype=np.int64)
        self.item_counts_ = np.bincount(tokens, minlength=self.n_items_).astype(np.float64)
        return self

    def score(self, histories: Sequence[Sequence[int]] | np.ndarray, *, padding_value: int = -1) -> np.ndarray:
        """``(n_users, n_items)`` scores; the histories are validated but do not change the scores."""
        histories = self._histories(histories, padding_value)
        return np.repeat(self.item_counts_[None, :], len(histories), axis=0)


class RepeatPopularityRecommender(_SequenceBaseline):
    """A user's own purchase count of each item first; global popularity breaks ties and fills the rest.

    Score = ``own_count + popularity / (max popularity + 1)``, so any item the user bought outranks any item
    they did not, and items are otherwise ordered by global popularity.
    """

    def fit(self, sequences: Sequence[Sequence[int]], n_items: int | None = None) -> RepeatPopularityRecommender:
        sequences, n_items = _fit_sequences(sequences, n_items, type(self).__name__)
        self.popularity_ = PopularityRecommender().fit(sequences, n_items)
        self.n_items_ = self.popularity_.n_items_
        return self

    def score(self, histories: Sequence[Sequence[int]] | np.ndarray, *, padding_value: int = -1) -> np.ndarray:
        histories = self._histories(histories, padding_value)
        own = _user_item_counts(histories, self.n_items_).toarray()
        counts = self.popularity_.item_counts_
        return own + counts[None, :] / (counts.max() + 1.0)


class ItemKNNRecommender(_SequenceBaseline):
    """Item-based k-nearest neighbours on co-purchase (Sarwar et al., WWW 2001; Deshpande & Karypis, 2004).

    Similarity ``sim(i, j) = |U_i and U_j| / (sqrt(|U_i| |U_j|) + shrinkage)`` over the sets ``U`` of users
    who bought each item in the training sequences; each item keeps its ``n_neighbors`` most similar items.
    A user's score of item ``j`` is ``sum_t w_t sim(x_t, j)`` over the distinct items ``x_t`` of the history,
    with weight ``w_t = recency_decay ** (age in distinct items)`` (1 for all with ``recency_decay=None``).

    ``include_self=True`` keeps ``sim(i, i)`` (the largest similarity), which makes the baseline repeat-aware:
    in grocery data most relevant items are re-purchases, and a kNN that could not recommend them would be a
    straw man.
    """

    def __init__(self, n_neighbors: int = 100, shrinkage: float = 10.0, recency_decay: float | None = None,
                 include_self: bool = True):
        self.n_neighbors = n_neighbors
        self.shrinkage = shrinkage
        self.recency_decay = recency_decay
        self.include_self = include_self

    def fit(self, sequences: Sequence[Sequence[int]], n_items: int | None = None) -> ItemKNNRecommender:
        sequences, self.n_items_ = _fit_sequences(sequences, n_items, type(self).__name__)
        bought = _user_item_counts(sequences, self.n_items_)
        bought.data[:] = 1.0
        bought.sum_duplicates()
        bought.data[:] = 1.0
        co_purchase = (bought.T @ bought).tocsr().astype(np.float64)
        degree = np.asarray(bought.sum(axis=0)).reshape(-1)
        norms = np.sqrt(degree)
        co_purchase = co_purchase.tocoo()
        similarity = co_purchase.data / (norms[co_purchase.row] * norms[co_purchase.col] + self.shrinkage)
        keep = similarity > 0
        if not self.include_self:
            keep &= co_purchase.row != co_purchase.col
        rows, columns, similarity = co_purchase.row[keep], co_purchase.col[keep], similarity[keep]
        # Keep the n_neighbors largest similarities of every row (ties: lower item index).
        order = np.lexsort((columns, -similarity, rows))
        rows, columns, similarity = rows[order], columns[order], similarity[order]
        starts = np.searchsorted(rows, np.arange(self.n_items_))
        rank_in_row = np.arange(len(rows)) - starts[rows]
        top = rank_in_row < self.n_neighbors
        self.similarity_ = sp.csr_matrix(
            (similarity[top], (rows[top], columns[top])), shape=(self.n_items_, self.n_items_)
        )
        return self

    def score(self, histories: Sequence[Sequence[int]] | np.ndarray, *, padding_value: int = -1) -> np.ndarray:
        histories = self._histories(histories, padding_value)
        weights = None
        if self.recency_decay is not None:
            weights = []
            for history in histories:
                # Distinct items, weighted by how recently they were last bought.
                _, first_seen = np.unique(history[::-1], return_index=True)
                weight = np.zeros(len(history))
                positions = len(history) - 1 - first_seen
                weight[positions] = self.recency_decay ** np.argsort(np.argsort(first_seen))
                weights.append(weight)
            users = _user_item_counts(histories, self.n_items_, weights)
        else:
            users = _user_item_counts(histories, self.n_items_)
            users.data[:] = 1.0
            users.sum_duplicates()
            users.data[:] = 1.0
        return np.asarray((users @ self.similarity_).todense())

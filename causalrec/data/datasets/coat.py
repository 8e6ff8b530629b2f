"""Coat shopping ratings (Schnabel et al., "Recommendations as Treatments", ICML 2016).

290 users rated 300 coats on a 1-5 scale. ``train`` holds ratings of coats the users chose themselves (missing
not at random), ``test`` ratings of coats drawn uniformly at random for each user (missing completely at
random): a model fit on the biased train ratings can be scored without bias on the test ratings. The authors
ship their estimated observation propensities ``P(rating of (u, i) observed in train)`` (each user's row sums to
about 24, the number of train ratings per user) and one-hot user (14) and item (33) features.

Files under ``$CAUSALREC_DATA_DIR/coat/``: ``train.ascii``, ``test.ascii``, ``propensities.ascii`` (290 x 300,
whitespace separated, 0 = not rated) and ``user_item_features/{user,item}_features{.ascii,_map.txt}``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from causalrec._arrays import check_finite
from causalrec.data.datasets._paths import locate_dataset, read_only_copy
from causalrec.data.feedback import LoggedFeedback
from causalrec.exceptions import ValidationError

DATASET_FOLDER = "coat"
N_USERS = 290
N_ITEMS = 300
_FILES = (
    "train.ascii",
    "test.ascii",
    "propensities.ascii",
    "user_item_features/user_features.ascii",
    "user_item_features/item_features.ascii",
    "user_item_features/user_features_map.txt",
    "user_item_features/item_features_map.txt",
)


@dataclass(frozen=True, eq=False)
class CoatDataset:
    """The Coat data as read-only arrays (0 = missing in the rating matrices).

    Attributes
    ----------
    train, test : int arrays (n_users, n_items)
        Self-selected (MNAR) and uniformly random (MCAR) ratings in 1..5, 0 where the user did not rate.
    propensities : float array (n_users, n_items)
        The authors' estimated probability that a (user, item) rating is observed in ``train``.
    user_features, item_features : float arrays (n_users, 14), (n_items, 33)
        One-hot features; ``user_feature_names`` / ``item_feature_names`` name the columns ("gender:men", ...).
    path : Path
        The folder the files were read from.
    """

    train: np.ndarray
    test: np.ndarray
    propensities: np.ndarray
    user_features: np.ndarray
    item_features: np.ndarray
    user_feature_names: tuple[str, ...]
    item_feature_names: tuple[str, ...]
    path: Path

    @property
    def n_users(self) -> int:
        return int(self.train.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])

    def train_ratings(self) -> pd.DataFrame:
        """Observed train ratings, long format ``user, item, rating``, sorted by user then item."""
        return _long_ratings(self.train)

    def test_ratings(self) -> pd.DataFrame:
        """Observed test ratings, long format ``user, item, rating``, sorted by user then item."""
        return _long_ratings(self.test)

    def train_feedback(self) -> LoggedFeedback:
        """The train ratings as logged feedback: action = item, user_id = user, reward = rating, context = the
        user's features, action_context = item features. ``pscore`` is None: the shipped propensities are
        probabilities of observing a rating, not of a policy choosing an item among the 300."""
        ratings = self.train_ratings()
        users = ratings["user"].to_numpy()
        return LoggedFeedback(
            action=ratings["item"].to_numpy(),
            reward=ratings["rating"].to_numpy(dtype=np.float64),
            n_actions=self.n_items,
            context=self.user_features[users],
            context_names=self.user_feature_names,
            action_context=self.item_features,
            user_id=users,
            metadata={"dataset": "coat", "split": "train (MNAR)", "path": str(self.path)},
        )


def load_coat(*, data_dir: str | os.PathLike | None = None) -> CoatDataset:
    """Read the Coat data from ``<data_dir or $CAUSALREC_DATA_DIR>/coat/``."""
    folder = locate_dataset(DATASET_FOLDER, _FILES, data_dir)
    train = _read_ratings(folder / "train.ascii")
    test = _read_ratings(folder / "test.ascii")
    propensities = _read_matrix(folder / "propensities.ascii", (N_USERS, N_ITEMS))
    features = folder / "user_item_features"
    user_features = _read_matrix(features / "user_features.ascii", (N_USERS, None))
    item_features = _read_matrix(features / "item_features.ascii", (N_ITEMS, None))
    user_names = _read_names(features / "user_features_map.txt", user_features.shape[1])
    item_names = _read_names(features / "item_features_map.txt", item_features.shape[1])
    return CoatDataset(
        train=read_only_copy(train),
        test=read_only_copy(test),
        propensities=read_only_copy(propensities),
        user_features=read_only_copy(user_features),
        item_features=read_only_copy(item_features),
        user_feature_names=user_names,
        item_feature_names=item_names,
        path=folder,
    )


def _read_ratings(path: Path) -> np.ndarray:
    # Checked before the integer cast, which would turn a 2.5 into a valid-looking 2.
    matrix = _read_matrix(path, (N_USERS, N_ITEMS))
    valid = np.isin(matrix, np.arange(6))
    if not valid.all():
        user, item = (int(index) for index in np.argwhere(~valid)[0])
        raise ValidationError(f"coat {path.name}", "ratings in 0..5 (0 = missing)",
                              f"{matrix[user, item]!r} at (user, item) = ({user}, {item})", user)
    return matrix.astype(np.int64)


def _read_matrix(path: Path, shape: tuple[int, int | None]) -> np.ndarray:
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise ValidationError(path.name, "a whitespace-separated numeric matrix", str(error).strip(),
                              owner=str(path)) from None
    rows, columns = shape
    if matrix.shape[0] != rows or (columns is not None and matrix.shape[1] != columns):
        expected = f"{rows} x {columns if columns is not None else 'any'}"
        raise ValidationError(path.name, f"a {expected} matrix", f"shape {matrix.shape}")
    check_finite(matrix, path.name, owner=str(path))
    return matrix


def _read_names(path: Path, expected: int) -> tuple[str, ...]:
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != expected:
        raise ValidationError(path.name, f"{expected} feature names (one per column)", f"{len(names)}")
    return names


def _long_ratings(matrix: np.ndarray) -> pd.DataFrame:
    users, items = np.nonzero(matrix)  # row-major: sorted by user, then item
    return pd.DataFrame(
        {"user": users.astype(np.int64), "item": items.astype(np.int64), "rating": matrix[users, items]}
    )

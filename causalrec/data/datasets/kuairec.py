"""A fully observed slice of KuaiRec (Gao et al., CIKM 2022): 1,411 users, 83 rated videos each.

``random.txt`` lists ``user,video,watch_ratio`` (no header; watch_ratio = watch time / video length, heavy
tailed, 0 allowed). Every user has exactly 83 rows, but the 83 videos differ from user to user (2,519 distinct
videos over the file; no video is rated by every user). So the fully observed object is the user x candidate
matrix: for each user, the watch ratio of each of that user's 83 candidate videos, together with which videos
they are. The value of any policy that picks among each user's candidates is then known exactly.

File: ``$CAUSALREC_DATA_DIR/kuairec-random83/random.txt``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from causalrec.data.datasets._paths import locate_dataset, read_only_copy
from causalrec.exceptions import ValidationError

DATASET_FOLDER = "kuairec-random83"


@dataclass(frozen=True, eq=False)
class KuaiRecSubset:
    """The KuaiRec random-83 slice as read-only arrays.

    Attributes
    ----------
    watch_ratio : float array (n_users, n_candidates)
        ``watch_ratio[u, j]`` = watch ratio of user ``u`` on its ``j``-th candidate video. No missing values.
    candidate_video : int array (n_users, n_candidates)
        0-based video index of each candidate; candidates of a user are sorted by original video id.
    user_ids, video_ids : int arrays
        Original ids: ``user_ids[u]`` is the id of user index ``u``, ``video_ids[v]`` of video index ``v``
        (both sorted ascending).
    ratings : DataFrame
        Long format ``user_id, video_id, user, video, watch_ratio`` (``user``/``video`` = 0-based indices),
        sorted by user then video id.
    path : Path
        The file it was read from.
    """

    watch_ratio: np.ndarray
    candidate_video: np.ndarray
    user_ids: np.ndarray
    video_ids: np.ndarray
    ratings: pd.DataFrame
    path: Path

    @property
    def n_users(self) -> int:
        return int(self.watch_ratio.shape[0])

    @property
    def n_candidates(self) -> int:
        return int(self.watch_ratio.shape[1])

    @property
    def n_videos(self) -> int:
        return int(self.video_ids.shape[0])

    def user_video_matrix(self) -> np.ndarray:
        """Dense ``(n_users, n_videos)`` watch ratios over all videos, NaN where the user has no rating
        (about 97% of cells): the sparse view, for models that index videos globally."""
        matrix = np.full((self.n_users, self.n_videos), np.nan)
        rows = np.repeat(np.arange(self.n_users), self.n_candidates)
        matrix[rows, self.candidate_video.ravel()] = self.watch_ratio.ravel()
        return matrix


def load_kuairec_random83(*, data_dir: str | os.PathLike | None = None) -> KuaiRecSubset:
    """Read ``<data_dir or $CAUSALREC_DATA_DIR>/kuairec-random83/random.txt``.

    Raises ValidationError when a (user, video) pair repeats, a watch ratio is missing, negative or not
    finite, or users do not all have the same number of videos (the file would then not be fully observed).
    """
    folder = locate_dataset(DATASET_FOLDER, ["random.txt"], data_dir)
    path = folder / "random.txt"
    try:
        raw = pd.read_csv(
            path, header=None, names=["user_id", "video_id", "watch_ratio"],
            dtype={"user_id": np.int64, "video_id": np.int64, "watch_ratio": np.float64},
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValidationError("random.txt", "rows 'user_id,video_id,watch_ratio' without a header: two integer "
                              "ids and a number", str(error).strip().splitlines()[0], owner=str(path)) from None
    if raw.empty:
        raise ValidationError("random.txt", "at least one rating", "an empty file", owner=str(path))
    ratio = raw["watch_ratio"].to_numpy()
    bad = ~np.isfinite(ratio) | (ratio < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValidationError("watch_ratio", "finite and non-negative", f"{ratio[row]!r}", row)
    repeated = raw.duplicated(["user_id", "video_id"]).to_numpy()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        raise ValidationError("(user_id, video_id)", "unique", "a repeated pair", row)

    ratings = raw.sort_values(["user_id", "video_id"], kind="stable").reset_index(drop=True)
    user_ids, user_index = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)
    video_ids, video_index = np.unique(ratings["video_id"].to_numpy(), return_inverse=True)
    per_user = np.bincount(user_index)
    if per_user.min() != per_user.max():
        raise ValidationError(
            "random.txt", "the same number of videos for every user (a fully observed slice)",
            f"between {per_user.min()} and {per_user.max()} videos per user",
        )  # fmt: skip
    n_users, n_candidates = len(user_ids), int(per_user[0])
    ratings.insert(2, "user", user_index.astype(np.int64))
    ratings.insert(3, "video", video_index.astype(np.int64))
    # Sorted by user then video id, so each user's candidates are one contiguous block.
    return KuaiRecSubset(
        watch_ratio=read_only_copy(ratings["watch_ratio"].to_numpy().reshape(n_users, n_candidates)),
        candidate_video=read_only_copy(video_index.astype(np.int64).reshape(n_users, n_candidates)),
        user_ids=read_only_copy(user_ids),
        video_ids=read_only_copy(video_ids),
        ratings=ratings,
        path=path,
    )

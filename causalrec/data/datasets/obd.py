"""The Open Bandit Dataset sample (Saito et al., 2021) and the BTS evaluation policy's action distributions.

ZOZOTOWN logged the same three recommendation slots under two policies at the same time: uniform random
(``random``) and Bernoulli Thompson Sampling (``bts``), for three campaigns (``all`` 80 items, ``men`` 34,
``women`` 46). The sample holds 10,000 rounds per (policy, campaign). Because both policies ran side by side,
the on-policy click rate of one policy is the ground truth for an off-policy estimate computed from the other
policy's logs.

Where the files come from, in order:

1. ``<data dir>/obd-sample/{behavior}/{campaign}/{campaign}.csv`` (+ ``item_context.csv`` there and
   ``obd-sample/prior_bts.yaml``), the data dir being ``data_dir=`` or ``$CAUSALREC_DATA_DIR``;
2. the user cache ``<cache root>/obd-sample/`` (same layout), filled once by :func:`fetch_open_bandit_sample`;
3. otherwise :func:`fetch_open_bandit_sample` downloads the ``obp==0.5.7`` *source distribution* with pip (the
   ``obp`` package itself does not install on Python >= 3.11), checks its sha256 against
   :data:`OBP_SDIST_SHA256`, and extracts only the data files. In that archive they sit at
   ``obp-0.5.7/obp/dataset/obd/{behavior}/{campaign}/*.csv`` and
   ``obp-0.5.7/obp/policy/conf/prior_bts.yaml``; the package licence ``obp-0.5.7/LICENSE`` (Apache-2.0)
   is kept beside them as ``LICENSE-obp-package``.

The feature processing follows OBP's ``OpenBanditDataset`` so numbers are comparable with published results:
rounds sorted by timestamp, positions 0-based, context = one-hot user features with the first level of each
dropped, action context = label-encoded ``item_feature_1..3`` followed by the numeric ``item_feature_0``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import yaml

from causalrec.data.datasets._paths import (
    DATA_DIR_VARIABLE,
    ArchiveIntegrityError,
    DatasetNotFoundError,
    describe_data_dir,
    missing_files,
    read_csv,
    read_only_copy,
    resolve_cache_dir,
    resolve_data_dir,
)
from causalrec.data.feedback import LoggedFeedback
from causalrec.exceptions import ValidationError

logger = logging.getLogger(__name__)

BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
N_POSITIONS = 3
DATASET_FOLDER = "obd-sample"

OBP_SDIST_VERSION = "0.5.7"
#: sha256 of ``obp-0.5.7.tar.gz`` as published on the Python package index (measured on the real download and
#: equal to the hash the index lists for the file). It pins the artefact the cached data comes from.
OBP_SDIST_SHA256 = "3060d67fedfcfadf1e7a6f2608987f74412b5eb74d2c567edeb147595c68f2a0"

_SDIST_DATA_PREFIX = "obp/dataset/obd/"
_SDIST_EXTRAS = {"obp/policy/conf/prior_bts.yaml": "prior_bts.yaml", "LICENSE": "LICENSE-obp-package"}
_COMPLETE_MARKER = ".complete.json"
_PIP_TIMEOUT_S = 600

Downloader = Callable[[Path], Path]


def _log_files(behavior: str, campaign: str) -> list[str]:
    return [f"{behavior}/{campaign}/{campaign}.csv", f"{behavior}/{campaign}/item_context.csv"]


def sample_files() -> list[str]:
    """Relative paths of every file of a complete ``obd-sample`` folder."""
    files = [
        path for behavior in BEHAVIORS for campaign in CAMPAIGNS for path in _log_files(behavior, campaign)
    ]
    return [*files, "prior_bts.yaml"]


# ---------------------------------------------------------------------------------------------- result objects
@dataclass(frozen=True, eq=False)
class BetaPrior:
    """Beta(alpha, beta) prior of each item's click rate, as the production BTS policy used it."""

    alpha: np.ndarray
    beta: np.ndarray

    def __post_init__(self) -> None:
        alpha = np.array(self.alpha, dtype=np.float64)
        beta = np.array(self.beta, dtype=np.float64)
        if alpha.ndim != 1 or alpha.shape != beta.shape:
            raise ValidationError(
                "alpha/beta", "two 1-D arrays of equal length", f"{alpha.shape}, {beta.shape}"
            )
        if not (
            np.isfinite(alpha).all() and np.isfinite(beta).all() and (alpha > 0).all() and (beta > 0).all()
        ):
            raise ValidationError("alpha/beta", "finite and positive", "a non-positive or non-finite value")
        alpha.flags.writeable = False
        beta.flags.writeable = False
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "beta", beta)

    @property
    def n_actions(self) -> int:
        return int(self.alpha.shape[0])

    @property
    def mean(self) -> np.ndarray:
        """Prior mean click rate of each item."""
        return self.alpha / (self.alpha + self.beta)


@dataclass(frozen=True, eq=False)
class OpenBanditDataset:
    """One (logging policy, campaign) file of the Open Bandit sample.

    Attributes
    ----------
    feedback : LoggedFeedback
        ``action`` = item_id, ``reward`` = click, ``position`` in {0, 1, 2}, ``pscore`` = the logging policy's
        probability of the (item, position), ``context`` = one-hot user features (plus the user-item affinity
        columns when asked), ``action_context`` = item features, ``timestamp`` = numpy ``datetime64[ns]`` in
        UTC (numpy stores no time zone; the values are UTC), rounds sorted by time.
    on_policy_value : float
        Mean click of this file: the truth for estimates of this policy computed from the *other* policy's logs.
    item_context : DataFrame
        The raw item features (``item_id``, ``item_feature_0..3``), one row per item, indexed by item_id.
    bts_prior : BetaPrior
        The BTS prior of this campaign (``prior_bts.yaml``), for :func:`bts_action_distribution_from_prior`.
    behavior, campaign : str
    source : str
        ``"data_dir"`` (read from ``CAUSALREC_DATA_DIR`` / ``data_dir=``) or ``"cache"``.
    path : Path
        The ``obd-sample`` folder the files were read from.
    """

    feedback: LoggedFeedback
    on_policy_value: float
    item_context: pd.DataFrame = field(repr=False)
    bts_prior: BetaPrior = field(repr=False)
    behavior: str
    campaign: str
    source: str
    path: Path

    @property
    def n_rounds(self) -> int:
        return self.feedback.n_rounds

    @property
    def n_actions(self) -> int:
        return int(self.feedback.n_actions)

    @property
    def n_clicks(self) -> int:
        return int(self.feedback.reward.sum())


# ---------------------------------------------------------------------------------------------- loading
def load_open_bandit(
    behavior: str = "random",
    campaign: str = "all",
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    include_affinity: bool = False,
    download: bool = True,
) -> OpenBanditDataset:
    """Load one (logging policy, campaign) file of the Open Bandit sample.

    Parameters
    ----------
    behavior : {"random", "bts"}
        The logging policy: uniform random or Bernoulli Thompson Sampling.
    campaign : {"all", "men", "women"}
    data_dir : path, optional
        Folder holding ``obd-sample/``; wins over ``$CAUSALREC_DATA_DIR``.
    cache_dir : path, optional
        Root of the download cache (``<cache_dir>/obd-sample/``); wins over ``$CAUSALREC_CACHE_DIR``.
    include_affinity : bool
        Append the ``user-item_affinity_*`` columns (one per item) to the context, after the one-hot features.
    download : bool
        When the data is in neither the data folder nor the cache, download it (see the module docstring).
        With ``False`` a :class:`DatasetNotFoundError` is raised instead.
    """
    if behavior not in BEHAVIORS:
        raise ValidationError("behavior", f"one of {BEHAVIORS}", repr(behavior))
    if campaign not in CAMPAIGNS:
        raise ValidationError("campaign", f"one of {CAMPAIGNS}", repr(campaign))
    folder, source = _locate_sample(behavior, campaign, data_dir, cache_dir, download)
    return _read_sample(folder, source, behavior, campaign, include_affinity)


def _locate_sample(
    behavior: str,
    campaign: str,
    data_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
    download: bool,
) -> tuple[Path, str]:
    needed = [*_log_files(behavior, campaign), "prior_bts.yaml"]
    root = resolve_data_dir(data_dir)
    if root is not None and not missing_files(root / DATASET_FOLDER, needed):
        return root / DATASET_FOLDER, "data_dir"
    cached = resolve_cache_dir(cache_dir) / DATASET_FOLDER
    if is_complete_sample(cached):
        logger.debug("Open Bandit sample: using the cache at %s", cached)
        return cached, "cache"
    found = describe_data_dir(root, explicit=data_dir is not None)
    expected = f"{DATASET_FOLDER}/{needed[0]}"
    if not download:
        raise DatasetNotFoundError(
            f"Open Bandit sample not found: expected {expected} under the folder named by {DATA_DIR_VARIABLE} "
            f"or data_dir= ({found}), and the cache {str(cached)!r} is not complete; download=False forbids "
            f"fetching it. Set {DATA_DIR_VARIABLE} to the shared data folder or allow the download."
        )
    logger.info("Open Bandit sample not in the data folder (%s); filling the cache %s", found, cached)
    try:
        folder = fetch_open_bandit_sample(cache_dir)
    except (OSError, subprocess.SubprocessError) as error:
        raise DatasetNotFoundError(
            f"Open Bandit sample not found: expected {expected} under the folder named by {DATA_DIR_VARIABLE} "
            f"or data_dir= ({found}); the cache {str(cached)!r} is not complete and downloading obp=="
            f"{OBP_SDIST_VERSION} from the package index failed: {error}"
        ) from error
    return folder, "cache"


def _read_sample(
    folder: Path, source: str, behavior: str, campaign: str, include_affinity: bool
) -> OpenBanditDataset:
    log_path, item_path = (folder / relative for relative in _log_files(behavior, campaign))
    logs = read_csv(log_path, ["timestamp", "item_id", "position", "click", "propensity_score"], index_col=0)
    item_context = read_csv(item_path, ["item_id", "item_feature_0"], index_col=0)
    item_context = item_context.set_index("item_id", drop=False).sort_index()
    item_context.index.name = None
    n_actions = int(item_context.shape[0])
    if not np.array_equal(item_context["item_id"].to_numpy(), np.arange(n_actions)):
        raise ValidationError("item_id", f"the items 0..{n_actions - 1} in {item_path}", "gaps or repeats")

    # A stable sort keeps the file order among equal timestamps, so the row order is deterministic.
    try:
        timestamp = pd.to_datetime(logs["timestamp"], utc=True, format="ISO8601").dt.tz_localize(None)
    except (ValueError, TypeError) as error:
        raise ValidationError("timestamp", "ISO 8601 date-times (e.g. 2019-11-24 00:00:34.762830+00:00)",
                              str(error).splitlines()[0], owner=str(log_path)) from None
    order = np.argsort(timestamp.to_numpy(), kind="stable")
    logs = logs.iloc[order].reset_index(drop=True)
    timestamp = timestamp.iloc[order].to_numpy().astype("datetime64[ns]")

    raw_position = logs["position"].to_numpy()
    if not np.isin(raw_position, np.arange(1, N_POSITIONS + 1)).all():
        row = int(np.flatnonzero(~np.isin(raw_position, np.arange(1, N_POSITIONS + 1)))[0])
        raise ValidationError("position", "a slot in 1..3 in the raw file", f"{raw_position[row]!r}",
                              int(order[row]), owner=str(log_path))
    # OBP uses the dense rank minus one; with all three slots present (as in every file) that is position - 1,
    # which stays right even for a subset of rows that lacks a slot.
    position = raw_position.astype(np.int64) - 1

    user_columns = [column for column in logs.columns if column.startswith("user_feature_")]
    context = pd.get_dummies(logs[user_columns].astype(str), drop_first=True, dtype=np.float64)
    if include_affinity:
        affinity_columns = [f"user-item_affinity_{item}" for item in range(n_actions)]
        absent = [column for column in affinity_columns if column not in logs.columns]
        if absent:
            raise ValidationError("columns", f"the affinity columns {affinity_columns[0]}..{affinity_columns[-1]}",
                                  f"no {absent[:5]}", owner=str(log_path))
        context = pd.concat([context, logs[affinity_columns].astype(np.float64)], axis=1)

    prior = _read_prior(folder / "prior_bts.yaml", campaign, n_actions)
    metadata = {
        "dataset": "open_bandit_sample",
        "behavior": behavior,
        "campaign": campaign,
        "logging_policy": "uniform random" if behavior == "random" else "Bernoulli Thompson Sampling",
        "source": source,
        "path": str(log_path),
        "timestamp": "datetime64[ns], UTC",
    }
    try:
        feedback = LoggedFeedback(
            action=logs["item_id"].to_numpy(),
            reward=logs["click"].to_numpy(),
            n_actions=n_actions,
            position=position,
            pscore=logs["propensity_score"].to_numpy(),
            context=context.to_numpy(),
            context_names=tuple(context.columns),
            action_context=item_action_context(item_context),
            n_positions=N_POSITIONS,
            timestamp=timestamp,
            metadata=metadata,
        )
    except ValidationError as error:
        # Name the file and its column, and count rows as in the file (the logs were sorted by time).
        column = _RAW_COLUMNS.get(error.field, error.field)
        row = None if error.row is None or error.field == "action_context" else int(order[error.row])
        raise ValidationError(column, error.expected, error.found, row, owner=str(log_path)) from None
    logger.debug("Open Bandit %s/%s: %d rounds read from %s", behavior, campaign, feedback.n_rounds, log_path)
    return OpenBanditDataset(
        feedback=feedback,
        on_policy_value=float(feedback.reward.mean()),
        item_context=item_context,
        bts_prior=prior,
        behavior=behavior,
        campaign=campaign,
        source=source,
        path=folder,
    )


def item_action_context(item_context: pd.DataFrame) -> np.ndarray:
    """Item features as OBP builds them: integer codes of ``item_feature_1..3`` (sorted levels, like
    scikit-learn's LabelEncoder), then the numeric ``item_feature_0``."""
    categorical = [column for column in item_context.columns if column.startswith("item_feature_")]
    categorical = [column for column in categorical if column != "item_feature_0"]
    codes = [
        np.unique(item_context[column].astype(str).to_numpy(), return_inverse=True)[1]
        for column in categorical
    ]
    numeric = item_context["item_feature_0"].to_numpy(dtype=np.float64)
    return np.column_stack([*codes, numeric]).astype(np.float64)


def _read_prior(path: Path, campaign: str, n_actions: int) -> BetaPrior:
    with path.open(encoding="utf-8") as stream:
        priors = yaml.safe_load(stream)
    if not isinstance(priors, dict) or campaign not in priors:
        raise ValidationError("prior_bts.yaml", f"a mapping with the campaign {campaign!r}", f"{path}")
    entry = priors[campaign]
    if not isinstance(entry, dict) or "alpha" not in entry or "beta" not in entry:
        raise ValidationError(campaign, "a mapping with the keys 'alpha' and 'beta'", repr(entry)[:80], owner=str(path))
    try:
        prior = BetaPrior(alpha=entry["alpha"], beta=entry["beta"])
    except (ValueError, TypeError) as error:
        found = error.found if isinstance(error, ValidationError) else str(error)
        raise ValidationError(campaign, "alpha and beta lists of finite positive numbers of equal length",
                              found, owner=str(path)) from None
    if prior.n_actions != n_actions:
        raise ValidationError(
            campaign, f"one alpha/beta value per item of item_context.csv ({n_actions} items)",
            f"{prior.n_actions} values", owner=str(path)
        )
    return prior


_RAW_COLUMNS = {"action": "item_id", "reward": "click", "pscore": "propensity_score"}




# ---------------------------------------------------------------------------------------------- download cache
def is_complete_sample(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a finished cache: every data file and the marker written last by the fetch."""
    folder = Path(folder)
    return (folder / _COMPLETE_MARKER).is_file() and not missing_files(folder, sample_files())


def fetch_open_bandit_sample(
    cache_dir: str | os.PathLike | None = None,
    *,
    downloader: Downloader | None = None,
    expected_sha256: str = OBP_SDIST_SHA256,
) -> Path:
    """Make sure ``<cache root>/obd-sample/`` holds the complete sample and return that folder.

    A complete cache is returned as is, without any network access. Otherwise ``downloader(folder)`` (by
    default :func:`download_obp_sdist`) fetches the archive into a private temporary folder inside the cache
    root; its sha256 must equal ``expected_sha256``; only the data files are extracted, into a staging folder
    that is renamed into place once complete. Any failure leaves no partial cache behind.

    Raises
    ------
    ArchiveIntegrityError
        The archive's sha256 differs from the pinned one, or it lacks expected files.
    """
    cache_root = resolve_cache_dir(cache_dir)
    target = cache_root / DATASET_FOLDER
    if is_complete_sample(target):
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{DATASET_FOLDER}-", dir=cache_root) as work_dir:
        work = Path(work_dir)
        archive = Path((downloader or download_obp_sdist)(work / "download"))
        digest = file_sha256(archive)
        if digest != expected_sha256.lower():
            raise ArchiveIntegrityError(
                f"{archive.name}: sha256 {digest} differs from the pinned {expected_sha256}; the archive was "
                f"altered or is not obp=={OBP_SDIST_VERSION}. Nothing was written to the cache {str(target)!r}."
            )
        staging = work / DATASET_FOLDER
        _extract_sample(archive, staging)
        marker = {"archive": archive.name, "sha256": digest, "obp_version": OBP_SDIST_VERSION}
        (staging / _COMPLETE_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _install_folder(staging, target, work / "replaced")
    logger.info("Open Bandit sample cached at %s", target)
    return target


def download_obp_sdist(destination: Path) -> Path:
    """Download the pinned ``obp`` source distribution into ``destination`` with pip; return its path.

    pip checks the pinned hash (``--require-hashes``) before it runs any code of the archive to read its
    metadata; :func:`fetch_open_bandit_sample` checks it again. ``--ignore-requires-python`` is needed because
    obp 0.5.7 declares Python < 3.11: nothing is installed, only the archive is fetched.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    requirements = destination / "requirements.txt"
    requirements.write_text(f"obp=={OBP_SDIST_VERSION} --hash=sha256:{OBP_SDIST_SHA256}\n", encoding="utf-8")
    command = [
        sys.executable, "-m", "pip", "download", "--requirement", str(requirements), "--require-hashes",
        "--no-deps", "--no-binary", ":all:", "--ignore-requires-python", "--progress-bar", "off",
        "--dest", str(destination),
    ]  # fmt: skip
    logger.info("downloading obp==%s (source distribution, about 1.3 MB) with pip", OBP_SDIST_VERSION)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    logger.debug("pip download output:\n%s", completed.stdout[-4000:])
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout)[-1500:].strip()
        if "DO NOT MATCH THE HASHES" in tail.upper():
            raise ArchiveIntegrityError(
                f"pip rejected obp=={OBP_SDIST_VERSION}: its hash differs from the pin.\n{tail}"
            )
        raise OSError(
            f"`{' '.join(command[2:5])} obp=={OBP_SDIST_VERSION}` exited {completed.returncode}: {tail}"
        )
    archives = sorted(destination.glob(f"obp-{OBP_SDIST_VERSION}.tar.gz"))
    if not archives:
        raise OSError(f"pip reported success but {destination} holds no obp-{OBP_SDIST_VERSION}.tar.gz")
    return archives[0]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sample_path_in_archive(member_name: str, wanted: set[str]) -> str | None:
    """The cache path of an archive member that is one of the data files, else ``None``.

    Members sit under one top folder (``obp-0.5.7/``); only names on the whitelist are taken, so nothing can
    be written outside the staging folder whatever the archive contains.
    """
    parts = PurePosixPath(member_name).parts
    if len(parts) < 2:
        return None
    inner = "/".join(parts[1:])
    if inner in _SDIST_EXTRAS:
        return _SDIST_EXTRAS[inner]
    if inner.startswith(_SDIST_DATA_PREFIX) and inner[len(_SDIST_DATA_PREFIX) :] in wanted:
        return inner[len(_SDIST_DATA_PREFIX) :]
    return None


def _extract_sample(archive: Path, staging: Path) -> None:
    wanted = set(sample_files()) - {"prior_bts.yaml"}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                relative = _sample_path_in_archive(member.name, wanted)
                if relative is None or not member.isfile():
                    continue
                stream = tar.extractfile(member)
                if stream is None:
                    continue
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with stream, destination.open("wb") as out:
                    shutil.copyfileobj(stream, out)
    except tarfile.TarError as error:
        raise ArchiveIntegrityError(f"{archive.name} is not a readable tar archive: {error}") from error
    absent = missing_files(staging, sample_files())
    if absent:
        raise ArchiveIntegrityError(
            f"{archive.name} lacks {len(absent)} data files, expected under obp-{OBP_SDIST_VERSION}/"
            f"{_SDIST_DATA_PREFIX}: {', '.join(absent[:5])}"
        )


def _install_folder(staging: Path, target: Path, scratch: Path) -> None:
    """Rename the finished ``staging`` folder to ``target``; an incomplete ``target`` is moved aside first.

    When another process installed a complete cache meanwhile, that one is kept.
    """
    if target.exists():
        os.replace(target, scratch)
    try:
        os.replace(staging, target)
    except OSError:
        if not is_complete_sample(target):
            raise


# ---------------------------------------------------------------------------------------------- BTS policies
def bts_action_distribution_from_prior(
    alpha: np.ndarray,
    beta: np.ndarray,
    n_positions: int = N_POSITIONS,
    n_simulations: int = 100_000,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """The static action distribution OBP uses to evaluate the BTS policy, by Monte Carlo.

    Each simulation draws ``theta_a ~ Beta(alpha_a, beta_a)`` for every item, ranks the items by ``theta``
    (largest first) and puts the item of rank ``l`` in slot ``l``. The result is the frequency of each
    (item, slot) over the simulations, shape ``(n_actions, n_positions)``; every column sums to 1. The Monte
    Carlo error of a cell ``p`` is ``sqrt(p (1 - p) / n_simulations)``.

    The logged BTS propensities drift from day to day, so this static distribution matches them poorly; see
    :func:`bts_action_distribution_from_logs` for a time-indexed alternative.
    """
    prior = BetaPrior(alpha, beta)
    n_actions = prior.n_actions
    if not 1 <= int(n_positions) <= n_actions:
        raise ValidationError("n_positions", f"in 1..n_actions = 1..{n_actions}", repr(n_positions))
    if int(n_simulations) < 1:
        raise ValidationError("n_simulations", "a positive integer", repr(n_simulations))
    n_positions, n_simulations = int(n_positions), int(n_simulations)
    rng = np.random.default_rng(random_state)
    slots = np.arange(n_positions)
    counts = np.zeros(n_actions * n_positions, dtype=np.int64)
    chunk = max(1, 2_000_000 // n_actions)  # about 16 MB of draws per chunk
    for start in range(0, n_simulations, chunk):
        size = min(chunk, n_simulations - start)
        theta = rng.beta(prior.alpha, prior.beta, size=(size, n_actions))
        if n_positions < n_actions:
            top = np.argpartition(-theta, n_positions - 1, axis=1)[:, :n_positions]
            order = np.argsort(-np.take_along_axis(theta, top, axis=1), axis=1)
            ranked = np.take_along_axis(top, order, axis=1)
        else:
            ranked = np.argsort(-theta, axis=1)
        counts += np.bincount((ranked * n_positions + slots).ravel(), minlength=counts.shape[0])
    return (counts / n_simulations).reshape(n_actions, n_positions)


@dataclass(frozen=True, eq=False)
class DailyActionDistribution:
    """A policy's action distribution per calendar day (UTC), rebuilt from its logged propensities.

    Unpacks as ``day_index, distribution = ...`` (the table index of each logged round and the tables), the
    layout of ``causalrec.policy.TableDistribution``.

    Attributes
    ----------
    day_index : int array (n_rounds,)
        Day of each round of the logs it was built from, as an index into ``days``.
    distribution : float array (n_days, n_actions, n_positions)
        ``distribution[d, a, l]`` = probability of item ``a`` in slot ``l`` on day ``d``; sums to 1 over ``a``.
    days : datetime64[D] array (n_days,)
        The UTC calendar days, sorted.
    seen_mass : float array (n_days, n_positions)
        Sum over the items seen on (day, slot) of their mean logged propensity, before normalisation.
    renormalised : bool array (n_days, n_positions)
        Where ``seen_mass`` was at least 1 (or every item was seen) so the seen items were rescaled to sum to 1
        and unseen items got 0, instead of unseen items sharing ``1 - seen_mass``.
    n_logged : int array (n_days, n_actions, n_positions)
        Number of logged rounds behind each cell.
    """

    day_index: np.ndarray
    distribution: np.ndarray
    days: np.ndarray
    seen_mass: np.ndarray
    renormalised: np.ndarray
    n_logged: np.ndarray

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.day_index, self.distribution))

    def day_index_of(self, timestamps: Any) -> np.ndarray:
        """Index into ``days`` of the UTC day of each timestamp (for instance of another policy's logs)."""
        return day_index_of(timestamps, self.days)

    def for_timestamps(self, timestamps: Any) -> np.ndarray:
        """Dense ``(n, n_actions, n_positions)`` distribution of the day of each timestamp (small data only)."""
        return self.distribution[self.day_index_of(timestamps)]


def utc_days(timestamps: Any) -> np.ndarray:
    """UTC calendar day (``datetime64[D]``) of each timestamp.

    Accepts numpy ``datetime64`` (taken as UTC), integers (nanoseconds since the epoch, UTC), or anything
    ``pandas.to_datetime`` parses (strings with an offset are converted to UTC).
    """
    values = np.asarray(timestamps)
    if values.dtype.kind == "M":
        return values.astype("datetime64[D]")
    if values.dtype.kind in "iu":
        return values.astype("datetime64[ns]").astype("datetime64[D]")
    parsed = pd.to_datetime(pd.Series(values.ravel()), utc=True, format="mixed").dt.tz_localize(None)
    return parsed.to_numpy().astype("datetime64[D]").reshape(values.shape)


def day_index_of(timestamps: Any, days: np.ndarray) -> np.ndarray:
    """Index into the sorted ``days`` (``datetime64[D]``) of the UTC day of each timestamp.

    Raises a ValidationError naming the first timestamp whose day is not among ``days``: a day-indexed
    distribution has nothing to say about a day without logs.
    """
    days = np.asarray(days).astype("datetime64[D]")
    wanted = utc_days(timestamps)
    index = np.clip(np.searchsorted(days, wanted), 0, max(len(days) - 1, 0))
    known = (days[index] == wanted) if len(days) else np.zeros(wanted.shape, dtype=bool)
    if not known.all():
        row = int(np.flatnonzero(~known)[0])
        span = f"{days[0]} .. {days[-1]}" if len(days) else "none"
        raise ValidationError(
            "timestamp", f"on one of the {len(days)} logged days ({span})", str(wanted[row]), row
        )
    return index.astype(np.int64)


def bts_action_distribution_from_logs(bts_feedback: LoggedFeedback) -> DailyActionDistribution:
    """A time-indexed (per UTC day) action distribution of the logging policy, rebuilt from its propensities.

    Assumptions, and what the Open Bandit sample says about them:

    * The logged ``pscore`` of a round is the logging policy's probability of the shown (item, slot) at that
      moment. Within a day and slot, the mean logged pscore of an item stands for the policy's probability of
      that item that day. In the OBD sample the BTS propensities are refreshed every few minutes, vary up to
      several-fold within a day, and the mean over the rounds where an item was *shown* is biased upwards (an
      item is shown more often when its probability is high): the means of the seen items sum to 1.2-3.0 per
      (day, slot) instead of at most 1.
    * Hence the normalisation: when the seen items' means sum to less than 1, the unseen items share the
      remaining mass equally (and the seen items keep their logged means exactly); when they sum to 1 or more
      (or every item was seen), the seen items are rescaled to sum to 1 and unseen items get 0. Both are
      recorded (``seen_mass``, ``renormalised``) so callers can judge the approximation.
    * Days are UTC calendar days of ``timestamp``; a round of other logs can only be matched to a day that has
      logs here (:meth:`DailyActionDistribution.day_index_of`).
    """
    if not isinstance(bts_feedback, LoggedFeedback):
        raise ValidationError("bts_feedback", "a LoggedFeedback", type(bts_feedback).__name__)
    if bts_feedback.pscore is None or bts_feedback.timestamp is None:
        raise ValidationError("bts_feedback", "logs with both pscore and timestamp", "one of them missing")
    days_of_rounds = utc_days(bts_feedback.timestamp)
    days, day_index = np.unique(days_of_rounds, return_inverse=True)
    day_index = day_index.reshape(-1).astype(np.int64)
    n_days, n_actions, n_positions = len(days), int(bts_feedback.n_actions), int(bts_feedback.n_positions)
    shape = (n_days, n_actions, n_positions)
    cell = (day_index * n_actions + bts_feedback.action) * n_positions + bts_feedback.position
    size = n_days * n_actions * n_positions
    n_logged = np.bincount(cell, minlength=size).reshape(shape)
    pscore_sum = np.bincount(cell, weights=bts_feedback.pscore, minlength=size).reshape(shape)
    seen = n_logged > 0
    mean_pscore = np.divide(pscore_sum, n_logged, out=np.zeros(shape), where=seen)

    seen_mass = mean_pscore.sum(axis=1)  # (n_days, n_positions)
    n_unseen = (~seen).sum(axis=1)
    renormalised = (seen_mass >= 1.0) | (n_unseen == 0)
    share = np.divide(1.0 - seen_mass, n_unseen, out=np.zeros(seen_mass.shape), where=~renormalised)
    scale = np.where(renormalised, 1.0 / np.where(seen_mass > 0, seen_mass, 1.0), 1.0)
    distribution = np.where(seen, mean_pscore * scale[:, None, :], share[:, None, :])
    if renormalised.any():
        logger.info(
            "BTS daily distribution: %d of %d (day, slot) rows had mean logged pscores summing to >= 1 "
            "(up to %.2f) and were rescaled",
            int(renormalised.sum()), renormalised.size, float(seen_mass.max()),
        )  # fmt: skip
    return DailyActionDistribution(
        day_index=read_only_copy(day_index),
        distribution=read_only_copy(distribution),
        days=read_only_copy(days.astype("datetime64[D]")),
        seen_mass=read_only_copy(seen_mass),
        renormalised=read_only_copy(renormalised),
        n_logged=read_only_copy(n_logged),
    )

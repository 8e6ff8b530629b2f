"""Reference data sets with known or recoverable ground truth, read from ``$CAUSALREC_DATA_DIR``.

Each loader takes ``data_dir=`` (wins over the variable) and raises :class:`DatasetNotFoundError` (a
``FileNotFoundError``) naming ``CAUSALREC_DATA_DIR`` and the expected path when the data is absent. Only the
Open Bandit sample can be downloaded (into a user cache) when it is not there.
"""

from causalrec.data.datasets._paths import (
    CACHE_DIR_VARIABLE,
    DATA_DIR_VARIABLE,
    ArchiveIntegrityError,
    DatasetNotFoundError,
    resolve_cache_dir,
    resolve_data_dir,
)
from causalrec.data.datasets.coat import CoatDataset, load_coat
from causalrec.data.datasets.hillstrom import (
    hillstrom_arm_means,
    hillstrom_covariates,
    hillstrom_treatments,
    load_hillstrom,
)
from causalrec.data.datasets.kuairec import KuaiRecSubset, load_kuairec_random83
from causalrec.data.datasets.obd import (
    OBP_SDIST_SHA256,
    OBP_SDIST_VERSION,
    BetaPrior,
    DailyActionDistribution,
    OpenBanditDataset,
    bts_action_distribution_from_logs,
    bts_action_distribution_from_prior,
    day_index_of,
    fetch_open_bandit_sample,
    load_open_bandit,
)

__all__ = [
    "CACHE_DIR_VARIABLE",
    "DATA_DIR_VARIABLE",
    "OBP_SDIST_SHA256",
    "OBP_SDIST_VERSION",
    "ArchiveIntegrityError",
    "BetaPrior",
    "CoatDataset",
    "DailyActionDistribution",
    "DatasetNotFoundError",
    "KuaiRecSubset",
    "OpenBanditDataset",
    "bts_action_distribution_from_logs",
    "bts_action_distribution_from_prior",
    "day_index_of",
    "fetch_open_bandit_sample",
    "hillstrom_arm_means",
    "hillstrom_covariates",
    "hillstrom_treatments",
    "load_coat",
    "load_hillstrom",
    "load_kuairec_random83",
    "load_open_bandit",
    "resolve_cache_dir",
    "resolve_data_dir",
]

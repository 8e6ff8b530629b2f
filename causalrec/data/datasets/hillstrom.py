"""Kevin Hillstrom's MineThatData e-mail campaign (2008): a randomised experiment with three arms.

64,000 customers who bought in the last twelve months were randomised to a men's merchandise e-mail, a women's
merchandise e-mail or no e-mail; visit, conversion and spend were recorded over the next two weeks. Because
assignment was random, the difference in means between arms is an unbiased average treatment effect, the
ground truth against which uplift and CATE estimators are checked.

File: ``$CAUSALREC_DATA_DIR/hillstrom/hillstrom.csv``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from causalrec._arrays import as_index, as_numeric, check_finite
from causalrec.data.datasets._paths import locate_dataset, read_csv
from causalrec.exceptions import ValidationError

DATASET_FOLDER = "hillstrom"
ARMS = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")
CONTROL_ARM = "No E-Mail"
OUTCOMES = ("visit", "conversion", "spend")
CATEGORICAL_COVARIATES = ("zip_code", "channel", "history_segment")
NUMERIC_COVARIATES = ("recency", "history", "mens", "womens", "newbie")
# The file's own spelling ("Surburban") is kept: renaming levels would break comparisons with other analyses.
_LEVELS = {
    "history_segment": (
        "1) $0 - $100", "2) $100 - $200", "3) $200 - $350", "4) $350 - $500",
        "5) $500 - $750", "6) $750 - $1,000", "7) $1,000 +",
    ),
    "zip_code": ("Rural", "Surburban", "Urban"),
    "channel": ("Multichannel", "Phone", "Web"),
    "segment": (CONTROL_ARM, "Mens E-Mail", "Womens E-Mail"),
}  # fmt: skip
_INTEGER_COLUMNS = ("recency", "mens", "womens", "newbie", "visit", "conversion")
_FLAG_COLUMNS = ("mens", "womens", "newbie", "visit", "conversion")
_FLOAT_COLUMNS = ("history", "spend")
N_CUSTOMERS = 64_000


def load_hillstrom(*, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The raw 64,000 rows with typed columns: integers for counts and 0/1 flags, floats for money, and
    categoricals with a fixed level order for ``history_segment`` (ordered by amount), ``zip_code``,
    ``channel`` and ``segment`` (the arm; the control level "No E-Mail" first).

    The frame is a fresh object on every call. Unexpected levels, missing columns, a row count other than
    64,000, and missing, negative, fractional (in integer columns) or non-0/1 (in flags) values raise
    ValidationError naming the file, the column and the first offending row.
    """
    folder = locate_dataset(DATASET_FOLDER, ["hillstrom.csv"], data_dir)
    path = folder / "hillstrom.csv"
    raw = read_csv(path, [*_INTEGER_COLUMNS, *_FLOAT_COLUMNS, *_LEVELS])
    # A truncated file would still load and shift every arm mean, the ground truth this data set is for.
    if len(raw) != N_CUSTOMERS:
        raise ValidationError("rows", f"{N_CUSTOMERS:,} customers (one per row)", f"{len(raw):,} rows",
                              owner=str(path))
    typed = {}
    for column in raw.columns:
        values = raw[column]
        if column in _LEVELS:
            levels = _LEVELS[column]
            unknown = sorted(set(values.dropna().astype(str).unique()) - set(levels))
            if unknown or values.isna().any():
                raise ValidationError(
                    f"hillstrom {column}", f"one of {levels}", f"{unknown or 'missing values'}"
                )
            ordered = column == "history_segment"
            typed[column] = pd.Categorical(values.astype(str), categories=list(levels), ordered=ordered)
        elif column in _INTEGER_COLUMNS or column in _FLOAT_COLUMNS:
            typed[column] = _numeric_column(values, column, path)
        else:
            typed[column] = values
    return pd.DataFrame(typed, columns=list(raw.columns))


def _numeric_column(values: pd.Series, column: str, path) -> pd.Series:
    """Finite, non-negative numbers; integer-valued (never truncated) and 0/1 where the column is a count or flag."""
    owner = str(path)
    array = as_numeric(values, column, None, owner=owner).astype(np.float64)
    check_finite(array, column, owner=owner)
    if (array < 0).any():
        row = int(np.flatnonzero(array < 0)[0])
        raise ValidationError(column, "a non-negative number", f"{array[row]!r}", row, owner=owner)
    if column in _FLOAT_COLUMNS:
        return pd.Series(array, index=values.index, name=column)
    integers = as_index(array, column, None, owner=owner)
    if column in _FLAG_COLUMNS and (integers > 1).any():
        row = int(np.flatnonzero(integers > 1)[0])
        raise ValidationError(column, "a 0/1 flag", f"{integers[row]}", row, owner=owner)
    return pd.Series(integers, index=values.index, name=column)


def hillstrom_treatments(frame: pd.DataFrame) -> pd.DataFrame:
    """0/1 indicator of each arm, one column per arm named as in the file ("Mens E-Mail", ...)."""
    segment = frame["segment"].astype(str)
    return pd.DataFrame({arm: (segment == arm).astype(np.int64) for arm in ARMS}, index=frame.index)


def hillstrom_covariates(frame: pd.DataFrame, *, drop_first: bool = True) -> pd.DataFrame:
    """Numeric pre-treatment covariates: ``recency, history, mens, womens, newbie`` and one-hot
    ``zip_code, channel, history_segment``.

    ``drop_first=True`` drops each categorical's first level, so the columns are not collinear with an
    intercept (linear nuisance and final-stage models); pass ``False`` for trees. The outcomes and the arm are
    never included.
    """
    numeric = frame[list(NUMERIC_COVARIATES)].astype(np.float64)
    categorical = frame[list(CATEGORICAL_COVARIATES)]
    dummies = pd.get_dummies(categorical, drop_first=drop_first, dtype=np.float64)
    return pd.concat([numeric, dummies], axis=1)


def hillstrom_arm_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean of each outcome per arm (the randomised ground truth), arms as rows in the order of ``ARMS``."""
    means = frame.groupby(frame["segment"].astype(str))[list(OUTCOMES)].mean()
    return means.reindex(list(ARMS))

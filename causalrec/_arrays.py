"""Array conversion with the data contract's errors: numeric, finite and integer-valued columns.

Shared by the logs (:class:`~causalrec.data.feedback.LoggedFeedback`) and the target policies
(:mod:`causalrec.policy`), so a bad value gets the same message wherever it comes in: the field, the expectation,
what was found and the first offending row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from causalrec.exceptions import ValidationError


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def as_numeric(values: Any, field_name: str, n_rows: int | None, ndim: int = 1, *, owner: str) -> np.ndarray:
    """Convert ``values`` to a numeric array of the expected shape, or raise a ValidationError.

    Missing values of pandas' nullable dtypes (``pd.NA``) and non-numeric entries are refused here, naming the
    first offending row; NaN and infinity pass (see :func:`check_finite`)."""
    if values is None:
        raise ValidationError(field_name, "given", "None", owner=owner)
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy()
    array = np.asarray(values)
    if array.dtype == bool:
        array = array.astype(np.float64)
    if array.dtype.kind in "cmM":
        # numpy would cast these silently: complex drops its imaginary part, date-times become nanoseconds.
        raise ValidationError(field_name, "real numbers", f"dtype {array.dtype}", owner=owner)
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            bad_row = None
            flat = np.asarray(values, dtype=object).reshape(-1) if np.ndim(values) == 1 else None
            if flat is not None:
                for index, item in enumerate(flat):
                    try:
                        float(item)
                    except (TypeError, ValueError):
                        bad_row = index
                        break
            example = "" if bad_row is None else f" such as {flat[bad_row]!r}"
            raise ValidationError(field_name, "numeric", f"dtype {array.dtype}{example}", bad_row,
                                  owner=owner) from None
    if array.ndim != ndim:
        shape = "a 1-D array" if ndim == 1 else "a 2-D array (rows x columns)"
        raise ValidationError(field_name, shape, f"an array of shape {array.shape}", owner=owner)
    if n_rows is not None and array.shape[0] != n_rows:
        raise ValidationError(field_name, f"of length n_rounds = {n_rows} (the length of 'action')",
                              f"length {array.shape[0]}", owner=owner)
    return array


def check_finite(array: np.ndarray, field_name: str, *, owner: str, row_offset: int = 0) -> None:
    """Refuse NaN and infinity, naming the first offending row (``row_offset``: the row number of ``array[0]`` when it
    is a block of a larger array)."""
    finite = np.isfinite(array)
    if not finite.all():
        bad = ~finite if array.ndim == 1 else ~finite.all(axis=1)
        row = _first(bad)
        value = array[row] if array.ndim == 1 else array[row][~finite[row]][0]
        found = "NaN (a missing value)" if np.isnan(value) else f"{value!r}"
        raise ValidationError(field_name, "finite (no NaN or infinity)", found, row + row_offset, owner=owner)


def as_index(values: Any, field_name: str, n_rows: int | None, *, owner: str) -> np.ndarray:
    """Integer indices: accept integer dtypes and floats with no fractional part."""
    array = as_numeric(values, field_name, n_rows, owner=owner)
    if array.dtype.kind == "f":
        check_finite(array, field_name, owner=owner)
        fractional = array != np.floor(array)
        if fractional.any():
            row = _first(fractional)
            raise ValidationError(field_name, "integer-valued", f"{array[row]!r}", row, owner=owner)
    if array.dtype.kind in "fu" and array.size:
        # Beyond int64 the cast wraps (1e20 became -9223372036854775808) instead of failing.
        too_large = np.abs(array) >= 2.0**63 if array.dtype.kind == "f" else array > np.iinfo(np.int64).max
        if too_large.any():
            row = _first(too_large)
            raise ValidationError(field_name, "integers within the int64 range", f"{array[row]!r}", row,
                                  owner=owner)
    return array.astype(np.int64)


def as_index_below(values: Any, field_name: str, size: int, *, owner: str, expected: str | None = None,
                   n_rows: int | None = None) -> np.ndarray:
    """Integer indices (:func:`as_index`) that all lie in ``[0, size)``: a negative index would wrap around and one
    past the end read a neighbouring row instead of failing. ``expected`` words the range for the message."""
    indices = as_index(values, field_name, n_rows, owner=owner)
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        row = _first((indices < 0) | (indices >= size))
        raise ValidationError(field_name, expected or f"indices in [0, {size})", f"{indices[row]}", row, owner=owner)
    return indices


def quantile_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index in ``[0, n_bins)`` of each value, with about equal counts per bin, assigned by value.

    The inner edges are the ``j / n_bins`` quantiles (``np.quantile``, linear interpolation, duplicates dropped)
    and ``v`` falls in bin ``#{edges < v}``, i.e. bins are ``(e_{j-1}, e_j]`` as in scikit-learn's
    ``calibration_curve``. Equal values always share a bin, so nothing depends on row order; heavy ties give
    fewer, larger bins (a constant gives one).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.unique(np.quantile(values, np.arange(1, n_bins) / n_bins))
    return np.searchsorted(edges, values, side="left").astype(np.int64)


def item_indices(values, field: str, row: int | None, owner: str, n_items: int | None = None,
                 padding: int | None = None) -> np.ndarray:
    """One row's item indices as int64: integer-valued, ``>= 0`` and below ``n_items`` (when given); entries
    equal to ``padding`` are dropped. Fractional, missing or non-numeric ids are refused, never truncated, and
    negative ones never wrap around."""
    expected = "integer item indices 0..n_items-1 (map item ids to indices first)"
    array = np.asarray(values)
    if array.dtype == object:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValidationError(field, expected, f"{array.reshape(-1)[:5].tolist()}", row, owner=owner) from None
    array = array.reshape(-1)
    if array.size and array.dtype.kind not in "iuf":
        raise ValidationError(field, expected, f"dtype {array.dtype}", row, owner=owner)
    if array.dtype.kind == "f":
        fractional = ~np.isfinite(array) | (array != np.floor(array))
        if fractional.any():
            raise ValidationError(field, expected, f"{array[fractional][0]!r}", row, owner=owner)
    if padding is not None:
        array = array[array != padding]
    if (array < 0).any():
        raise ValidationError(field, "non-negative item indices", f"{array[array < 0][0]!r}", row, owner=owner)
    if n_items is not None and (array >= n_items).any():
        raise ValidationError(field, f"item indices below n_items = {n_items}", f"{array[array >= n_items][0]!r}",
                              row, owner=owner)
    return array.astype(np.int64)


def check_padding_value(value, n_items: int, owner: str) -> int:
    """The value that pads a 2-D array of histories: an integer that is not an item index (e.g. -1)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or 0 <= value < n_items:
        raise ValidationError("padding_value", f"an integer outside the item indices [0, {n_items}) (e.g. -1)",
                              repr(value), owner=owner)
    return int(value)

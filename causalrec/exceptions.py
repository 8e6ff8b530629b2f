"""The one warning class and the validation error of causalrec.

Users filter every causalrec warning with ``warnings.filterwarnings("ignore", category=CausalrecWarning)``;
errors about bad input name the field, the expectation, what was found and the first offending row.
"""

from __future__ import annotations

import re

# NumPy 2 writes scalars as ``np.float64(nan)`` / ``np.int64(3)`` / ``np.str_('a')``; messages show the value only.
_NUMPY_SCALAR_REPR = re.compile(r"\bnp\.(?:float|int|uint|bool|str|bytes|complex)\w*\(([^()]*)\)")
_NUMPY_BOOL_REPR = re.compile(r"\bnp\.(True|False)_")


def plain_values(text: str) -> str:
    """``text`` with NumPy scalar reprs replaced by their values (``np.int64(3)`` -> ``3``)."""
    return _NUMPY_BOOL_REPR.sub(r"\1", _NUMPY_SCALAR_REPR.sub(r"\1", text))


class CausalrecWarning(UserWarning):
    """A result can be computed but should not be trusted blindly (low effective sample size, poor support...)."""


class ValidationError(ValueError):
    """Input that violates a causalrec data contract.

    Attributes mirror the message so that callers can react programmatically.
    """

    def __init__(self, field: str, expected: str, found: str, row: int | None = None, owner: str = "input"):
        self.field = field
        self.expected = expected
        self.found = found = plain_values(str(found))
        self.row = row
        where = "" if row is None else f" (first offending row: {row})"
        super().__init__(f"{owner}: field '{field}' must be {expected}; found {found}{where}")

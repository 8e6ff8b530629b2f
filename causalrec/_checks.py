"""Boundary checks shared by the planning and OPE modules: each failure names the field, the expectation and the
value."""

from __future__ import annotations

import math
from collections.abc import Iterable

from causalrec.exceptions import ValidationError


def fail(owner: str, field: str, expected: str, found: object) -> ValidationError:
    return ValidationError(field, expected, repr(found) if not isinstance(found, str) else found, owner=owner)


def finite_number(owner: str, field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) and not hasattr(value, "__float__"):
        raise fail(owner, field, "a finite number", repr(value))
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise fail(owner, field, "a finite number", value)
    return number


def open_unit_interval(owner: str, field: str, value: object) -> float:
    number = finite_number(owner, field, value)
    if not 0.0 < number < 1.0:
        raise fail(owner, field, "in the open interval (0, 1)", value)
    return number


def positive(owner: str, field: str, value: object) -> float:
    number = finite_number(owner, field, value)
    if number <= 0.0:
        raise fail(owner, field, "a positive finite number", value)
    return number


def non_negative(owner: str, field: str, value: object) -> float:
    number = finite_number(owner, field, value)
    if number < 0.0:
        raise fail(owner, field, "a non-negative finite number", value)
    return number


def positive_integer(owner: str, field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (hasattr(value, "__index__")):
        raise fail(owner, field, "a positive integer", repr(value))
    number = int(value)  # type: ignore[call-overload]
    if number < 1:
        raise fail(owner, field, "a positive integer", value)
    return number


def one_of(owner: str, field: str, value: object, options: Iterable[str]) -> str:
    choices = tuple(options)
    if value not in choices:
        raise fail(owner, field, f"one of {', '.join(repr(c) for c in choices)}", value)
    return str(value)


def whole_units(count: float) -> int:
    """Round a unit count up, ignoring the last ~1e-9 relative of root-finding noise (1e6 + 1e-7 -> 1e6)."""
    return math.ceil(count - 1e-9 * max(1.0, abs(count)))

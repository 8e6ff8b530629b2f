"""Small text helpers shared by the Python API and the command line."""

from __future__ import annotations


def split_names(text: str) -> list[str]:
    """``"ips, dr,"`` -> ``["ips", "dr"]``: a comma-separated list of names, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]

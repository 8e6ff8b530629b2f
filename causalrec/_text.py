"""Small text helpers shared by the Python API and the command line."""

from __future__ import annotations


def split_names(text: str) -> list[str]:
    """``"ips, dr,"`` -> ``["ips", "dr"]``: a comma-separated list of names, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def confidence_level(alpha: float) -> str:
    """``1 - alpha`` as a percentage with the digits it needs: 0.05 -> '95%', 0.025 -> '97.5%', 0.001 -> '99.9%'."""
    return f"{100 * (1 - alpha):.10g}%"

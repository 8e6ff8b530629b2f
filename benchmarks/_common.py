"""Shared by benchmark scripts: machine facts and atomic JSON results in benchmarks/results/."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from causalrec._results import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def machine_facts(packages: tuple[str, ...] = ("numpy", "scipy", "pandas", "scikit-learn", "lightgbm")) -> dict:
    versions = {}
    for name in ("causalrec", *packages):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "packages": versions,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def save_result(name: str, payload: dict) -> Path:
    """Write ``payload`` plus machine facts to ``benchmarks/results/<name>.json`` atomically."""
    path = write_json_atomic(RESULTS / f"{name}.json", {"machine": machine_facts(), **payload})
    print(f"wrote {path}")
    return path

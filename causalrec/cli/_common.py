"""Helpers shared by CLI commands: console output and JSON writing at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from causalrec._results import write_json_atomic
from causalrec.exceptions import ValidationError

console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def write_json(path: Path | None, payload: Any) -> None:
    if path is not None:
        write_json_atomic(path, payload)
        console.print(f"wrote {path}")


def parse_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


__all__ = ["ValidationError", "console", "fail", "parse_list", "write_json"]

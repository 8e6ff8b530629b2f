"""A small report builder: titled sections of text, tables and matplotlib figures, written as a
self-contained ``report.html`` and a ``report.json`` carrying the same numbers."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from causalrec._results import to_jsonable, write_atomic


@dataclass
class Section:
    """One part of a report. ``data`` is what goes into the JSON; tables and figures go into the HTML."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add_figure(self, caption: str, figure: Any) -> None:
        """Render a matplotlib figure to PNG bytes, close it, and keep it."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        self.figures.append((caption, buffer.getvalue()))


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def add(self, section: Section) -> Section:
        self.sections.append(section)
        return section

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "metadata": to_jsonable(self.metadata),
            "sections": [
                {
                    "title": s.title,
                    "text": s.text,
                    "warnings": s.warnings,
                    "tables": {name: to_jsonable(table) for name, table in s.tables},
                    "data": to_jsonable(s.data),
                }
                for s in self.sections
            ],
        }

    def to_html(self) -> str:
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}th{background:#f2f2f2}.warn{background:#fff4e5;border-left:4px "
            "solid #f0a020;padding:6px 10px;margin:6px 0}figure{margin:1em 0}figcaption{color:#555;"
            "font-size:0.9em}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        if self.metadata:
            items = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in self.metadata.items())
            parts.append(f"<ul>{items}</ul>")
        for section in self.sections:
            parts.append(f"<h2>{html.escape(section.title)}</h2>")
            parts += [f"<div class='warn'>{html.escape(w)}</div>" for w in section.warnings]
            parts += [f"<p>{html.escape(t)}</p>" for t in section.text]
            for name, table in section.tables:
                parts.append(f"<h3>{html.escape(name)}</h3>")
                parts.append(_shown(table).to_html(index=False, float_format=lambda v: f"{v:.6g}", na_rep="—"))
            for caption, png in section.figures:
                encoded = base64.b64encode(png).decode("ascii")
                parts.append(
                    f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{encoded}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``report.html`` and ``report.json`` atomically into ``out_dir``; return both paths.

        Both documents are rendered before either file is replaced, so a payload that cannot be encoded leaves the
        previous pair in place instead of a new HTML beside an old JSON."""
        out = Path(out_dir)
        document = self.to_html()
        payload = json.dumps(to_jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n"
        html_path = write_atomic(out / "report.html", document)
        json_path = write_atomic(out / "report.json", payload)
        return html_path, json_path


def _shown(table):
    """The table with ``None`` cells as NaN: pandas writes a missing value in an object column (a True / False /
    None flag such as ``covers_truth`` of an estimate without an interval) as "None", not as ``na_rep``."""
    columns = [c for c in table.columns if table[c].dtype == object and table[c].map(lambda v: v is None).any()]
    if not columns:
        return table
    shown = table.copy()
    for column in columns:
        shown[column] = shown[column].map(lambda v: float("nan") if v is None else v)
    return shown

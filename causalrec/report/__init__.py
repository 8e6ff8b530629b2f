"""HTML + JSON reports. Sections are built by functions of this package from result objects; the writer
embeds plots as PNG images so a report is one self-contained file."""

from causalrec.report.builder import Report, Section

__all__ = ["Report", "Section"]

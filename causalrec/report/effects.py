"""Report section for an effect estimate: estimands, model choice, refutation and uplift metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalrec.report.builder import Section


def effects_section(result, refutation=None, uplift_metrics: pd.DataFrame | None = None,
                    title: str = "Effect of exposure") -> Section:
    """A :class:`Section` for an :class:`~causalrec.effects.EffectResult` (and optional refutation / metrics).

    Tables: the estimands with intervals, the CATE model selection (when ``auto`` chose), the refutation table
    and held-out uplift metrics. Figure: the distribution of the estimated CATE with the ATE marked.
    """
    section = Section(title=title)
    section.text.append(result.problem.describe() + ".")
    section.text.append(
        f"{result.n_rows} rows, {result.n_exposed} exposed. ATE {result.ate:.4g} "
        f"[{result.ate_interval[0]:.4g}, {result.ate_interval[1]:.4g}] ({result.ate_method}); naive difference "
        f"{result.naive_difference:.4g}. CATE model: {result.estimator}."
    )
    section.tables.append(("Estimands", result.to_frame()))
    diagnostics = {k: v for k, v in result.diagnostics.items() if v is not None}
    section.tables.append(("Diagnostics", pd.DataFrame([diagnostics])))
    section.warnings.extend(result.warnings)
    section.data["effect"] = result.to_dict()
    if result.selection is not None:
        section.tables.append(("CATE model selection (held-out)", result.selection.to_frame()))
        section.text.append(f"auto chose {result.selection.chosen}: {result.selection.reason}.")
    if refutation is not None:
        section.tables.append(("Refutation", refutation.to_frame().drop(columns=["reading"])))
        if refutation.subject:
            section.text.append(refutation.subject)
        section.text.extend(r.reading for r in refutation.refutations)
        section.text.append(refutation.caveat)
        section.warnings.extend(f"refuter {r.method} failed: {r.reading}" for r in refutation.refutations
                                if not r.passed)
        section.data["refutation"] = refutation.to_dict()
    if uplift_metrics is not None:
        section.tables.append(("Uplift metrics of the CATE ranking (held-out)", uplift_metrics))
        section.data["uplift_metrics"] = uplift_metrics
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency; reports still work without figures
        return section
    cate = result.cate()
    figure, axis = plt.subplots(figsize=(6, 3.2))
    axis.hist(cate, bins=40, color="#4878a8")
    axis.axvline(result.ate, color="#d04020", label=f"ATE {result.ate:.3g}")
    axis.axvline(0.0, color="#444444", linewidth=0.8)
    axis.set_xlabel("estimated effect of exposure (CATE)")
    axis.set_ylabel("rows")
    axis.legend()
    section.add_figure(f"Distribution of the estimated CATE ({np.mean(cate < 0):.0%} of rows below 0)", figure)
    return section

"""Ready-made effect questions on the reference data, shared by the CLI, the benchmarks and the notebook.

Hillstrom (MineThatData 2008) is a randomised experiment: 64,000 customers were assigned to a men's e-mail, a
women's e-mail or no e-mail. For one e-mail arm against no e-mail, the difference in mean visit rates is the
unbiased ATE, so an observational estimator run on it must land inside that interval and its propensity model
must find no signal.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from causalrec.exceptions import ValidationError

HILLSTROM_ARMS = {"mens": "Mens E-Mail", "womens": "Womens E-Mail"}
HILLSTROM_CONFOUNDERS = ("recency", "history", "mens", "womens", "newbie", "zip_code", "channel", "history_segment")
HILLSTROM_OUTCOMES = ("visit", "conversion", "spend")


def hillstrom_arm(arm: str = "mens", data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Rows of one e-mail arm (``"mens"`` or ``"womens"``) and of the no-e-mail arm, with ``email`` = 1 for the arm.

    Columns: ``email``, the outcomes ``visit, conversion, spend`` and the pre-treatment covariates
    :data:`HILLSTROM_CONFOUNDERS` (categoricals kept as categories; :func:`~causalrec.effects.estimate_effect`
    encodes them).
    """
    from causalrec.data.datasets.hillstrom import CONTROL_ARM, load_hillstrom

    if arm not in HILLSTROM_ARMS:
        raise ValidationError("arm", f"one of {sorted(HILLSTROM_ARMS)}", repr(arm), owner="effects")
    frame = load_hillstrom(data_dir=data_dir)
    segment = frame["segment"].astype(str)
    rows = frame[segment.isin([HILLSTROM_ARMS[arm], CONTROL_ARM])]
    out = rows[[*HILLSTROM_CONFOUNDERS, *HILLSTROM_OUTCOMES]].reset_index(drop=True)
    out.insert(0, "email", (segment[rows.index] == HILLSTROM_ARMS[arm]).to_numpy().astype(np.int64))
    return out


def simulated_experiment(world, n_rows: int, treated_share: float = 0.5,
                         random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
    """A randomised experiment in a :class:`~causalrec.data.simulate.SimulatedWorld`: the rows of
    ``world.sample_exposure`` with the exposure replaced by a coin flip and the outcome redrawn from the world's
    potential-outcome probabilities (``p0``, ``p1``). Uplift curves are valid on such rows."""
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    rows = world.sample_exposure(n_rows, random_state=rng)
    treatment = (rng.random(n_rows) < treated_share).astype(np.int64)
    probability = rows["p0"].to_numpy() + treatment * rows["true_effect"].to_numpy()
    return rows.assign(treatment=treatment, outcome=(rng.random(n_rows) < probability).astype(np.int64),
                       propensity=treated_share)

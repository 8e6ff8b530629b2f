"""Declaring an effect question in recommender words, and turning it into DoWhy's causal model.

The question is always *what does exposure cause?* For (user, item) rows:

* ``treatment``: the exposure: the item was shown / recommended / mailed (0/1);
* ``outcome``: what followed: click, purchase, visit, spend;
* ``confounders``: what drove both the exposure decision and the outcome: user and item features and, above all,
  the **score** of the ranker that decided the exposure (it encodes the relevance that also drives organic
  outcomes); the score is listed separately as ``score`` and always adjusted for;
* ``effect_modifiers``: the features along which the effect is allowed to vary (the CATE's ``X``); by default the
  confounders.

The causal graph is the back-door graph: every confounder points at treatment and outcome, every effect modifier
at the outcome, treatment at outcome. :meth:`EffectProblem.prepare` checks a DataFrame against the declaration
and returns a *private*, numeric copy (booleans cast to int, categorical columns one-hot encoded), so the
caller's frame is never touched and DoWhy never writes into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from causalrec._arrays import as_numeric, check_finite
from causalrec.exceptions import ValidationError

_OWNER = "effects"


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _encoded_names(column: str, encoding: dict[str, list[str]]) -> list[str]:
    if column not in encoding:
        return [column]
    return [f"{column}__{k}" for k in range(1, len(encoding[column]))]


@dataclass(frozen=True)
class PreparedData:
    """A private numeric copy of the rows and the encoded column names it carries."""

    frame: pd.DataFrame = field(repr=False)
    treatment: str
    outcome: str
    confounders: tuple[str, ...]
    effect_modifiers: tuple[str, ...]
    encoding: dict = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``y, t, X, W`` as float arrays (``W`` holds the confounders not already in ``X``)."""
        frame = self.frame
        controls = [c for c in self.confounders if c not in self.effect_modifiers]
        features = frame[list(self.effect_modifiers)].to_numpy(np.float64)
        controls_array = frame[controls].to_numpy(np.float64) if controls else np.empty((len(frame), 0))
        return (frame[self.outcome].to_numpy(np.float64), frame[self.treatment].to_numpy(np.float64), features,
                controls_array)

    def encode(self, data: pd.DataFrame, names: list[str]) -> pd.DataFrame:
        """New rows encoded as these were, for the encoded column ``names``.

        Missing values and categories not seen in fitting are refused (ValidationError naming column and row).
        """
        if not isinstance(data, pd.DataFrame):
            raise ValidationError("data", "a pandas DataFrame", type(data).__name__, owner=_OWNER)
        indicators = {f"{column}__{k}": (column, category) for column, categories in self.encoding.items()
                      for k, category in enumerate(categories) if k > 0}
        originals = list(dict.fromkeys(indicators[n][0] if n in indicators else n for n in names))
        missing = [c for c in originals if c not in data.columns]
        if missing:
            raise ValidationError("columns", "the CATE model's features (effect modifiers; for meta-learners also "
                                  "the confounders)", f"missing {missing}", owner=_OWNER)
        texts, numbers = {}, {}
        for column in originals:
            series = data[column]
            if column in self.encoding:
                bad = np.flatnonzero(series.isna().to_numpy())
                if bad.size:
                    raise ValidationError(column, "a category (no missing values)", repr(series.iloc[bad[0]]),
                                          row=int(bad[0]), owner=_OWNER)
                texts[column] = series.astype(str).to_numpy()
                bad = np.flatnonzero(~np.isin(texts[column], self.encoding[column]))
                if bad.size:
                    raise ValidationError(column, f"one of the categories seen in fitting {self.encoding[column][:20]}",
                                          repr(series.iloc[bad[0]]), row=int(bad[0]), owner=_OWNER)
            else:
                numbers[column] = as_numeric(series, column, None, owner=_OWNER).astype(np.float64)
                check_finite(numbers[column], column, owner=_OWNER)
        columns = {}
        for name in names:
            if name in indicators:
                column, category = indicators[name]
                columns[name] = (texts[column] == category).astype(np.float64)
            else:
                columns[name] = numbers[name]
        return pd.DataFrame(columns)

    def all_features(self) -> np.ndarray:
        """Every confounder and effect modifier, once each: the input of the nuisance models."""
        names = list(dict.fromkeys([*self.confounders, *self.effect_modifiers]))
        return self.frame[names].to_numpy(np.float64)


@dataclass(frozen=True)
class EffectProblem:
    """What exposure causes: treatment (exposure), outcome, confounders (incl. the ranker's score), modifiers."""

    treatment: str
    outcome: str
    confounders: tuple[str, ...] = ()
    effect_modifiers: tuple[str, ...] = ()
    score: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "confounders", _names(self.confounders))
        object.__setattr__(self, "effect_modifiers", _names(self.effect_modifiers))
        if not self.confounders and not self.score:
            raise ValidationError("confounders", "at least one confounder (or a score)", "none", owner=_OWNER)
        if self.treatment == self.outcome:
            raise ValidationError("outcome", "a column other than the treatment", repr(self.outcome), owner=_OWNER)
        roles = (("confounders", self.confounders), ("effect_modifiers", self.effect_modifiers),
                 ("score", (self.score,) if self.score else ()))
        for role, names in roles:
            for name in names:
                if name in (self.treatment, self.outcome):
                    raise ValidationError(role, "columns other than the treatment and the outcome (treatment and "
                                          "outcome cannot also be confounders, effect modifiers or the score)",
                                          repr(name), owner=_OWNER)

    @property
    def adjustment_set(self) -> tuple[str, ...]:
        """Confounders to adjust for: the declared ones plus the score."""
        extra = (self.score,) if self.score and self.score not in self.confounders else ()
        return (*self.confounders, *extra)

    @property
    def modifiers(self) -> tuple[str, ...]:
        """Effect modifiers, defaulting to the adjustment set."""
        return self.effect_modifiers or self.adjustment_set

    def describe(self) -> str:
        return (
            f"effect of exposure '{self.treatment}' on '{self.outcome}', adjusting for "
            f"{', '.join(self.adjustment_set)}"
            + (f" (ranker score '{self.score}')" if self.score else "")
            + f"; effect varies with {', '.join(self.modifiers)}"
        )

    # ------------------------------------------------------------------------------------------- data
    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Check ``data`` against the declaration and return a private numeric copy (see the module docstring)."""
        if not isinstance(data, pd.DataFrame):
            raise ValidationError("data", "a pandas DataFrame", type(data).__name__, owner=_OWNER)
        needed = list(dict.fromkeys([self.treatment, self.outcome, *self.adjustment_set, *self.modifiers]))
        missing = [c for c in needed if c not in data.columns]
        if missing:
            raise ValidationError("columns", f"present in the data (have {list(data.columns)[:20]})",
                                  f"missing {missing}", owner=_OWNER)
        frame = data[needed].copy(deep=True).reset_index(drop=True)
        treatment = frame[self.treatment]
        if treatment.dtype == bool:
            treatment = treatment.astype(np.int64)
        values = pd.to_numeric(treatment, errors="coerce")
        bad = np.flatnonzero(~values.isin([0, 1]).to_numpy())
        if bad.size:
            raise ValidationError(self.treatment, "a binary 0/1 (or bool) exposure", repr(treatment.iloc[bad[0]]),
                                  row=int(bad[0]), owner=_OWNER)
        if values.nunique() < 2:
            raise ValidationError(self.treatment, "both exposed and unexposed rows", "a single value", owner=_OWNER)
        frame[self.treatment] = values.astype(np.int64)
        outcome = frame[self.outcome]
        numeric = pd.to_numeric(outcome.astype(np.int64) if outcome.dtype == bool else outcome,
                                errors="coerce").astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(numeric.to_numpy()))
        if bad.size:  # reported with the value as given, not as coerced to NaN
            raise ValidationError(self.outcome, "finite numbers (no NaN)", repr(outcome.iloc[bad[0]]),
                                  row=int(bad[0]), owner=_OWNER)
        frame[self.outcome] = numeric

        # Categorical columns become one indicator per category but the first (which would be collinear with
        # the intercept of a linear final stage), named ``column__<k>`` (graph-safe names); ``encoding`` maps
        # each such column to its sorted categories. Missing categories are refused, as are unseen ones in ``encode``.
        encoding: dict[str, list[str]] = {}
        for column in dict.fromkeys([*self.adjustment_set, *self.modifiers]):
            series = frame[column]
            if series.nunique(dropna=False) < 2:
                raise ValidationError(column, "a column that varies (a constant adjusts for nothing and explains no "
                                      "effect variation)", f"the single value {series.iloc[0]!r}", owner=_OWNER)
            if series.dtype == bool:
                frame[column] = series.astype(np.int64)
            elif not pd.api.types.is_numeric_dtype(series):
                bad = np.flatnonzero(series.isna().to_numpy())
                if bad.size:
                    raise ValidationError(column, "a category (no missing values)", repr(series.iloc[bad[0]]),
                                          row=int(bad[0]), owner=_OWNER)
                encoding[column] = sorted(series.astype(str).unique())
        for column, categories in encoding.items():
            text = frame.pop(column).astype(str)
            for k, category in enumerate(categories[1:], start=1):
                frame[f"{column}__{k}"] = (text == category).astype(np.float64)
        for column in frame.columns:
            bad = np.flatnonzero(~np.isfinite(frame[column].to_numpy(np.float64)))
            if bad.size:
                raise ValidationError(column, "finite numbers (no NaN)", repr(frame[column].iloc[bad[0]]),
                                      row=int(bad[0]), owner=_OWNER)

        def expand(names: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(n for c in names for n in _encoded_names(c, encoding))

        return PreparedData(frame, self.treatment, self.outcome, expand(self.adjustment_set),
                            expand(self.modifiers), encoding)

    # ------------------------------------------------------------------------------------------- DoWhy
    def graph(self, prepared: PreparedData) -> str:
        """The back-door graph in GML (DoWhy's graph format) over the encoded columns."""
        nodes = list(dict.fromkeys([prepared.treatment, prepared.outcome, *prepared.confounders,
                                    *prepared.effect_modifiers]))
        edges = [(prepared.treatment, prepared.outcome)]
        edges += [(c, prepared.treatment) for c in prepared.confounders]
        edges += [(c, prepared.outcome) for c in dict.fromkeys([*prepared.confounders, *prepared.effect_modifiers])]
        node_text = " ".join(f'node [id "{n}" label "{n}"]' for n in nodes)
        edge_text = " ".join(f'edge [source "{a}" target "{b}"]' for a, b in edges)
        return f"graph [directed 1 {node_text} {edge_text}]"

    def model(self, prepared: PreparedData):
        """DoWhy's ``CausalModel`` on a private copy of the prepared rows (model: the first of DoWhy's verbs)."""
        from dowhy import CausalModel

        return CausalModel(
            data=prepared.frame.copy(deep=True),
            treatment=prepared.treatment,
            outcome=prepared.outcome,
            graph=self.graph(prepared),
        )

    def identify(self, prepared: PreparedData):
        """Model and identify: the back-door estimand of the effect of exposure (DoWhy's ``identify_effect``).

        The graph declares every confounder a parent of the exposure, so the adjustment set is all of them
        (``maximal-adjustment``); DoWhy's default search for smaller back-door sets is exponential in their number
        (90 s for 26 confounders) and would find nothing smaller here.
        """
        model = self.model(prepared)
        estimand = model.identify_effect(method_name="maximal-adjustment", proceed_when_unidentifiable=True)
        # DoWhy builds the adjustment set from a set of graph nodes, whose order follows Python's per-process string
        # hashing; EconML's nuisance models then saw the columns in another order in each process, and the same
        # seed gave another ATE (0.07656 vs 0.07666 on Hillstrom). The prepared data's column order is fixed.
        # (Every stored set is reordered: DoWhy's set_adjustment_set() writes under a key its getter does not read
        # when identifier_method is None, as it is here.)
        order = {name: k for k, name in enumerate(prepared.frame.columns)}
        for sets in (estimand.backdoor_variables, estimand.general_adjustment_variables):
            for key, names in (sets or {}).items():
                if names:
                    sets[key] = sorted(names, key=lambda name: (order.get(name, len(order)), name))
        return model, estimand

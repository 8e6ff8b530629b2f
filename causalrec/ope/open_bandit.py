"""Off-policy evaluation on the Open Bandit sample, where the truth is known.

The sample holds logs of two policies (uniform ``random`` and Bernoulli Thompson Sampling ``bts``) on the same
campaigns. Evaluating one policy from the other's logs and comparing with the evaluated policy's own on-policy
click rate is the standard real-data check of an OPE method. The on-policy truth has its own sampling error
(38-69 clicks per file, about 15% relative standard error), which the result reports beside the estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalrec._results import ResultMixin
from causalrec.exceptions import ValidationError
from causalrec.ope.evaluate import DEFAULT_ESTIMATORS, EvaluationResult, evaluate_policy
from causalrec.policy import ActionDistribution, TableDistribution, uniform_random

BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")


@dataclass(frozen=True)
class OpenBanditEvaluation(ResultMixin):
    """An estimate of ``evaluation``'s value from ``behavior``'s logs, next to the on-policy truth."""

    campaign: str
    behavior: str
    evaluation: str
    target: str
    truth: float
    truth_se: float
    result: EvaluationResult

    @property
    def label(self) -> str:
        return f"{self.evaluation} <- {self.behavior} ({self.campaign})"

    def to_frame(self) -> pd.DataFrame:
        frame = self.result.to_frame()
        frame.insert(0, "campaign", self.campaign)
        frame.insert(1, "direction", f"{self.evaluation} <- {self.behavior}")
        frame["truth"] = self.truth
        frame["relative_error"] = (frame["value"] - self.truth).abs() / self.truth
        covers = (frame["ci_low"] <= self.truth) & (self.truth <= frame["ci_high"])
        # An estimator without an interval (DM without a bias bound) neither covers nor misses the truth.
        frame["covers_truth"] = covers.astype(object).where(frame["ci_low"].notna() & frame["ci_high"].notna(), None)
        frame["ess"] = self.result.diagnostics.ess
        return frame.drop(columns=["note"])

    def to_dict(self) -> dict:
        return {
            "campaign": self.campaign,
            "behavior": self.behavior,
            "evaluation": self.evaluation,
            "target": self.target,
            "truth": self.truth,
            "truth_se": self.truth_se,
            "relative_errors": dict(zip(self.to_frame()["estimator"], self.to_frame()["relative_error"], strict=True)),
            "result": self.result.to_dict(),
        }

    def summary(self) -> str:
        return (
            f"{self.label}: truth {self.truth:.5f} (se {self.truth_se:.5f}), target = {self.target}\n"
            f"{self.result.summary()}"
        )


def bts_target(
    logs, bts_logs, n_positions: int, source: str = "logs", random_state: int | None = 0
) -> tuple[ActionDistribution, str]:
    """The BTS policy's action distribution at every round of ``logs``.

    ``source="logs"`` rebuilds a time-indexed distribution from the logged BTS propensities (BTS updates its
    posterior over the week, so its distribution drifts by day); ``"prior"`` is the static Monte-Carlo
    distribution of the published Beta prior, as Open Bandit Pipeline computes it.
    """
    from causalrec.data.datasets import obd

    if source == "logs":
        daily = obd.bts_action_distribution_from_logs(bts_logs.feedback)
        days = daily.day_index_of(logs.feedback.timestamp)
        return TableDistribution(daily.distribution, days), "BTS, time-indexed from the logged BTS propensities"
    if source == "prior":
        table = obd.bts_action_distribution_from_prior(
            bts_logs.bts_prior.alpha, bts_logs.bts_prior.beta, n_positions=n_positions, random_state=random_state
        )
        return TableDistribution.constant(table, logs.feedback.n_rounds), "BTS, Monte Carlo of the static Beta prior"
    raise ValidationError("bts_source", "'logs' or 'prior'", repr(source), owner="evaluate_open_bandit")


def evaluate_open_bandit(
    campaign: str = "all",
    behavior: str = "random",
    evaluation: str = "bts",
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    reward_model=None,
    bts_source: str = "logs",
    alpha: float = 0.05,
    random_state: int | None = 0,
    data_dir=None,
    **evaluate_options,
) -> OpenBanditEvaluation:
    """Evaluate ``evaluation`` (``"bts"`` or ``"random"``) from the logs of ``behavior`` on ``campaign``.

    ``evaluate_options`` go to :func:`causalrec.evaluate_policy` (``ci``, ``n_bootstrap``, ``dm_bias_bound``...).
    """
    from causalrec.data.datasets import load_open_bandit

    for name, value, allowed in (("campaign", campaign, CAMPAIGNS), ("behavior", behavior, BEHAVIORS),
                                 ("evaluation", evaluation, BEHAVIORS)):
        if value not in allowed:
            raise ValidationError(name, f"one of {allowed}", repr(value), owner="evaluate_open_bandit")
    if behavior == evaluation:
        raise ValidationError(
            "evaluation", f"a policy other than the logging policy {behavior!r}", repr(evaluation),
            owner="evaluate_open_bandit",
        )
    logs = load_open_bandit(behavior=behavior, campaign=campaign, data_dir=data_dir)
    truth_logs = load_open_bandit(behavior=evaluation, campaign=campaign, data_dir=data_dir)
    feedback = logs.feedback
    if evaluation == "random":
        target = uniform_random(feedback.n_rounds, feedback.n_actions, feedback.n_positions)
        description = "uniform random over the campaign's items at each position"
    else:
        target, description = bts_target(logs, truth_logs, feedback.n_positions, bts_source, random_state)
    result = evaluate_policy(
        feedback, target, estimators=estimators, reward_model=reward_model, alpha=alpha, random_state=random_state,
        **evaluate_options,
    )
    clicks = truth_logs.feedback.reward
    return OpenBanditEvaluation(
        campaign=campaign,
        behavior=behavior,
        evaluation=evaluation,
        target=description,
        truth=float(clicks.mean()),
        truth_se=float(clicks.std(ddof=1) / np.sqrt(len(clicks))),
        result=result,
    )

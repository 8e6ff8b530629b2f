"""Logged feedback, reference data sets and the ground-truth simulator."""

from causalrec.data import simulate
from causalrec.data.feedback import LoggedFeedback

__all__ = ["LoggedFeedback", "simulate"]

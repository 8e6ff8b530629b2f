"""Report section for a model-selection leaderboard."""

from __future__ import annotations

from causalrec.report.builder import Section


def selection_section(board, title: str = "Model selection by estimated uplift") -> Section:
    section = Section(title)
    section.text.append(board.decision)
    section.text.append(board.correction)
    section.text.append(
        f"Accuracy columns ({board.accuracy_metric}, log loss, NDCG, recall) are measured on the logged items only "
        "and reward imitating the old policy; the uplift columns estimate what each candidate would cause if "
        f"shipped, relative to {board.baseline!r}, with paired intervals on the same logs."
    )
    section.warnings.extend(board.warnings)
    section.text.extend(board.uplift_notes)
    section.tables.append(("Leaderboard", board.table.drop(columns=["description", "uplift_note"], errors="ignore")))
    section.add_figure("Candidates ranked by accuracy on the logs (left) and by estimated uplift (right)", board.plot())
    section.data["leaderboard"] = board.to_dict()
    return section

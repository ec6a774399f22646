"""The repetition summary as a short text table and as CSV rows (the window's export)."""
from __future__ import annotations

import csv
import io
from typing import Any

from realtime.analysis.fitness import NO_REP_REASONS, NOBODY
from realtime.render import plural

REP_COLUMNS = ("person", "number", "start_frame", "turn_frame", "end_frame", "min_deg", "max_deg", "rom_deg",
               "out_s", "hold_s", "back_s", "side_diff_deg", "area_ratio", "turn_seen")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def summary_table(summary: dict[str, Any]) -> str:
    """'squat: 2 reps', one aligned row per repetition, and per person whose counted angle was
    often unknown a line saying in how many frames, why, and what to try (or the hint as it is
    when it says it all: nobody in view, or why nothing was counted: out of the exercise's
    posture, too shallow, in progress when the run stopped, too quick, no movement, not at the
    start position long enough). When nobody was found in any
    frame, that is said once, for no person."""
    exercise = summary["exercise"]["name"]
    lines = [f"{exercise}: {plural(summary['reps'], 'rep')}"]
    if summary["per_rep"]:
        rows = [REP_COLUMNS] + [tuple(_cell(rep.get(c)) for c in REP_COLUMNS) for rep in summary["per_rep"]]
        widths = [max(len(row[i]) for row in rows) for i in range(len(REP_COLUMNS))]
        lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    people = summary["people"]
    if people and all(person["unknown_reasons"].get(NOBODY, 0) == person["frames"] for person in people.values()):
        return "\n".join([*lines, next(iter(people.values()))["hint"]])
    for pid, person in people.items():
        if person.get("hint_reason") in (NOBODY, *NO_REP_REASONS):
            lines.append(f"person {pid}: {person['hint']}")
        elif person.get("hint"):
            reasons = ", ".join(f"{reason} {frames}" for reason, frames in person["unknown_reasons"].items())
            lines.append(f"person {pid}: no usable {exercise} angle in {person['unknown_frames']} of "
                         f"{plural(person['frames'], 'frame')} ({reasons}): {person['hint']}")
    return "\n".join(lines)


def reps_csv(summary: dict[str, Any]) -> str:
    """One CSV row per repetition, REP_COLUMNS in order, empty cells for unknown values."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REP_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rep in summary["per_rep"]:
        writer.writerow({c: "" if rep.get(c) is None else rep.get(c) for c in REP_COLUMNS})
    return out.getvalue()

"""The hand-landmark CSV format: read labelled hands, write recorded ones.

One row per hand: ``gesture, source_repo, source_label, x0, y0, ..., x20, y20``
(optionally ``z0 .. z20`` too). ``gesture`` is one of ``open_palm, fist,
pointing, victory, thumbs_up`` or ``other`` (any real gesture that is none of
those; the right answer for it is ``unknown``). ``source_repo`` names who
recorded the row (one person or session): evaluation leaves one out at a
time. Points are MediaPipe's 21 landmarks in image coordinates (y down), made
wrist-relative and divided by the largest absolute value.

    >>> hands = read_csv("my_hands.csv")              # doctest: +SKIP
    >>> hands.points.shape, hands.gesture[:2]         # doctest: +SKIP
    ((120, 21, 2), array(['fist', 'fist'], dtype='<U9'))
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, TextIO, Union

import numpy as np

CSV_GESTURES = ("open_palm", "fist", "pointing", "victory", "thumbs_up", "other")
HEADER = ["gesture", "source_repo", "source_label"] + [f"{a}{i}" for i in range(21) for a in "xy"]


@dataclass(frozen=True)
class LabelledHands:
    """Hands from one CSV: ``points`` (N, 21, 2|3) and per-row ``gesture``, ``source_repo``, ``source_label``."""

    points: np.ndarray
    gesture: np.ndarray
    source_repo: np.ndarray
    source_label: np.ndarray

    @property
    def expected(self) -> np.ndarray:
        """The right ``classify`` answer per row: the gesture, or ``unknown`` for ``other``."""
        return np.where(self.gesture == "other", "unknown", self.gesture)

    def subset(self, mask: np.ndarray) -> "LabelledHands":
        return LabelledHands(self.points[mask], self.gesture[mask], self.source_repo[mask], self.source_label[mask])


def read_csv(path: Union[str, Path]) -> LabelledHands:
    """Read a landmark CSV; raise ValueError naming the file, line and problem."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read landmark CSV {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        missing = [c for c in HEADER if c not in fields]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing[:5])}; expected the header "
                f"gesture,source_repo,source_label,x0,y0,...,x20,y20 (see vision/gesture_data.py)"
            )
        axes = "xyz" if all(f"z{i}" in fields for i in range(21)) else "xy"
        points: List[List[float]] = []
        labels: List[List[str]] = []
        for line, row in enumerate(reader, start=2):
            if row["gesture"] not in CSV_GESTURES:
                raise ValueError(f"{path}:{line}: gesture {row['gesture']!r} is not one of {', '.join(CSV_GESTURES)}")
            try:
                points.append([float(row[f"{a}{i}"]) for i in range(21) for a in axes])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: a landmark coordinate is empty or not a number") from None
            labels.append([row["gesture"], row["source_repo"], row["source_label"]])
    if not points:
        raise ValueError(f"{path}: no rows after the header")
    pts = np.array(points).reshape(len(points), 21, len(axes))
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{path}: landmark coordinates contain NaN or infinite values")
    lab = np.array(labels, dtype=str)
    return LabelledHands(pts, lab[:, 0], lab[:, 1], lab[:, 2])


def read_csv_or_report(path: Union[str, Path]) -> Optional[LabelledHands]:
    """``read_csv`` for command lines: on a bad file, print the problem to stderr and return None."""
    try:
        return read_csv(path)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def to_row(gesture: str, source_repo: str, source_label: str, landmarks: Sequence[Sequence[float]]) -> List[object]:
    """One CSV row for one hand: x, y made wrist-relative and divided by their largest absolute value."""
    if gesture not in CSV_GESTURES:
        raise ValueError(f"gesture {gesture!r} is not one of {', '.join(CSV_GESTURES)}")
    xy = np.asarray(landmarks, dtype=float)[:, :2]
    xy = xy - xy[0]
    peak = float(np.max(np.abs(xy)))
    if xy.shape != (21, 2) or not peak > 0.0:
        raise ValueError("a hand needs 21 landmarks that are not all at the same point")
    return [gesture, source_repo, source_label] + [round(float(v), 4) for v in (xy / peak).ravel()]


def write_rows(out: TextIO, rows: Sequence[Sequence[object]], header: bool) -> None:
    writer = csv.writer(out)
    if header:
        writer.writerow(HEADER)
    writer.writerows(rows)

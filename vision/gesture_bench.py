"""``opensteady bench gestures --csv FILE``: how ``classify`` does on labelled real hands.

    opensteady bench gestures --csv my_hands.csv          # shipped model vs the rule-only baseline
    opensteady bench gestures --csv devset.csv --loro     # also retrain leaving each source_repo out

Prints per-class recall (``other`` rows count as right when the answer is
``unknown``), the confusion matrix of the shipped classifier, and the cost of
one ``classify`` call. The CSV format is described in vision/gesture_data.py;
``opensteady gestures record`` writes it from a webcam.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from opensteady.vision.gesture_data import read_csv_or_report
from opensteady.vision.gestures import GESTURES, classify, classify_by_pattern

TRUTH = GESTURES  # expected labels: the five gestures, and unknown for `other`


def recall_row(expected: np.ndarray, predicted: np.ndarray) -> List[str]:
    return [f"{np.mean(predicted[expected == c] == c):.3f}" if np.any(expected == c) else "-" for c in TRUTH]


def confusion(expected: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts, rows = expected label, columns = answer, both in ``GESTURES`` order."""
    m = np.zeros((len(TRUTH), len(TRUTH)), dtype=int)
    for i, e in enumerate(TRUTH):
        for j, p in enumerate(TRUTH):
            m[i, j] = int(np.sum((expected == e) & (predicted == p)))
    return m


def report(expected: np.ndarray, runs: Dict[str, np.ndarray]) -> str:
    """Markdown: per-class recall of each named run, then the last run's confusion matrix."""
    head = ["open_palm", "fist", "pointing", "victory", "thumbs_up", "other → unknown"]
    lines = ["| classifier | " + " | ".join(head) + " | min |", "|---" * (len(head) + 2) + "|"]
    for name, predicted in runs.items():
        row = recall_row(expected, predicted)
        low = min(float(r) for r in row if r != "-")
        lines.append(f"| {name} | " + " | ".join(row) + f" | {low:.3f} |")
    name, predicted = list(runs.items())[-1]
    lines += ["", f"Confusion matrix, {name} (rows: expected, columns: answer):", ""]
    lines.append("| expected \\ answer | " + " | ".join(TRUTH) + " |")
    lines.append("|---" * (len(TRUTH) + 1) + "|")
    for label, counts in zip(TRUTH, confusion(expected, predicted)):
        lines.append(f"| {label} | " + " | ".join(str(c) for c in counts) + " |")
    return "\n".join(lines)


def worst_sources(expected: np.ndarray, predicted: np.ndarray, sources: np.ndarray, min_rows: int = 30) -> str:
    """Per class, the held-out source with the lowest recall (among sources with ``min_rows`` rows of it)."""
    cells = []
    for c in TRUTH:
        rates = [
            (float(np.mean(predicted[m] == c)), s)
            for s in np.unique(sources[expected == c])
            for m in [(expected == c) & (sources == s)]
            if m.sum() >= min_rows
        ]
        cells.append(f"{c} {min(rates)[0]:.3f} ({min(rates)[1]})" if rates else f"{c} -")
    return "Worst single source per class (held out): " + "; ".join(cells)


def cost_us(points: np.ndarray, fn, n: int = 300) -> float:
    """Median µs per call of ``fn`` over single hands (batches of 50 calls)."""
    rows = [points[i % len(points)] for i in range(n)]
    samples = []
    for k in range(0, n, 50):
        t0 = time.perf_counter()
        for p in rows[k : k + 50]:
            fn(p)
        samples.append((time.perf_counter() - t0) / 50)
    return float(np.median(samples) * 1e6)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="opensteady bench gestures", description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True, help="labelled landmark CSV (format: vision/gesture_data.py)")
    parser.add_argument("--loro", action="store_true", help="also retrain the model leaving each source_repo out (slow)")
    args = parser.parse_args(argv)
    hands = read_csv_or_report(args.csv)
    if hands is None:
        return 2
    expected = hands.expected
    runs = {
        "rules only (before)": np.array([classify_by_pattern(p) for p in hands.points]),
        "shipped model": np.array([classify(p) for p in hands.points]),
    }
    if args.loro:
        from opensteady.vision.gesture_training import leave_one_group_out

        runs["model, leave-one-repo-out"] = leave_one_group_out(hands, log=functools.partial(print, file=sys.stderr))
    groups = len(np.unique(hands.source_repo))
    print(f"{args.csv}: {len(expected)} hands from {groups} source(s)\n")
    print(report(expected, runs))
    if args.loro:
        print("\n" + worst_sources(expected, runs["model, leave-one-repo-out"], hands.source_repo))
    print(
        f"\nclassify: {cost_us(hands.points, classify):.0f} µs per hand; "
        f"rules only: {cost_us(hands.points, classify_by_pattern):.0f} µs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The landmark CSV format, `opensteady bench gestures`, the training script and `opensteady gestures record`.

Every CSV here is written by the test itself from the synthetic hands of
test_vision_gestures.py: no test reads a shared data set.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from opensteady.host.cli import main as cli_main
from opensteady.vision.gesture_bench import confusion
from opensteady.vision.gesture_data import HEADER, read_csv, to_row, write_rows
from opensteady.vision.gesture_training import leave_one_group_out, train
from opensteady.vision.gesture_training import main as training_main
from opensteady.vision.gestures import GESTURES, GestureModel, classify
from tests.test_vision_gestures import _THUMB_WRAPPED, LABELS, OTHER_SHAPES, hand_3d, shown, view

SCRIPT = Path(sys.executable).parent / "opensteady"


def synthetic_rows(n_per_class: int, sources=("alice", "bob"), seed: int = 0):
    """Rows of the shared format: the five gestures and `other` shapes, from two recorders."""
    rng = np.random.default_rng(seed)
    rows = []
    for source in sources:
        for gesture in LABELS + ["other"]:
            for i in range(n_per_class):
                if gesture == "other":
                    pose = ((_THUMB_WRAPPED,), OTHER_SHAPES[i % len(OTHER_SHAPES)])
                    img = view(hand_3d("", rng, pose=pose), rng, roll_deg=rng.uniform(-180, 180), mirror=bool(i % 2))
                else:
                    img = view(hand_3d(gesture, rng), rng, roll_deg=0.0, mirror=bool(i % 2))
                    img = shown(gesture, img, rng, rng.uniform(-180, 180))
                pixels = img[:, :2] * 120.0 + 300.0  # image coordinates, y down
                rows.append(to_row(gesture, source, gesture.upper(), pixels))
    return rows


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("hands") / "hands.csv"
    with path.open("w", newline="") as f:
        write_rows(f, synthetic_rows(12), header=True)
    return path


def test_rows_round_trip_wrist_relative_and_scaled(small_csv):
    hands = read_csv(small_csv)
    assert hands.points.shape == (12 * 6 * 2, 21, 2)
    assert np.all(hands.points[:, 0] == 0.0)  # wrist at the origin
    assert np.allclose(np.abs(hands.points).max(axis=(1, 2)), 1.0)  # largest |coordinate| is 1
    assert set(hands.expected) == set(GESTURES)  # `other` is expected to be `unknown`
    assert set(hands.source_repo) == {"alice", "bob"}
    # Scaling to the CSV's units changes nothing for classify.
    rng = np.random.default_rng(1)
    img = view(hand_3d("victory", rng), rng, roll_deg=20.0)
    assert classify(np.array(to_row("victory", "x", "y", img)[3:], dtype=float).reshape(21, 2)) == classify(img[:, :2])


@pytest.mark.parametrize(
    "text, words",
    [
        ("gesture,source_repo\nfist,a\n", ["missing column", "source_label"]),
        (",".join(HEADER) + "\nwave,a,b" + ",0" * 42 + "\n", [":2:", "'wave'", "open_palm"]),
        (",".join(HEADER) + "\nfist,a,b" + ",0" * 41 + ",x\n", [":2:", "not a number"]),
        (",".join(HEADER) + "\n", ["no rows"]),
    ],
)
def test_bad_csv_names_the_line_and_the_problem(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        read_csv(path)
    for word in words:
        assert word in str(err.value)


def test_bench_gestures_prints_recall_and_confusion_for_any_csv(small_csv, capsys):
    assert cli_main(["bench", "gestures", "--csv", str(small_csv)]) == 0
    out = capsys.readouterr().out
    hands = read_csv(small_csv)
    predicted = np.array([classify(p) for p in hands.points])
    expected = hands.expected
    row = next(line for line in out.splitlines() if line.startswith("| shipped model |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:-1]
    assert cells == [f"{np.mean(predicted[expected == c] == c):.3f}" for c in GESTURES]
    matrix = confusion(expected, predicted)
    assert matrix.sum() == len(expected)
    for label, counts in zip(GESTURES, matrix):
        assert f"| {label} | " + " | ".join(str(c) for c in counts) + " |" in out
    assert "rules only (before)" in out and "µs per hand" in out
    # --loro retrains without each recorder in turn and adds that row.
    assert cli_main(["bench", "gestures", "--csv", str(small_csv), "--loro"]) == 0
    captured = capsys.readouterr()
    assert "| model, leave-one-repo-out |" in captured.out and "Worst single source" in captured.out
    assert "held out alice" in captured.err and "held out bob" in captured.err


def test_bench_gestures_reports_a_missing_file_clearly(tmp_path, capsys):
    assert cli_main(["bench", "gestures", "--csv", str(tmp_path / "nope.csv")]) == 2
    assert "cannot read landmark CSV" in capsys.readouterr().err


def test_training_learns_the_gestures_and_leave_one_out_holds_each_source_out(small_csv, tmp_path):
    hands = read_csv(small_csv)
    model = GestureModel(train(hands))
    right = np.mean([classify(p, model=model) == e for p, e in zip(hands.points, hands.expected)])
    assert right >= 0.9
    predicted = leave_one_group_out(hands)
    assert predicted.shape == hands.expected.shape and set(predicted) <= set(GESTURES)
    assert np.mean(predicted == hands.expected) >= 0.8  # trained on alice, judged on bob and back
    out = tmp_path / "model.npz"
    assert training_main(["--csv", str(small_csv), "--out", str(out)]) == 0
    assert GestureModel.load(out).w1.shape == model.w1.shape


def test_record_without_a_camera_says_so(tmp_path):
    out = tmp_path / "mine.csv"
    proc = subprocess.run(
        [str(SCRIPT), "gestures", "record", "--gesture", "fist", "--out", str(out), "--camera", "97"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "camera 97 could not be opened" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_record_from_a_video_without_hands_writes_a_header_and_no_rows(tmp_path):
    import cv2

    video = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(3):
        writer.write(np.full((120, 160, 3), 90, np.uint8))
    writer.release()
    out = tmp_path / "mine.csv"
    assert cli_main(["gestures", "record", "--gesture", "other", "--video", str(video), "--out", str(out)]) == 0
    assert out.read_text().splitlines() == [",".join(HEADER)]

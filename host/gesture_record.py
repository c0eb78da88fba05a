"""``opensteady gestures record``: log your own hand's landmarks as a labelled CSV.

    opensteady gestures record --gesture fist --out my_hands.csv            # webcam 0, 150 hands
    opensteady gestures record --gesture other --label thumbs_down --out my_hands.csv
    opensteady bench gestures --csv my_hands.csv                            # how classify does on them

Hold the gesture in front of the camera (move it around, turn it a little);
each frame with a hand adds one row in the format of vision/gesture_data.py,
appended to ``--out`` (the header is written when the file is new). Use
``--gesture other`` for any gesture that should be ``unknown``. ``--source``
names the recorder (default: your user name), so evaluation can leave one
person out; ``--video`` reads a file instead of a camera.
"""

import getpass
import sys
from pathlib import Path

from opensteady.vision.gesture_data import CSV_GESTURES, to_row, write_rows


def add_arguments(parser):
    parser.add_argument("action", choices=["record"], help="record: log one labelled gesture to a CSV")
    parser.add_argument("--gesture", required=True, choices=CSV_GESTURES, help="the gesture you will show")
    parser.add_argument("--out", required=True, help="CSV to append to (created with a header if new)")
    parser.add_argument("--label", default="", help="your own name for the gesture (source_label; default: --gesture)")
    parser.add_argument("--source", default="", help="who records (source_repo; default: your user name)")
    parser.add_argument("--hands", type=int, default=150, help="stop after this many hands (default 150)")
    parser.add_argument("--max-frames", type=int, default=3000, help="stop after this many frames even without hands")
    parser.add_argument("--camera", type=int, default=0, help="webcam index (default 0)")
    parser.add_argument("--video", help="read this video file instead of a camera")


def _source(args):
    from opensteady.host.capture import CameraSource, VideoFileSource

    if args.video:
        return VideoFileSource(args.video, paced=False)
    return CameraSource(args.camera)


def record(args, out=None):
    """Returns the number of rows written; raises CaptureError when the camera or file cannot be read."""
    out = out or sys.stdout
    from opensteady.host.capture import EndOfStream
    from opensteady.vision.pipeline import Perception, VisionConfig

    source = _source(args)
    source.open()
    rows, frames = [], 0
    try:
        with Perception(VisionConfig(faces=False, hands=True, pose=False, max_hands=1)) as vision:
            while len(rows) < args.hands and frames < args.max_frames:
                try:
                    frame = source.read()
                except EndOfStream:
                    break
                frames += 1
                h, w = frame.rgb.shape[:2]
                for hand in vision.process(frame.rgb, frame.t_s).hands[:1]:
                    pixels = [(x * w, y * h) for x, y, _ in hand.landmarks]  # undo the frame's aspect ratio
                    rows.append(to_row(args.gesture, args.source or getpass.getuser(), args.label or args.gesture, pixels))
                    if len(rows) % 25 == 0:
                        print(f"{len(rows)} hands", file=out)
    finally:
        source.close()
    path = Path(args.out)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as handle:
        write_rows(handle, rows, header=new)
    print(f"wrote {len(rows)} {args.gesture} hand(s) from {frames} frame(s) to {path}", file=out)
    return len(rows)


def run(args):
    from opensteady.host.capture import CaptureError

    try:
        record(args)
    except CaptureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

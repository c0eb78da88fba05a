"""End-to-end latency of `opensteady track`: frame capture to setpoint bytes written.

    .venv/bin/python -m host.track_bench                 # 300 frames per configuration
    .venv/bin/python -m host.track_bench --frames 600 --markdown

Writes 640x480 videos of scikit-image's astronaut moving across the frame
(at two sizes: a subject about 1.5 m and about 1 m from a webcam), then runs
the real app on them for each configuration, playing the video in
real time at 30 fps like a camera (newest frame wins, drops counted), with
the SimpleBGC driver writing its frames to pyserial's ``loop://`` port so
every setpoint really is encoded and written. Latency per frame is measured
from the moment the capture thread has the decoded frame to the return of
the port write; the app reports median and p95 in its JSON summary.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

FACE_SIZE = 360


def face_offset_x(i, n, size=FACE_SIZE):
    """Left edge of the photo in frame i of n: across the frame and back."""
    import numpy as np

    return int(10 + (640 - size - 20) * (0.5 - 0.5 * np.cos(2 * np.pi * i / n)))


def write_astronaut_video(path, n, fps=30.0, size=FACE_SIZE):
    """A 640x480 MJPG video of the astronaut photo (size px square) moving across a grey frame; returns path.

    At the default 360 px the face is 0.11 frame widths (a person about 1.5 m from a
    webcam); at 480 px it is 0.14 (about 1 m).
    """
    import cv2
    import numpy as np
    import skimage.data

    photo = cv2.resize(skimage.data.astronaut(), (size, size))
    top = min(60, 480 - size)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MJPG video to %s" % path)
    for i in range(n):
        frame = np.full((480, 640, 3), 90, np.uint8)
        x = face_offset_x(i, n, size)
        frame[top:top + size, x:x + size] = photo
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# (name, photo size px, extra flags, config file text)
CONFIGS = (
    ("subject at ~1.5 m: face only", 360, ["--no-hands"], None),
    ("subject at ~1.5 m: face + hands (hands on a worker thread, the default)", 360, [], None),
    ("subject at ~1.5 m: face + hands (hands in line)", 360, [], "[vision]\nhands_async = false\n"),
    ("subject at ~1 m: face only", 480, ["--no-hands"], None),
    ("subject at ~1 m: face + hands (hands on a worker thread, the default)", 480, [], None),
)


def run_config(video, extra, config_text, workdir):
    cmd = [sys.executable, "-m", "opensteady.host.cli", "track", "--video", video, "--headless", "--json", "--no-log",
           "--gimbal", "simplebgc", "--port", "loop://", *extra]
    if config_text:
        path = os.path.join(workdir, "bench.toml")
        with open(path, "w") as f:
            f.write(config_text)
        cmd += ["--config", path]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError("track failed (%d): %s" % (result.returncode, result.stderr[-2000:]))
    return json.loads(lines[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="video length in frames (30 fps)")
    parser.add_argument("--markdown", action="store_true", help="print a table for docs/benchmarks.md")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        videos = {}
        for name, size, extra, config_text in CONFIGS:
            if size not in videos:
                videos[size] = write_astronaut_video(os.path.join(tmp, "bench-%d.avi" % size), args.frames, size=size)
            s = run_config(videos[size], extra, config_text, tmp)
            rows.append((name, s))
            if not args.markdown:
                print(json.dumps({"config": name, **{k: s[k] for k in (
                    "frames", "frames_with_target", "dropped_frames", "e2e_ms_p50", "e2e_ms_p95",
                    "pipeline_ms_p50", "pipeline_ms_p95", "stage_ms_p50")}}))
    load_after = os.getloadavg()
    if args.markdown:
        print("| configuration | frames (dropped) | target seen | capture to bytes written p50 / p95 (ms) "
              "| pipeline p50 / p95 (ms) | vision stage p50 (ms) |")
        print("|---|---|---|---|---|---|")
        for name, s in rows:
            print("| %s | %d (%d) | %d | %.1f / %.1f | %.1f / %.1f | %.1f |" % (
                name, s["frames"], s["dropped_frames"], s["frames_with_target"], s["e2e_ms_p50"], s["e2e_ms_p95"],
                s["pipeline_ms_p50"], s["pipeline_ms_p95"], s["stage_ms_p50"]["vision"]))
    print("load average (1 min) before %.2f, after %.2f; %d CPUs" % (load_before[0], load_after[0], os.cpu_count()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

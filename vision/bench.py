"""Benchmark: OpenSteady's perception against the bare library calls it wraps.

    python -m vision.bench                 # all sections, 200 frames each
    python -m vision.bench --frames 400 --only hands

For each pipeline it runs ``Perception.process`` and the bare MediaPipe (or
OpenCV) calls with the same settings on the same 640x480 frames, interleaved
in one loop and alternating which goes first, so load from other processes on
a shared machine hits both alike. It prints per-frame latency (median, p95),
the ratio of medians and the median of the per-frame ratios (each frame's two
calls ran back to back, so this one is the least disturbed by load changes). It also measures detection rates on the astronaut
variants of ``vision.scenes`` and the cost of ``classify`` and
``TargetTracker.update``. Needs scikit-image for the test photos.

The figures go into docs/benchmarks.md (section "Vision").
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from opensteady.vision.gestures import classify
from opensteady.vision.pipeline import Perception, VisionConfig
from opensteady.vision.scenes import Placement, astronaut_variants, compose, matches
from opensteady.vision.tracker import TargetTracker, TrackerConfig
from opensteady.vision.types import Box, Detections, Face

FPS = 30.0


def _frames(n: int) -> List[np.ndarray]:
    """A walking astronaut, 640x480: the face drifts across the frame and back."""
    frames = []
    for i in range(min(n, 60)):
        x = 0.3 + 0.4 * abs(((i / 30.0) % 2.0) - 1.0)
        frame, _ = compose([Placement("astronaut", x, 0.42, 0.16)])
        frames.append(frame)
    return [frames[i % len(frames)] for i in range(n)]


def _stats(samples_s: Sequence[float]) -> Tuple[float, float]:
    ms = sorted(s * 1000.0 for s in samples_s)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def _interleaved(ours: Callable[[np.ndarray, float], object], bare: Callable[[np.ndarray], object],
                 frames: List[np.ndarray], warmup: int = 10) -> Tuple[List[float], List[float]]:
    t_ours: List[float] = []
    t_bare: List[float] = []
    clock = time.perf_counter
    for i, frame in enumerate(frames):
        for ours_now in ((True, False) if i % 2 == 0 else (False, True)):
            start = clock()
            if ours_now:
                ours(frame, i / FPS)
            else:
                bare(frame)
            elapsed = clock() - start
            if i >= warmup:
                (t_ours if ours_now else t_bare).append(elapsed)
    return t_ours, t_bare


def _bare_mediapipe(faces: bool, hands: bool, pose: bool) -> Tuple[Callable[[np.ndarray], None], Callable[[], None]]:
    """The same MediaPipe solutions ``Perception`` uses, called directly."""
    import mediapipe as mp

    models = []
    if faces:
        models.append(mp.solutions.face_detection.FaceDetection(min_detection_confidence=0.5, model_selection=0))
    if hands:
        models.append(mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=2, model_complexity=1,
                                               min_detection_confidence=0.5, min_tracking_confidence=0.5))
    if pose:
        models.append(mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                             min_detection_confidence=0.5, min_tracking_confidence=0.5))

    def run(frame: np.ndarray) -> None:
        for m in models:
            m.process(frame)

    def close() -> None:
        for m in models:
            m.close()

    return run, close


def _bare_haar(scale: float) -> Tuple[Callable[[np.ndarray], None], Callable[[], None]]:
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    min_face = VisionConfig().haar_min_face

    def run(frame: np.ndarray) -> None:
        gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        if scale != 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        side = max(24, int(min_face * min(gray.shape[:2])))
        cascade.detectMultiScale2(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))

    return run, lambda: None


def latency_rows(n_frames: int, only: str = "") -> List[str]:
    frames = _frames(n_frames)
    setups = [
        ("face", "face", VisionConfig(faces=True, hands=False, pose=False, persons="none"),
         lambda: _bare_mediapipe(True, False, False)),
        ("hands", "face + hands", VisionConfig(faces=True, hands=True, pose=False, persons="none"),
         lambda: _bare_mediapipe(True, True, False)),
        ("pose", "face + hands + pose", VisionConfig(faces=True, hands=True, pose=True, persons="none"),
         lambda: _bare_mediapipe(True, True, True)),
        ("persons", "face + hands + persons (default: HOG every 0.25 s on a worker)", VisionConfig(),
         lambda: _bare_mediapipe(True, True, False)),
        ("haar", "Haar face (baseline)", VisionConfig(backend="haar", hands=False, persons="none"),
         lambda: _bare_haar(1.0)),
        ("haar-half", "Haar face, haar_scale 0.5",
         VisionConfig(backend="haar", hands=False, haar_scale=0.5, persons="none"),
         lambda: _bare_haar(0.5)),
    ]
    rows = ["| pipeline | OpenSteady median / p95 (ms) | bare calls median / p95 (ms) | ratio of medians "
            "| median of per-frame ratios |",
            "|---|---|---|---|---|"]
    keys = {"budget": ("hands", "persons")}.get(only, (only,))
    for key, name, config, make_bare in setups:
        if only and key not in keys:
            continue
        bare, close = make_bare()
        with Perception(config) as perception:
            t_ours, t_bare = _interleaved(perception.process, bare, frames)
        close()
        (om, op), (bm, bp) = _stats(t_ours), _stats(t_bare)
        # Paired: each frame's two calls ran back to back, under the same load.
        paired = statistics.median(o / b for o, b in zip(t_ours, t_bare))
        rows.append(f"| {name} | {om:.2f} / {op:.2f} | {bm:.2f} / {bp:.2f} | {om / bm:.3f} | {paired:.3f} |")
    return rows


def detection_rows() -> List[str]:
    variants = astronaut_variants()
    setups = [
        ("MediaPipe, face range auto", VisionConfig(hands=False, static_images=True, persons="none")),
        ("MediaPipe, short range", VisionConfig(hands=False, face_range="short", static_images=True, persons="none")),
        ("MediaPipe, full range", VisionConfig(hands=False, face_range="full", static_images=True, persons="none")),
        ("Haar cascade", VisionConfig(backend="haar", hands=False, persons="none")),
        ("Haar cascade, haar_scale 0.5", VisionConfig(backend="haar", hands=False, haar_scale=0.5, persons="none")),
    ]
    rows = ["| detector | astronaut variants found | false detections | missed |", "|---|---|---|---|"]
    for name, config in setups:
        found, false, missed = 0, 0, []
        with Perception(config) as perception:
            for i, v in enumerate(variants):
                faces = perception.process(v.frame, float(i)).faces
                hit = any(matches(f.box, v.face) for f in faces)
                found += hit
                false += sum(not matches(f.box, v.face) for f in faces)
                if not hit:
                    missed.append(v.name)
        rows.append(f"| {name} | {found}/{len(variants)} ({100.0 * found / len(variants):.0f} %) | {false} | "
                    f"{', '.join(missed) or '-'} |")
    return rows


VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"  # Debian's opencv-doc package


def person_detector_rows(video: str, every: int = 20) -> List[str]:
    """Person detectors on real footage of several small walking people (every ``every``-th frame, at 640x480)."""
    import cv2

    from opensteady.vision.people import PersonDetector
    from opensteady.vision.types import Body

    capture = cv2.VideoCapture(video)
    if not capture.isOpened():
        raise SystemExit(f"cannot read {video}: install Debian's opencv-doc (apt-get install opencv-doc) "
                         f"or pass --video with footage of walking people")
    frames = []
    for i in range(100000):
        ok, bgr = capture.read()
        if not ok:
            break
        if i % every == 0:
            frames.append(cv2.cvtColor(cv2.resize(bgr, (640, 480), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    capture.release()

    def cascade(name: str) -> Callable[[np.ndarray], Tuple[Body, ...]]:
        c = cv2.CascadeClassifier(cv2.data.haarcascades + name)  # type: ignore[attr-defined]
        return lambda f: tuple(Body(Box(0, 0, 0, 0)) for _ in c.detectMultiScale(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY),
                                                                                   1.1, 3))

    setups: List[Tuple[str, Callable[[], Tuple[Callable[[np.ndarray], tuple], Callable[[], None]]]]] = []
    for upscale in (1.0, 1.25, 1.5, 2.0):
        setups.append((f"OpenCV HOG, upscale {upscale:g}" + (" (default)" if upscale == 1.5 else ""),
                       lambda u=upscale: (PersonDetector(u).detect, lambda: None)))
    setups.append(("OpenCV Haar full body", lambda: (cascade("haarcascade_fullbody.xml"), lambda: None)))
    setups.append(("OpenCV Haar upper body", lambda: (cascade("haarcascade_upperbody.xml"), lambda: None)))

    def pose() -> Tuple[Callable[[np.ndarray], tuple], Callable[[], None]]:
        p = Perception(VisionConfig(faces=False, hands=False, pose=True, persons="none", static_images=True))
        return (lambda f: p.process(f, 0.0).bodies), p.close

    setups.insert(0, ("MediaPipe Pose", pose))
    rows = [f"{len(frames)} frames of {video} (every {every}th, 640x480):", "",
            "| detector | frames with a person | people per frame | median ms per frame |", "|---|---|---|---|"]
    for name, make in setups:
        detect, close = make()
        counts, times = [], []
        for f in frames:
            start = time.perf_counter()
            counts.append(len(detect(f)))
            times.append(time.perf_counter() - start)
        close()
        rows.append(f"| {name} | {sum(c > 0 for c in counts)}/{len(frames)} | {np.mean(counts):.2f} "
                    f"| {statistics.median(times) * 1000:.0f} |")
    return rows


def evaluate_reid(placements_per_frame: List[list], perception: Perception, tracker: TargetTracker,
                  fps: float = FPS, paced: bool = False, settle_after_lock: bool = False) -> dict:
    """Run one scripted sequence (``scenes.reid_sequences``); lock on its first person at frame 0.

    Returns ``wrong_frames`` (frames following someone else), ``switches``
    (times the followed person became someone else), ``id_changes`` (times
    the locked track id changed), and ``delays``: for each return of the
    target (fully in frame again after at least 5 frames away), the frames
    until the tracker follows that person by face under the original track
    id again (0: on the frame of return; None: never).

    ``paced``: play the frames as a live camera would, at ``fps`` by the wall
    clock, always handing over the newest one: a frame whose processing
    overruns makes the frames captured meanwhile drop, and a worker thread
    gets the real time between frames. Delays then count camera frames
    (dropped ones too), and ``delays_ms`` gives the wall time from the return
    frame's capture to the output that follows the target again.
    Without it, frames are processed back to back as fast as they go.
    ``settle_after_lock``: wait for the target's first descriptor after the
    lock-on (tests that must not depend on how fast a worker thread runs).
    """
    rendered = [compose(placements) for placements in placements_per_frame]
    truths = [{p.who: b for p, b in zip(placements, boxes)}
              for placements, (_, boxes) in zip(placements_per_frame, rendered)]
    target_who = placements_per_frame[0][0].who
    target_id: Optional[int] = None
    wrong = switches = id_changes = 0
    delays: List[Optional[int]] = []
    delays_ms: List[Optional[float]] = []
    away, back_at, following = 0, None, None
    clock = time.perf_counter
    start = clock()
    i = -1
    while i + 1 < len(rendered):
        newest = int((clock() - start) * fps) if paced else i + 1
        if newest <= i:
            time.sleep(max(0.0, start + (i + 1) / fps - clock()))
            newest = i + 1
        # the frames in between were dropped: the target's presence still counts on them
        for j in range(i + 1, min(newest, len(rendered) - 1) + 1):
            box = truths[j].get(target_who)
            inside = box is not None and box.x >= 0.0 and box.x + box.w <= 1.0
            if not inside:
                away += 1
                if back_at is not None:
                    delays.append(None)
                    delays_ms.append(None)
                    back_at = None
                continue
            if away >= 5:
                back_at = j
            away = 0
        i = min(newest, len(rendered) - 1)
        frame, _ = rendered[i]
        truth = truths[i]
        t_s = i / fps
        state = tracker.update(perception.process(frame, t_s), t_s, frame_rgb=frame)
        if i == 0:
            tracker.lock_on(point=(truth[target_who].cx, truth[target_who].cy))
            state = tracker.update(perception.process(frame, t_s + 1e-3), t_s + 1e-3, frame_rgb=frame)
            target_id = state.track_id
            if settle_after_lock:
                tracker.update(perception.process(frame, t_s + 2e-3), t_s + 2e-3, frame_rgb=frame)  # asks for it
                tracker.wait_descriptors()
        on = None
        if state.locked and state.source in ("face", "body") and state.box is not None:
            on = next((who for who, b in truth.items() if b.contains(state.box.cx, state.box.cy)), None)
        if on is not None and on != target_who:
            wrong += 1
            switches += following != on
        following = on
        if state.locked and state.track_id != target_id:
            id_changes += 1
            target_id = state.track_id
        if back_at is not None and on == target_who and state.source == "face" and not id_changes:
            delays.append(i - back_at)
            delays_ms.append(round((clock() - start - back_at / fps) * 1000.0, 1) if paced else None)
            back_at = None
    if back_at is not None:
        delays.append(None)
        delays_ms.append(None)
    return {"wrong_frames": wrong, "switches": switches, "id_changes": id_changes, "delays": delays,
            "delays_ms": delays_ms}


def reid_rows(paced: bool = True) -> List[str]:
    """Identity switches and re-acquisition delay on ``scenes.reid_sequences``, with and without face descriptors.

    Rows: descriptors in line and no descriptors, frames back to back
    (deterministic); with ``paced``, also the application's way (descriptors
    on the worker thread, the most target-like new face judged on the frame
    path while the target is lost) and the worker alone, both played live at
    30 fps beside the person detector's own worker thread.
    """
    from opensteady.vision.reid import FaceDescriber
    from opensteady.vision.scenes import reid_sequences

    describer = FaceDescriber.load()
    frame, (box,) = compose([Placement("hopper", 0.5, 0.45, 0.16)])
    cost_ms = _time_per_call_us(lambda: describer.describe(frame, box), 10) / 1000.0
    rows = [f"One face descriptor (dlib 5-point alignment + ResNet, 640x480 frame): {cost_ms:.0f} ms median of 10.", "",
            "| sequence | re-identification | frames | frames on someone else | switches | id changes "
            "| re-acquisition delay (frames) | return to following (ms) |", "|---|---|---|---|---|---|---|---|"]
    modes = [("face descriptor, in line", dict(reid="inline"), False, dict(persons="none")),
             ("position + colour only", dict(reid="off"), False, dict(persons="none"))]
    if paced:
        modes[1:1] = [("face descriptor, worker + candidate judged on its frame", dict(reid="async"), True, {}),
                      ("face descriptor, worker only", dict(reid="async", reid_sync_candidates=0), True, {})]
    for name, seq in reid_sequences(FPS).items():
        for label, tracker_kw, live, vision_kw in modes:
            tracker = TargetTracker(TrackerConfig(select="manual", **tracker_kw))
            with Perception(VisionConfig(hands=False, **vision_kw)) as perception:
                r = evaluate_reid(seq, perception, tracker, paced=live)
            tracker.close()
            how = "live 30 fps" if live else "back to back"
            delays = ", ".join("never" if d is None else str(d) for d in r["delays"]) or "-"
            ms = ", ".join("-" if d is None else f"{d:.0f}" for d in r["delays_ms"]) if live else "-"
            rows.append(f"| {name} | {label} | {how} | {r['wrong_frames']} | {r['switches']} | {r['id_changes']} "
                        f"| {delays} | {ms} |")
    return rows


def _time_per_call_us(fn: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def cpu_rows(n: int = 2000) -> List[str]:
    rng = np.random.default_rng(0)
    hand = rng.uniform(100, 300, (21, 3))
    tracker = TargetTracker(TrackerConfig(select="largest"))
    frames = [
        Detections(i / FPS, (640, 480), (Face(Box(0.3 + 0.001 * i, 0.3, 0.15, 0.2), (), 0.9),
                                          Face(Box(0.7, 0.4, 0.1, 0.13), (), 0.9)))
        for i in range(n)
    ]
    calls = iter(frames)

    def track() -> None:
        d = next(calls)
        tracker.update(d, d.t_s)

    return ["| step | median per call |", "|---|---|",
            f"| `classify` (21 landmarks) | {_time_per_call_us(lambda: classify(hand), n):.0f} µs |",
            f"| `TargetTracker.update` (2 faces) | {_time_per_call_us(track, n):.0f} µs |"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision.bench", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per latency measurement (default 200)")
    parser.add_argument("--only", default="",
                        choices=["face", "hands", "pose", "persons", "budget", "haar", "haar-half", "detection",
                                 "people", "reid"],
                        help="run one latency row (face, face+hands, face+hands+pose, face+hands+persons, Haar, "
                             "Haar at half scale; budget: face+hands and face+hands+persons), only the detection rates, only the person-detector comparison "
                             "on --video (people), or only identity switches and re-acquisition delays (reid)")
    parser.add_argument("--video", default=VTEST,
                        help="footage of walking people for --only people (default: OpenCV's vtest.avi from "
                             "Debian's opencv-doc)")
    args = parser.parse_args(argv)
    if args.frames < 20:
        parser.error("--frames must be at least 20 (the first 10 are warm-up)")
    if args.only == "people":
        print("\n".join(person_detector_rows(args.video)))
        return 0
    if args.only == "reid":
        print("Re-identification on vision.scenes.reid_sequences (30 fps sequences):\n")
        print("\n".join(reid_rows()))
        return 0
    if args.only != "detection":
        print(f"Latency per 640x480 frame, {args.frames} frames, first 10 dropped as warm-up:\n", flush=True)
        print("\n".join(latency_rows(args.frames, args.only)), flush=True)
    if args.only in ("", "detection"):
        print("\nFace detection on the 22 astronaut variants (vision.scenes.astronaut_variants):\n")
        print("\n".join(detection_rows()))
        print("\nPure-Python steps:\n")
        print("\n".join(cpu_rows()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

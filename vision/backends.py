"""Detector backends behind one small interface: MediaPipe (default) and OpenCV Haar.

A backend turns one validated RGB frame into ``Detections``. It never opens a
window, writes a file or reads a clock; models load from the installed wheels
(mediapipe 0.10.21 bundles its .tflite files, opencv-python bundles its Haar
cascades), so nothing is downloaded.

    backend = MediaPipeBackend(VisionConfig())
    detections = backend.detect(frame_rgb, t_s=0.0)
    backend.close()

Use ``vision.pipeline.Perception`` rather than a backend directly: it
validates frames and picks the backend from the config.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from typing import TYPE_CHECKING, FrozenSet, List, Optional, Tuple

import numpy as np

from opensteady.vision.gestures import HandednessSmoother, classify
from opensteady.vision.types import Body, Box, Detections, Face, Hand

if TYPE_CHECKING:  # pragma: no cover
    from opensteady.vision.pipeline import VisionConfig

try:  # Protocol is typing-only; keep Python 3.9 compatible.
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment,misc]


class Backend(Protocol):
    """What ``Perception`` needs from a detector."""

    capabilities: FrozenSet[str]  # subset of {"faces", "hands", "pose"}

    def detect(self, frame_rgb: np.ndarray, t_s: float) -> Detections: ...

    def close(self) -> None: ...


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def _suppress_overlaps(faces: Tuple[Face, ...], max_cover: float = 0.5) -> Tuple[Face, ...]:
    """Keep the best-scoring face of each group whose boxes overlap or contain one another."""
    kept: List[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):
        a = face.box
        covered = False
        for k in kept:
            b = k.box
            ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
            iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
            smaller = min(a.area, b.area)
            if smaller > 0.0 and ix * iy / smaller > max_cover:
                covered = True
                break
        if not covered:
            kept.append(face)
    return tuple(kept)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for a moment.

    MediaPipe's C++ graphs print start-up notices (the XNNPACK delegate, absl's
    pre-init warning, "feedback tensors" disabled) straight to fd 2 on their
    first inference; users can do nothing about them. Used only for the
    warm-up inference at construction, before any frame of ours is processed.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to hide
        yield
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MediaPipeBackend:
    """MediaPipe solutions (0.10.21): face detection (short/full range), hands, pose.

    Face range ``'auto'`` runs the model that suits the last seen face size
    (short range for near faces, full range once faces get small) and falls
    back to the other model on a frame where the preferred one finds nothing.
    """

    capabilities = frozenset({"faces", "hands", "pose"})

    def __init__(self, config: VisionConfig) -> None:
        import mediapipe as mp  # heavy import kept out of module import time

        self.config = config
        self._face_models: dict = {}
        self._prefer_full = config.face_range == "full"
        # The graphs are built and run once on a blank frame with fd 2 silenced:
        # their C++ start-up notices are noise to users, and the first real
        # frame then does not pay the lazy initialisation.
        with _native_stderr_silenced():
            if config.faces:
                ranges = {"short": (0,), "full": (1,), "auto": (0, 1)}[config.face_range]
                for selection in ranges:
                    self._face_models[selection] = mp.solutions.face_detection.FaceDetection(
                        min_detection_confidence=config.min_face_score, model_selection=selection
                    )
            self._hands = None
            if config.hands:
                self._hands = mp.solutions.hands.Hands(
                    static_image_mode=config.static_images,
                    max_num_hands=config.max_hands,
                    model_complexity=config.hand_model_complexity,
                    min_detection_confidence=config.min_hand_score,
                    min_tracking_confidence=config.min_hand_score,
                )
            self._pose = None
            if config.pose:
                # Only the "full" pose landmark model (complexity 1) ships in the wheel;
                # lite and heavy would be downloaded, which we never do.
                self._pose = mp.solutions.pose.Pose(
                    static_image_mode=config.static_images,
                    model_complexity=1,
                    smooth_landmarks=not config.static_images,
                    min_detection_confidence=config.min_pose_score,
                    min_tracking_confidence=config.min_pose_score,
                )
            blank = np.zeros((64, 64, 3), np.uint8)
            for model in [*self._face_models.values(), self._hands, self._pose]:
                if model is not None:
                    model.process(blank)
        self._handedness: List[Tuple[Tuple[float, float], HandednessSmoother]] = []

    # -- faces -------------------------------------------------------------
    def _run_face(self, selection: int, frame: np.ndarray) -> Tuple[Face, ...]:
        result = self._face_models[selection].process(frame)
        faces = []
        for det in result.detections or ():
            rb = det.location_data.relative_bounding_box
            kps = tuple((k.x, k.y) for k in det.location_data.relative_keypoints)
            faces.append(Face(Box(rb.xmin, rb.ymin, rb.width, rb.height), kps, float(det.score[0])))
        return tuple(faces)

    def _faces(self, frame: np.ndarray) -> Tuple[Face, ...]:
        if len(self._face_models) == 1:
            return self._run_face(next(iter(self._face_models)), frame)
        first = 1 if self._prefer_full else 0
        faces = self._run_face(first, frame)
        short_missed = first == 0 and not faces
        unsure = first == 0 and max((f.score for f in faces), default=0.0) < self.config.auto_confirm_score
        if not faces or unsure:
            # Nothing found, or short range unsure: ask the other model too.
            # Short range tends to report a small face as a large, low-score
            # box; full range finds it at its true size. The reverse never
            # helps (short range cannot see the small faces full range is
            # used for), so a face from full range is kept at any score.
            faces = _suppress_overlaps(faces + self._run_face(1 - first, frame))
        if faces:
            # Hysteresis between the two switch widths so the choice does not flicker.
            width = max(f.box.w for f in faces)
            if width < self.config.full_range_below or (short_missed and width <= self.config.short_range_above):
                # too small for short range, or short range just missed it
                self._prefer_full = True
            elif width > self.config.short_range_above:
                self._prefer_full = False
        return faces

    # -- hands -------------------------------------------------------------
    def _hands_of(self, frame: np.ndarray) -> Tuple[Hand, ...]:
        assert self._hands is not None
        result = self._hands.process(frame)
        if not result.multi_hand_landmarks:
            self._handedness = []
            return ()
        h, w = frame.shape[:2]
        hands = []
        previous, self._handedness = self._handedness, []
        for lms, cls in zip(result.multi_hand_landmarks, result.multi_handedness):
            pts = tuple((p.x, p.y, p.z) for p in lms.landmark)
            label = cls.classification[0].label.lower()
            score = float(cls.classification[0].score)
            # MediaPipe labels hands as seen in a mirrored (selfie) image.
            if not self.config.mirrored:
                label = "left" if label == "right" else "right"
            smoother = self._smoother_near(previous, pts[0][:2])
            handedness = smoother.update(label, score)
            self._handedness.append((pts[0][:2], smoother))
            pixels = [(x * w, y * h, z * w) for x, y, z in pts]  # undo the frame's aspect ratio
            try:
                gesture = classify(pixels)
            except ValueError:  # a degenerate (zero-size) hand: nothing to classify
                gesture = "unknown"
            hands.append(Hand(pts, handedness, gesture, score))
        return tuple(hands)

    @staticmethod
    def _smoother_near(previous: list, wrist: Tuple[float, float]) -> HandednessSmoother:
        best, best_d = None, 0.15  # a wrist moves less than this between frames
        for i, (w, _) in enumerate(previous):
            d = math.hypot(w[0] - wrist[0], w[1] - wrist[1])
            if d < best_d:
                best, best_d = i, d
        if best is None:
            return HandednessSmoother()
        return previous.pop(best)[1]

    # -- pose --------------------------------------------------------------
    def _bodies(self, frame: np.ndarray) -> Tuple[Body, ...]:
        assert self._pose is not None
        result = self._pose.process(frame)
        if result.pose_landmarks is None:
            return ()
        lms = result.pose_landmarks.landmark
        kps = tuple((p.x, p.y) for p in lms)
        vis = tuple(float(p.visibility) for p in lms)
        seen = [(x, y) for (x, y), v in zip(kps, vis) if v >= 0.5] or list(kps)
        xs = [_clip01(p[0]) for p in seen]
        ys = [_clip01(p[1]) for p in seen]
        box = Box(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        score = float(np.mean(vis[:25]))  # the solution gives no detection score: upper-body visibility
        return (Body(box, kps, score, vis),)

    def detect(self, frame_rgb: np.ndarray, t_s: float) -> Detections:
        h, w = frame_rgb.shape[:2]
        return Detections(
            t_s=t_s,
            frame_size=(w, h),
            faces=self._faces(frame_rgb) if self._face_models else (),
            hands=self._hands_of(frame_rgb) if self._hands is not None else (),
            bodies=self._bodies(frame_rgb) if self._pose is not None else (),
        )

    def close(self) -> None:
        for model in [*self._face_models.values(), self._hands, self._pose]:
            if model is not None:
                model.close()
        self._face_models, self._hands, self._pose = {}, None, None


class HaarBackend:
    """OpenCV's frontal-face Haar cascade: the fallback and the benchmark baseline.

    Faces only, no keypoints. ``haar_scale`` < 1 shrinks the frame first
    (0.5 is about 4x faster and misses faces under about 50 pixels). ``score`` maps the cascade's neighbour count n to
    n / (n + min_neighbors): it ranks detections but is not a probability.
    """

    capabilities = frozenset({"faces"})

    def __init__(self, config: VisionConfig) -> None:
        import cv2

        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade: Optional[cv2.CascadeClassifier] = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"could not load OpenCV's Haar cascade from {path}")
        self._cv2 = cv2
        self.config = config
        self.min_neighbors = 5

    def detect(self, frame_rgb: np.ndarray, t_s: float) -> Detections:
        cv2 = self._cv2
        gray = cv2.equalizeHist(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY))
        scale = self.config.haar_scale
        if scale != 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gh, gw = gray.shape
        min_side = max(24, int(self.config.haar_min_face * min(gw, gh)))  # 24: the cascade's window
        if self._cascade is None:
            raise RuntimeError("HaarBackend.detect() called after close()")
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        faces = []
        for (x, y, fw, fh), n in zip(rects, neighbours):
            score = float(n) / (float(n) + self.min_neighbors)
            if score >= self.config.min_face_score:
                faces.append(Face(Box(x / gw, y / gh, fw / gw, fh / gh), (), score))
        faces.sort(key=lambda f: -f.score)
        return Detections(t_s=t_s, frame_size=(frame_rgb.shape[1], frame_rgb.shape[0]), faces=tuple(faces))

    def close(self) -> None:
        self._cascade = None


def make_backend(config: VisionConfig) -> Backend:
    if config.backend == "mediapipe":
        return MediaPipeBackend(config)
    if config.backend == "haar":
        return HaarBackend(config)
    raise ValueError(f"backend={config.backend!r} is not one of 'mediapipe', 'haar'")

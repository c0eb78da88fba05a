"""The perception stage: an RGB frame and its timestamp in, ``Detections`` out.

    from opensteady.vision.pipeline import Perception, VisionConfig

    with Perception(VisionConfig(hands=True, pose=True)) as perception:
        detections = perception.process(frame_rgb, t_s=frame_time_s)
        for face in detections.faces:
            print(face.box.cx, face.box.cy, face.score)

``process`` is pure perception: no windows, no files, no clock. The caller
passes the frame's capture time; it is copied into the result untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import numpy as np

from opensteady.vision.appearance import body_signature, face_signature
from opensteady.vision.backends import Backend, make_backend
from opensteady.vision.people import PersonDetector, _covered
from opensteady.vision.types import Body, Detections
from opensteady.vision.workers import LatestWorker

_BACKENDS = ("mediapipe", "haar")
_FACE_RANGES = ("auto", "short", "full")
_PERSONS = ("hog", "none")


@dataclass(frozen=True)
class VisionConfig:
    """All perception settings, validated on construction.

    ``mirrored``: set True when the frames are mirrored (selfie view); it only
    affects which hand is called left or right. ``static_images``: treat every
    frame as unrelated (no tracking between frames in the hand and pose models).
    Face range ``'auto'`` switches to the full-range model once the largest
    face is narrower than ``full_range_below`` (frame widths), or as soon as
    short range misses a face that full range then finds, and back to short
    range above ``short_range_above``. On frames where the preferred model
    finds nothing, or short range finds nothing scoring at least
    ``auto_confirm_score``, it runs the other model too and keeps the better
    of overlapping boxes.
    ``face_signatures``: attach an appearance signature to each face (about
    0.05 ms per face), which the tracker uses to re-identify people.
    ``persons``: the whole-person detector, ``'hog'`` (OpenCV's pedestrian
    detector, ``vision.people``) or ``'none'``. It runs at most every
    ``person_interval_s`` of frame time, on a worker thread when
    ``person_async`` (the bodies of a frame then arrive with a later frame,
    once), in line otherwise (deterministic; tests and the simulator). With
    ``static_images`` every frame is its own photo: persons are detected in
    line on each.
    ``person_upscale`` > 1 finds smaller, farther figures at its square in
    cost. The person detector sets OpenCV to one thread (process-wide), so
    it keeps to one core and leaves the other to MediaPipe. Bodies get a clothing signature when ``face_signatures`` is on.
    """

    faces: bool = True
    hands: bool = True
    pose: bool = False
    backend: str = "mediapipe"
    face_range: str = "auto"
    min_face_score: float = 0.5
    min_hand_score: float = 0.5
    min_pose_score: float = 0.5
    max_hands: int = 2
    hand_model_complexity: int = 1
    full_range_below: float = 0.10
    short_range_above: float = 0.14
    auto_confirm_score: float = 0.75
    haar_min_face: float = 0.05
    haar_scale: float = 1.0
    mirrored: bool = False
    static_images: bool = False
    face_signatures: bool = True
    persons: str = "hog"
    person_interval_s: float = 0.25
    person_async: bool = True
    person_upscale: float = 1.5
    min_person_score: float = 0.5

    def __post_init__(self) -> None:
        def bad(key: str, reason: str) -> ValueError:
            return ValueError(f"VisionConfig.{key}={getattr(self, key)!r}: {reason}")

        if self.backend not in _BACKENDS:
            raise bad("backend", f"must be one of {_BACKENDS}")
        if self.face_range not in _FACE_RANGES:
            raise bad("face_range", f"must be one of {_FACE_RANGES}")
        for key in ("min_face_score", "min_hand_score", "min_pose_score", "auto_confirm_score"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise bad(key, "must be a number in [0, 1]")
        if not (isinstance(self.max_hands, int) and 1 <= self.max_hands <= 4):
            raise bad("max_hands", "must be an integer from 1 to 4")
        if self.hand_model_complexity not in (0, 1):
            raise bad("hand_model_complexity", "must be 0 (lite) or 1 (full); both ship in the wheel")
        if not 0.0 < self.full_range_below <= self.short_range_above < 1.0:
            raise bad("full_range_below", f"need 0 < full_range_below <= short_range_above ({self.short_range_above}) < 1")
        if not 0.0 < self.haar_min_face < 1.0:
            raise bad("haar_min_face", "must be a fraction of the frame in (0, 1)")
        if not 0.1 <= self.haar_scale <= 1.0:
            raise bad("haar_scale", "must be in [0.1, 1] (the frame is shrunk by it before Haar detection)")
        if self.persons not in _PERSONS:
            raise bad("persons", f"must be one of {_PERSONS}")
        if not (isinstance(self.person_interval_s, (int, float)) and self.person_interval_s >= 0.0):
            raise bad("person_interval_s", "must be >= 0 seconds (0: every frame)")
        if not 0.5 <= self.person_upscale <= 3.0:
            raise bad("person_upscale", "must be in [0.5, 3] (the frame is resized by it before person detection)")
        if not self.min_person_score >= 0.0:
            raise bad("min_person_score", "must be >= 0 (an SVM margin, 0.5 is a good default)")
        if not (self.faces or self.hands or self.pose or self.persons != "none"):
            raise bad("faces", "at least one of faces, hands, pose, persons must be enabled")
        if self.backend == "haar":
            for key in ("hands", "pose"):
                if getattr(self, key):
                    raise bad(key, "the 'haar' backend detects faces only; set it to False")


def check_frame(frame_rgb: object) -> np.ndarray:
    """Return the frame as a C-contiguous HxWx3 uint8 array or raise naming the problem."""
    if not isinstance(frame_rgb, np.ndarray):
        raise TypeError(f"frame_rgb must be a numpy array, got {type(frame_rgb).__name__}")
    if frame_rgb.dtype != np.uint8:
        raise ValueError(f"frame_rgb must have dtype uint8, got {frame_rgb.dtype}")
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(f"frame_rgb must have shape (height, width, 3) for RGB, got {frame_rgb.shape}")
    if frame_rgb.shape[0] < 16 or frame_rgb.shape[1] < 16:
        raise ValueError(f"frame_rgb is too small: {frame_rgb.shape[1]}x{frame_rgb.shape[0]} pixels")
    return np.ascontiguousarray(frame_rgb)


class Perception:
    """Runs the configured backend on each frame. Use as a context manager or call ``close()``."""

    def __init__(self, config: Optional[VisionConfig] = None) -> None:
        self.config = config if config is not None else VisionConfig()
        self._backend: Optional[Backend] = make_backend(self.config) if self._needs_backend() else None
        self._persons: Optional[PersonDetector] = None
        self._person_worker: Optional[LatestWorker] = None
        self._person_run_s: Optional[float] = None  # frame time of the last person detection started
        self._closed = False
        if self.config.persons == "hog":
            self._persons = PersonDetector(self.config.person_upscale, self.config.min_person_score)
            if self.config.person_async and not self.config.static_images:
                self._person_worker = LatestWorker(self._detect_persons, name="persons")

    def _needs_backend(self) -> bool:
        c = self.config
        return c.faces or c.hands or c.pose

    @property
    def capabilities(self) -> frozenset:
        caps = set(self._backend.capabilities) if self._backend is not None else set()
        if self._persons is not None:
            caps.add("persons")
        return frozenset(caps)

    def process(self, frame_rgb: np.ndarray, t_s: float) -> Detections:
        if self._closed:
            raise RuntimeError("Perception.process() called after close()")
        if not isinstance(t_s, (int, float)) or not math.isfinite(t_s):
            raise ValueError(f"t_s must be a finite number of seconds, got {t_s!r}")
        frame = check_frame(frame_rgb)
        if self._backend is not None:
            detections = self._backend.detect(frame, float(t_s))
        else:
            detections = Detections.empty(float(t_s), (frame.shape[1], frame.shape[0]))
        if self.config.face_signatures and detections.faces:
            faces = tuple(replace(f, signature=face_signature(frame, f.box)) for f in detections.faces)
            detections = replace(detections, faces=faces)
        if self._persons is not None:
            people = self._people(frame, float(t_s))
            # A pose and a detector window around the same person: keep the pose (it has landmarks).
            people = tuple(p for p in people if all(_covered(p.box, b.box) < 0.5 for b in detections.bodies))
            if people:
                detections = replace(detections, bodies=detections.bodies + people)
        return detections

    def _detect_persons(self, frame: np.ndarray) -> Tuple[Body, ...]:
        assert self._persons is not None
        bodies = self._persons.detect(frame)
        if self.config.face_signatures:
            bodies = tuple(replace(b, signature=body_signature(frame, b.box)) for b in bodies)
        return bodies

    def _people(self, frame: np.ndarray, t_s: float) -> Tuple[Body, ...]:
        """Person detections for this frame: due ones in line, or the worker's newest finished result."""
        due = (self._person_run_s is None or self.config.static_images
               or t_s - self._person_run_s >= self.config.person_interval_s)
        if self._person_worker is None:
            if not due:
                return ()
            self._person_run_s = t_s
            return self._detect_persons(frame)
        if due and self._person_worker.submit(frame.copy()):  # the caller may reuse its buffer
            self._person_run_s = t_s
        return self._person_worker.take() or ()

    def wait_persons(self, timeout_s: float = 5.0) -> bool:
        """Block until the person worker is idle (benchmarks and replays that want every result)."""
        return self._person_worker.wait_idle(timeout_s) if self._person_worker is not None else True

    def close(self) -> None:
        self._closed = True
        if self._person_worker is not None:
            self._person_worker.close()
            self._person_worker = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Perception:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

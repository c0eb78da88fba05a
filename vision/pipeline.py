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
from typing import Optional

import numpy as np

from opensteady.vision.appearance import face_signature
from opensteady.vision.backends import Backend, make_backend
from opensteady.vision.types import Detections

_BACKENDS = ("mediapipe", "haar")
_FACE_RANGES = ("auto", "short", "full")


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
        if not (self.faces or self.hands or self.pose):
            raise bad("faces", "at least one of faces, hands, pose must be enabled")
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
        self._backend: Optional[Backend] = make_backend(self.config)

    @property
    def capabilities(self) -> frozenset:
        return self._backend.capabilities if self._backend is not None else frozenset()

    def process(self, frame_rgb: np.ndarray, t_s: float) -> Detections:
        if self._backend is None:
            raise RuntimeError("Perception.process() called after close()")
        if not isinstance(t_s, (int, float)) or not math.isfinite(t_s):
            raise ValueError(f"t_s must be a finite number of seconds, got {t_s!r}")
        frame = check_frame(frame_rgb)
        detections = self._backend.detect(frame, float(t_s))
        if self.config.face_signatures and detections.faces:
            faces = tuple(replace(f, signature=face_signature(frame, f.box)) for f in detections.faces)
            detections = replace(detections, faces=faces)
        return detections

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Perception:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

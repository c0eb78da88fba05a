"""OpenSteady perception: frames in, typed detections out (faces, hands, bodies, gestures).

    from opensteady.vision import Perception, VisionConfig, TargetTracker, TrackerConfig

    with Perception(VisionConfig()) as perception:
        tracker = TargetTracker(TrackerConfig(select="largest"))
        state = tracker.update(perception.process(frame_rgb, t_s), t_s)

Modules: ``types`` (results), ``pipeline`` (Perception, VisionConfig),
``backends`` (MediaPipe, Haar), ``gestures`` (classify, GestureDebouncer),
``appearance`` (face and clothing signatures), ``people`` (whole-person
detector), ``reid`` (face descriptors), ``workers`` (a detector on a thread),
``tracker`` (TargetTracker), ``scenes`` (test frames from real photos),
``bench`` (``python -m vision.bench``).
See docs/vision.md.
"""

from opensteady.vision.gestures import GESTURES, GestureDebouncer, HandednessSmoother, classify
from opensteady.vision.pipeline import Perception, VisionConfig
from opensteady.vision.tracker import TargetState, TargetTracker, TrackerConfig, TrackView
from opensteady.vision.types import Body, Box, Detections, Face, Hand

__all__ = [
    "GESTURES", "GestureDebouncer", "HandednessSmoother", "classify", "Perception", "VisionConfig",
    "TargetState", "TargetTracker", "TrackerConfig", "TrackView", "Body", "Box", "Detections", "Face", "Hand",
]

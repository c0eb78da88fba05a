"""The tracked picture as a camera: one hub, many outputs, none of which can stall tracking.

The tracking loop calls :meth:`FrameHub.publish` once per processed frame. That
only drops the frame into a one-frame slot (the newest frame wins) and returns:
each output runs its own pump, which waits for a frame newer than the one it
last took. A slow consumer therefore skips frames (counted in ``dropped``)
instead of holding the loop up.

Outputs:

- :class:`MjpegStream`: MJPEG over HTTP (``multipart/x-mixed-replace``), served
  by host.web at ``/stream.mjpg``. Opens in a browser, OBS (media source) and
  ffmpeg. JPEG encoding happens once per frame, on the first client's pump.
- :class:`VirtualCamera`: a virtual webcam through pyvirtualcam (v4l2loopback
  on Linux, the OBS Virtual Camera on Windows and macOS), listed by Meet, Zoom
  and Teams like any camera.

Both have the :class:`CameraOutput` shape (a name, a view, ``stats``,
``close()``); an output that pushes frames runs a :class:`FramePump` (the
thread that waits for newer frames) and gives it its ``deliver(frame)``.

Each output picks its ``view``: ``"clean"`` (the camera picture) or ``"hud"``
(with boxes, calibration point and status lines). The HUD picture is drawn
only when some output asks for it.

    hub = FrameHub()
    cam = VirtualCamera(hub, 640, 480, 30, view="clean").start()
    hub.publish(rgb, t_s, index, captured_at=frame.grabbed_at, hud=lambda: draw(rgb))
    ...
    hub.close(); cam.close()
"""

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

VIEWS = ("clean", "hud")


@dataclass
class PublishedFrame:
    seq: int  # 1, 2, 3, ... in publishing order (the hub's own count)
    index: int  # the source's frame number
    t_s: float  # capture time in the source's clock
    captured_at: float  # time.perf_counter() when the frame was grabbed (for stream latency)
    clean: object  # H x W x 3 RGB (numpy uint8)
    hud: object = None  # H x W x 3 RGB with the HUD, when some output wants it
    _jpeg: dict = field(default_factory=dict)  # view -> JPEG bytes, encoded once
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rgb(self, view):
        return self.hud if view == "hud" and self.hud is not None else self.clean

    def jpeg(self, view, quality=80):
        """The picture as JPEG, encoded on first use and shared by every client."""
        with self._lock:
            data = self._jpeg.get(view)
            if data is None:
                import cv2

                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(self.rgb(view), cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
                if not ok:
                    raise RuntimeError("JPEG encoding failed")
                data = self._jpeg[view] = buf.tobytes()
            return data


class FrameHub:
    """A one-frame slot with a sequence number; ``wait_newer`` is each output's pump."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame = None
        self._seq = 0
        self._closed = False
        self._hud_wanted = 0

    def want_hud(self, wanted=True):
        with self._cond:
            self._hud_wanted += 1 if wanted else -1

    @property
    def hud_wanted(self):
        return self._hud_wanted > 0

    @property
    def closed(self):
        return self._closed

    def publish(self, rgb, t_s, index, captured_at=None, hud=None):
        """Offer a frame to every output; never blocks. ``hud``: a callable returning the HUD picture (RGB)."""
        hud_rgb = hud() if hud is not None and self._hud_wanted > 0 else None
        with self._cond:
            self._seq += 1
            self._frame = PublishedFrame(self._seq, int(index), float(t_s),
                                         time.perf_counter() if captured_at is None else captured_at,
                                         rgb, hud_rgb)
            self._cond.notify_all()
        return self._seq

    def latest(self):
        with self._cond:
            return self._frame

    def wait_newer(self, seq, timeout_s=1.0):
        """The newest frame with a sequence number above ``seq``, or None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._frame is not None and self._frame.seq > seq),
                                timeout_s)
            if self._frame is not None and self._frame.seq > seq:
                return self._frame
            return None

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class OutputStats:
    """What one output delivered: frames sent, frames skipped, capture-to-sent latency."""

    def __init__(self):
        self.sent = 0
        self.dropped = 0
        self.last_seq = 0
        self.last_index = None
        self.latency_ms = []  # capture -> sent, the last 1000
        self._cond = threading.Condition()

    def record(self, frame, previous_seq):
        with self._cond:
            self.sent += 1
            if previous_seq:
                self.dropped += max(0, frame.seq - previous_seq - 1)
            self.last_seq = frame.seq
            self.last_index = frame.index
            self.latency_ms.append((time.perf_counter() - frame.captured_at) * 1e3)
            del self.latency_ms[:-1000]
            self._cond.notify_all()

    def wait_sent(self, seq, timeout_s=5.0):
        """Block until a frame with sequence number ``seq`` or later was sent (tests, benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.last_seq >= seq, timeout_s)

    def as_dict(self):
        import numpy as np

        lat = self.latency_ms
        return {"sent": self.sent, "dropped": self.dropped,
                "latency_ms_p50": float(np.percentile(lat, 50)) if lat else None}


def check_view(view):
    """``view`` if it is one of VIEWS; else ValueError naming the choices (every output checks with this)."""
    if view not in VIEWS:
        raise ValueError("view %r: choose one of %s" % (view, ", ".join(VIEWS)))
    return view


class CameraOutput(Protocol):
    """What every way out for the picture offers (MjpegStream, VirtualCamera): its view and its counts."""

    name: str
    view: str  # one of VIEWS
    stats: OutputStats

    def close(self) -> None: ...


class FramePump:
    """A latest-frame pump on its own thread: hands each newer frame of ``hub`` to ``deliver(frame)``.

    For outputs that push frames out (VirtualCamera): a slow ``deliver`` skips
    frames (``stats.dropped``), it never holds the tracker up, and one that
    raises stops only this output.
    """

    def __init__(self, hub, view, deliver, name="output"):
        self.hub = hub
        self.view = check_view(view)
        self.deliver = deliver
        self.name = name
        self.stats = OutputStats()
        self._thread = None
        self._stop = threading.Event()
        if view == "hud":
            hub.want_hud()

    def start(self):
        self._thread = threading.Thread(target=self._pump, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _pump(self):
        seq = 0
        while not self._stop.is_set():
            frame = self.hub.wait_newer(seq, timeout_s=0.5)
            if frame is None:
                if self.hub.closed:
                    break
                continue
            try:
                self.deliver(frame)
            except Exception:  # an output must never take the tracker down
                log.exception("%s failed; it stops, tracking goes on", self.name)
                break
            self.stats.record(frame, seq)
            seq = frame.seq

    def close(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self.view == "hud":
            self.hub.want_hud(False)


class MjpegStream:
    """MJPEG over HTTP: each client has its own latest-frame pump (see host.web for the route).

    Not a thread of its own: every HTTP client is an async task that waits for a
    newer frame, writes it, and repeats, so a slow client skips frames and the
    others (and the tracker) never wait for it.
    """

    name = "mjpeg"
    BOUNDARY = "opensteadyframe"

    def __init__(self, hub, view="clean", quality=80):
        self.hub = hub
        self.view = check_view(view)
        self.quality = quality
        self.stats = OutputStats()
        self.clients = 0
        self._clients_cond = threading.Condition()

    def client_joined(self, delta):
        """A client came (+1) or went (-1); the HUD is drawn only while a HUD view has clients."""
        if self.view == "hud":
            self.hub.want_hud(delta > 0)
        with self._clients_cond:
            self.clients += delta
            self._clients_cond.notify_all()

    def wait_clients(self, n, timeout_s=10.0):
        with self._clients_cond:
            return self._clients_cond.wait_for(lambda: self.clients >= n, timeout_s)

    def part(self, frame):
        """One multipart chunk: boundary, headers (with the frame's index and capture time), JPEG."""
        data = frame.jpeg(self.view, self.quality)
        head = ("--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Frame-Index: %d\r\n"
                "X-Timestamp: %.6f\r\n\r\n" % (self.BOUNDARY, len(data), frame.index, frame.t_s))
        return head.encode("ascii") + data + b"\r\n"


def _virtual_camera_help():
    if sys.platform.startswith("linux"):
        return ("install v4l2loopback and load it: `sudo apt install v4l2loopback-dkms && "
                "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=OpenSteady`")
    if sys.platform == "darwin":
        return "install OBS Studio (28 or newer), start its Virtual Camera once, then stop it and retry"
    if sys.platform.startswith("win"):
        return "install OBS Studio (26 or newer), which brings the OBS Virtual Camera, then retry"
    return "pyvirtualcam has no backend on %s" % sys.platform


class VirtualCameraError(RuntimeError):
    """No virtual camera backend could be opened; ``str()`` says how to install one."""


class VirtualCamera:
    """A virtual webcam through pyvirtualcam, fed by a FramePump; ``backend=None`` picks the platform's default."""

    name = "virtual-camera"

    def __init__(self, hub, width, height, fps, view="clean", backend=None, device=None):
        check_view(view)  # before any device is opened
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise VirtualCameraError("the virtual camera needs pyvirtualcam: pip install 'opensteady[apps]'") from exc
        try:
            self.cam = pyvirtualcam.Camera(int(width), int(height), float(fps), backend=backend, device=device)
        except KeyError as exc:
            raise VirtualCameraError("no virtual camera backend named %s; %s" % (exc, _virtual_camera_help())) from exc
        except RuntimeError as exc:
            raise VirtualCameraError("no virtual camera available (%s); %s" % (exc, _virtual_camera_help())) from exc
        self.view = view
        self.width, self.height = int(width), int(height)
        self.device = self.cam.device
        self._pump = FramePump(hub, view, self.deliver, self.name)
        self.stats = self._pump.stats

    def start(self):
        self._pump.start()
        return self

    def deliver(self, frame):
        rgb = frame.rgb(self.view)
        if rgb.shape[1] != self.width or rgb.shape[0] != self.height:
            import cv2

            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        import numpy as np

        self.cam.send(np.ascontiguousarray(rgb))

    def close(self):
        self._pump.close()
        self.cam.close()

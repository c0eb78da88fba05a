"""Camera outputs, read back by real clients: ffmpeg, OpenCV, PyAV, and pyvirtualcam's own Camera path.

Frames carry their number in the picture (tests/numbered_frames.py). The
publisher runs in lockstep with the server's send counter (no sleeps), so
every client must see every frame, in order, at the source's rate; the
slow-consumer tests show a blocked output skips frames and never blocks publish().
"""

import subprocess
import threading

import numpy as np
import pytest

from opensteady.host.control import Controls
from opensteady.host.outputs import FrameHub, VirtualCamera, VirtualCameraError
from opensteady.host.web import WebServer
from tests.numbered_frames import numbered_frame, read_index

W, H, FPS, N = 320, 240, 30.0, 40


@pytest.fixture
def served():
    hub = FrameHub()
    server = WebServer(Controls(), hub, port=0).start()
    yield hub, server
    server.close()


def _publish_lockstep(hub, stream, n=N, clients=1):
    """Publish frames 0..n-1, each after the previous one has gone out; then end the stream."""
    assert stream.wait_clients(clients, 60.0), "the client never connected"
    for i in range(n):
        seq = hub.publish(numbered_frame(i, W, H), i / FPS, i)
        assert stream.stats.wait_sent(seq, 30.0), "frame %d was never sent" % i
    hub.close()


def _check(indices, shapes, n=N):
    assert shapes and all(s == (H, W, 3) for s in shapes), set(shapes)
    assert indices == list(range(n)), indices  # every frame, strictly increasing
    rate = (len(indices) - 1) / ((indices[-1] - indices[0]) / FPS)
    assert rate == pytest.approx(FPS)


def _run_client(read, url):
    result = {}

    def target():
        try:
            result["frames"] = read(url)
        except Exception as exc:  # reported by the test below
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def _read_ffmpeg(url):
    import imageio_ffmpeg

    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "mpjpeg", "-i", url,
                           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    raw = np.frombuffer(proc.stdout, np.uint8)
    assert raw.size % (W * H * 3) == 0, "ffmpeg delivered a partial frame"
    return list(raw.reshape(-1, H, W, 3))


def _read_opencv(url):
    import cv2

    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    assert cap.isOpened(), "OpenCV could not open %s" % url
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def _read_pyav(url):
    import av

    with av.open(url, format="mpjpeg") as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.parametrize("read", [_read_ffmpeg, _read_opencv, _read_pyav], ids=["ffmpeg", "opencv", "pyav"])
def test_mjpeg_stream_read_by_real_clients(served, read):
    hub, server = served
    thread, result = _run_client(read, server.url + "stream.mjpg")
    _publish_lockstep(hub, server.streams["clean"])
    thread.join(120)
    assert "error" not in result, result.get("error")
    frames = result["frames"]
    _check([read_index(f) for f in frames], [f.shape for f in frames])


def test_hud_view_is_drawn_only_while_watched(served):
    hub, server = served
    drawn = []

    def hud():
        drawn.append(1)
        return np.zeros((H, W, 3), np.uint8)

    hub.publish(numbered_frame(0, W, H), 0.0, 0, hud=hud)
    assert not drawn and not hub.hud_wanted
    thread, result = _run_client(_read_opencv, server.url + "stream.mjpg?view=hud")
    stream = server.streams["hud"]
    assert stream.wait_clients(1, 60.0)
    seq = hub.publish(numbered_frame(1, W, H), 1 / FPS, 1, hud=hud)
    assert stream.stats.wait_sent(seq, 30.0)
    hub.close()
    thread.join(60)
    assert drawn == [1]
    assert result["frames"][-1].max() < 40  # the client saw the (black) HUD picture, not the clean one


# --- pyvirtualcam ---------------------------------------------------------------------


class RecordingBackend:
    """A pyvirtualcam backend (registered under a test name) that keeps what Camera.send() hands it."""

    received = []
    gate = None  # a threading.Event: when set to a cleared event, send() blocks until it is set
    entered = threading.Event()  # set when send() has a frame

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        if device not in (None, "recording-test-device"):  # as pyvirtualcam's Backend contract asks
            raise RuntimeError("no device %s here" % device)
        self.width, self.height = width, height

    def send(self, frame):
        RecordingBackend.received.append(frame.reshape(self.height, self.width, 3).copy())
        RecordingBackend.entered.set()
        if RecordingBackend.gate is not None:
            RecordingBackend.gate.wait(30.0)

    def close(self):
        pass

    def device(self):
        return "recording-test-device"

    def native_fourcc(self):
        return None


@pytest.fixture
def recording_backend():
    import pyvirtualcam

    RecordingBackend.received = []
    RecordingBackend.gate = None
    RecordingBackend.entered = threading.Event()
    pyvirtualcam.register_backend("opensteady-test", RecordingBackend)
    yield RecordingBackend
    RecordingBackend.gate = None


def test_virtual_camera_through_pyvirtualcam(recording_backend):
    hub = FrameHub()
    cam = VirtualCamera(hub, W, H, FPS, backend="opensteady-test").start()
    assert cam.device == "recording-test-device"
    for i in range(N):
        seq = hub.publish(numbered_frame(i, W, H), i / FPS, i)
        assert cam.stats.wait_sent(seq, 30.0)
    hub.close()
    cam.close()
    frames = recording_backend.received
    _check([read_index(f) for f in frames], [f.shape for f in frames])


def test_virtual_camera_scales_other_sizes(recording_backend):
    hub = FrameHub()
    cam = VirtualCamera(hub, W // 2, H // 2, FPS, backend="opensteady-test").start()
    seq = hub.publish(numbered_frame(1234, W, H), 0.0, 1234)
    assert cam.stats.wait_sent(seq, 30.0)
    cam.close()
    assert recording_backend.received[0].shape == (H // 2, W // 2, 3)
    assert read_index(recording_backend.received[0]) == 1234


def test_slow_consumer_drops_frames_and_never_stalls_publish(recording_backend):
    hub = FrameHub()
    recording_backend.gate = gate = threading.Event()
    cam = VirtualCamera(hub, W, H, FPS, backend="opensteady-test").start()
    hub.publish(numbered_frame(0, W, H), 0.0, 0)
    assert recording_backend.entered.wait(30.0)
    # The consumer is now stuck inside send(frame 0); the tracker keeps publishing regardless.
    for i in range(1, 100):
        hub.publish(numbered_frame(i, W, H), i / FPS, i)
    gate.set()
    assert cam.stats.wait_sent(100, 30.0)
    cam.close()
    assert [read_index(f) for f in recording_backend.received] == [0, 99]  # the newest frame, nothing queued
    assert cam.stats.dropped == 98


def test_no_virtual_camera_backend_says_how_to_install_one():
    hub = FrameHub()
    with pytest.raises(VirtualCameraError) as err:
        VirtualCamera(hub, W, H, FPS, backend="v4l2loopback", device="/dev/video-does-not-exist")
    message = str(err.value)
    assert "v4l2loopback" in message and ("modprobe" in message or "OBS" in message)


def test_every_output_refuses_an_unknown_view_before_opening_anything():
    from opensteady.host.outputs import FramePump, MjpegStream

    with pytest.raises(ValueError, match="view 'fancy': choose one of clean, hud"):
        MjpegStream(FrameHub(), view="fancy")
    with pytest.raises(ValueError, match="view 'fancy': choose one of clean, hud"):
        # checked before pyvirtualcam is asked for a device (there is none here)
        VirtualCamera(FrameHub(), W, H, FPS, view="fancy", backend="v4l2loopback")
    with pytest.raises(ValueError, match="view 'fancy'"):
        FramePump(FrameHub(), "fancy", deliver=lambda frame: None)

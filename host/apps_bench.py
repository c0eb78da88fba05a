"""Benchmarks for the apps side (docs/benchmarks.md, "Working with other apps"): ``opensteady bench apps``.

- **Stream latency**: frames captured -> frame served. A 640x480 picture is
  published at 30 fps (the way the tracking loop does); a real HTTP client
  reads ``/stream.mjpg`` on loopback. Reported: capture -> last byte written
  by the server, and capture -> whole JPEG received by the client (clean and
  HUD views), and the virtual-camera path up to ``Camera.send()``.
- **Start-up**: ``opensteady track --video ... --port PTY`` launched as a new
  process, until the first SETPOINT frame arrives on the pty (a device there
  answers the version handshake); and, in separate fresh processes, the part
  that is Python imports and MediaPipe start-up (building and warming the graphs).

    opensteady bench apps                 # both
    opensteady bench apps --frames 300    # a longer stream run
"""

import argparse
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

CODE_MEDIAPIPE = """
import time
t0 = time.perf_counter()
from opensteady.host.pipeline import PipelineConfig, TrackingPipeline
t1 = time.perf_counter()
pipe = TrackingPipeline(PipelineConfig())
t2 = time.perf_counter()
print("%.4f %.4f" % (t1 - t0, t2 - t1))
"""


def _p(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def _mjpeg_reader(port, path, n_frames, received):
    """A raw HTTP client: records (frame index, perf_counter when the whole JPEG is in)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
    buf = b""
    while len(received) < n_frames:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
        while True:
            head_end = buf.find(b"\r\n\r\n", buf.find(b"Content-Type: image/jpeg"))
            if buf.find(b"Content-Type: image/jpeg") < 0 or head_end < 0:
                break
            head = buf[:head_end].decode("latin-1")
            length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
            index = int(head.split("X-Frame-Index: ")[1].split("\r\n")[0])
            if len(buf) < head_end + 4 + length:
                break
            received.append((index, time.perf_counter()))
            buf = buf[head_end + 4 + length:]
    sock.close()


def bench_stream(n_frames=150, fps=30.0):
    import cv2

    from opensteady.host.control import Controls
    from opensteady.host.outputs import FrameHub, VirtualCamera
    from opensteady.host.web import WebServer

    results = {}
    from skimage import data

    rgb = cv2.resize(data.astronaut(), (640, 480))  # a real photo: JPEG size as with a camera

    def hud():
        img = rgb.copy()
        cv2.putText(img, "HUD", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        return img

    for view in ("clean", "hud"):
        hub = FrameHub()
        server = WebServer(Controls(), hub, port=0).start()
        received = []
        reader = threading.Thread(target=_mjpeg_reader, args=(server.port, "/stream.mjpg?view=" + view,
                                                              n_frames, received), daemon=True)
        reader.start()
        server.streams[view].wait_clients(1, 30.0)
        published = {}
        start = time.perf_counter()
        for i in range(n_frames):
            due = start + i / fps
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.002, due - time.perf_counter())))
            captured = time.perf_counter()
            published[i] = captured
            hub.publish(rgb, i / fps, i, captured_at=captured, hud=hud)
        reader.join(10.0)
        server.close()
        client_ms = [(t - published[i]) * 1e3 for i, t in received if i in published]
        stats = server.streams[view].stats
        results[view] = {
            "frames_published": n_frames, "frames_received": len(received), "dropped": stats.dropped,
            "served_ms_p50": _p(stats.latency_ms, 50), "served_ms_p95": _p(stats.latency_ms, 95),
            "client_ms_p50": _p(client_ms, 50), "client_ms_p95": _p(client_ms, 95),
        }

    import pyvirtualcam

    class NullBackend:
        def __init__(self, **kw):
            pass

        def send(self, frame):
            pass

        def close(self):
            pass

        def device(self):
            return "bench"

        def native_fourcc(self):
            return None

    pyvirtualcam.register_backend("opensteady-bench", NullBackend)
    hub = FrameHub()
    cam = VirtualCamera(hub, 640, 480, fps, backend="opensteady-bench").start()
    for i in range(n_frames):
        seq = hub.publish(rgb, i / fps, i)
        cam.stats.wait_sent(seq, 5.0)
    cam.close()
    results["virtual_camera"] = {"sent": cam.stats.sent, "sent_ms_p50": _p(cam.stats.latency_ms, 50),
                                 "sent_ms_p95": _p(cam.stats.latency_ms, 95)}
    return results


def _pty_device():
    """A pty whose master answers VERSION_REQUEST and notes when the first SETPOINT arrives."""
    import pty
    import tty

    from opensteady.firmware import protocol as p

    master, slave = pty.openpty()
    tty.setraw(slave)
    state = {"first_setpoint": None, "stop": False}

    def serve():
        parser = p.Parser()
        while not state["stop"]:
            ready, _, _ = select.select([master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for b in data:
                m = parser.feed(b)
                if m == p.MSG_VERSION_REQUEST:
                    os.write(master, p.encode(p.MSG_VERSION, 0, p.pack(p.MSG_VERSION, p.PROTOCOL_VERSION, 0, 1, 0, 1, 3)))
                elif m == p.MSG_SETPOINT and state["first_setpoint"] is None:
                    state["first_setpoint"] = time.perf_counter()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return os.ttyname(slave), state, (master, slave)


def bench_startup(repeat=3):
    from opensteady.host.track_bench import write_astronaut_video

    tmp = tempfile.mkdtemp(prefix="opensteady-bench-")
    video = str(write_astronaut_video(os.path.join(tmp, "astronaut.avi"), 90))
    launch_s, imports_s, mediapipe_s = [], [], []
    for _ in range(repeat):
        tty_name, state, fds = _pty_device()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "opensteady.host.cli", "track", "--video", video, "--headless",
                                 "--no-log", "--port", tty_name, "--max-frames", "30"],
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.wait(120)
        state["stop"] = True
        for fd in fds:
            os.close(fd)
        if state["first_setpoint"] is not None:
            launch_s.append(state["first_setpoint"] - t0)
        out = subprocess.run([sys.executable, "-c", CODE_MEDIAPIPE], capture_output=True, text=True, cwd=tmp)
        a, b = out.stdout.split()
        imports_s.append(float(a))
        mediapipe_s.append(float(b))
    from serial.tools import list_ports

    t = time.perf_counter()
    list_ports.comports()
    comports_ms = (time.perf_counter() - t) * 1e3
    return {"launch_to_first_setpoint_s_median": float(np.median(launch_s)) if launch_s else None,
            "launch_to_first_setpoint_s_all": [round(v, 2) for v in launch_s],
            "pipeline_import_s_median": float(np.median(imports_s)),
            "mediapipe_build_and_warm_s_median": float(np.median(mediapipe_s)),
            "autodetect_list_ports_ms": comports_ms}


def main(argv):
    parser = argparse.ArgumentParser(prog="opensteady bench apps")
    parser.add_argument("--frames", type=int, default=150, help="frames per stream run (30 fps)")
    parser.add_argument("--repeat", type=int, default=3, help="start-up runs")
    parser.add_argument("--only", choices=("stream", "startup"), help="run one part")
    args = parser.parse_args(argv)
    if args.only != "startup":
        for name, figures in bench_stream(args.frames).items():
            print("stream %-15s %s" % (name, " ".join("%s=%s" % (k, round(v, 2) if isinstance(v, float) else v)
                                                      for k, v in figures.items())))
    if args.only != "stream":
        for k, v in bench_startup(args.repeat).items():
            print("startup %-40s %s" % (k, round(v, 3) if isinstance(v, float) else v))
    return 0

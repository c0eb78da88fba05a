"""Benchmarks for the apps side (docs/benchmarks.md, "Working with other apps"): ``opensteady bench apps``.

- **Stream latency**: frames captured -> frame served. A 640x480 picture is
  published at 30 fps (the way the tracking loop does); a real HTTP client
  reads ``/stream.mjpg`` on loopback. Reported: capture -> last byte written
  by the server, and capture -> whole JPEG received by the client (clean and
  HUD views), and the virtual-camera path up to ``Camera.send()``.
- **Start-up**: ``opensteady track --video ... --port PTY`` launched as a new
  process, until the first SETPOINT frame arrives on the pty (a device there
  answers the version handshake); and, in separate fresh processes, the part
  that is Python imports and MediaPipe start-up (``import mediapipe``, building
  and warming the graphs). ``--cold`` evicts this venv's and the checkout's
  files from the page cache before each launch (as after a reboot).

    opensteady bench apps                 # both
    opensteady bench apps --only startup --cold
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
import mediapipe
t2 = time.perf_counter()
pipe = TrackingPipeline(PipelineConfig())
t3 = time.perf_counter()
print("%.4f %.4f %.4f" % (t1 - t0, t2 - t1, t3 - t2))
"""


def evict_page_cache(roots):
    """Drop these files from the page cache (posix_fadvise DONTNEED): the next start reads them from disk.

    Only files under ``roots`` (this venv's site-packages and the checkout), so
    other users' caches on a shared machine are left alone. Returns the number
    of files evicted.
    """
    n = 0
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                try:
                    fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    n += 1
                except OSError:
                    pass
                finally:
                    os.close(fd)
    return n


def _cache_roots():
    import sysconfig

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], here]


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
                    os.write(master, p.encode(p.MSG_VERSION, 0, p.pack(p.MSG_VERSION, p.PROTOCOL_VERSION, 0, 1, 0, 1, 3, 0)))
                elif m == p.MSG_SETPOINT and state["first_setpoint"] is None:
                    state["first_setpoint"] = time.perf_counter()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return os.ttyname(slave), state, (master, slave)


def mediapipe_import_shares(cwd):
    """Seconds of ``import mediapipe`` spent in matplotlib.pyplot and sounddevice (``python -X importtime``).

    mediapipe/__init__.py imports all of mediapipe.solutions (drawing_utils
    imports matplotlib.pyplot) and mediapipe.tasks.python (its audio tasks
    import sounddevice); every submodule import runs it first, so no narrower
    import avoids them.
    """
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mediapipe"], capture_output=True,
                         text=True, cwd=cwd)
    shares = {}
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() in ("matplotlib.pyplot", "sounddevice", "mediapipe"):
            shares[parts[2].strip().replace(".", "_")] = int(parts[1]) / 1e6
    return shares


def bench_startup(repeat=3, cold=False):
    """Launch -> first setpoint (seen by the device on the pty), models ready and first tracked setpoint.

    ``cold``: evict this venv's and the checkout's files from the page cache
    before each launch (evict_page_cache), as after a reboot.
    """
    import json

    from opensteady.host.track_bench import write_astronaut_video

    tmp = tempfile.mkdtemp(prefix="opensteady-bench-")
    video = str(write_astronaut_video(os.path.join(tmp, "astronaut.avi"), 90))
    keys = ("first_setpoint_s", "models_ready_s", "first_tracked_setpoint_s", "models_load_s",
            "pipeline_import_s", "import_mediapipe_s", "mediapipe_build_and_warm_s")
    runs = {k: [] for k in keys}
    for _ in range(repeat):
        if cold:
            evict_page_cache(_cache_roots())
        tty_name, state, fds = _pty_device()
        t0 = time.perf_counter()
        t0_unix = time.time()
        proc = subprocess.run([sys.executable, "-m", "opensteady.host.cli", "track", "--video", video, "--headless",
                               "--no-log", "--json", "--port", tty_name, "--max-frames", "30"],
                              cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=120)
        state["stop"] = True
        for fd in fds:
            os.close(fd)
        if state["first_setpoint"] is not None:
            runs["first_setpoint_s"].append(state["first_setpoint"] - t0)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        up = summary.get("startup") or {}
        for key in ("models_ready", "first_tracked_setpoint"):
            if up.get(key + "_unix_s") is not None:
                runs[key + "_s"].append(up[key + "_unix_s"] - t0_unix)
        if up.get("models_load_s") is not None:
            runs["models_load_s"].append(up["models_load_s"])
        if cold:
            evict_page_cache(_cache_roots())
        out = subprocess.run([sys.executable, "-c", CODE_MEDIAPIPE], capture_output=True, text=True, cwd=tmp)
        if out.returncode != 0 or len(out.stdout.split()) != 3:
            raise RuntimeError("the MediaPipe start-up probe failed (exit %s): %s" % (out.returncode, out.stderr[-1000:]))
        a, b, c = out.stdout.split()
        runs["pipeline_import_s"].append(float(a))
        runs["import_mediapipe_s"].append(float(b))
        runs["mediapipe_build_and_warm_s"].append(float(c))
        for name, seconds in mediapipe_import_shares(tmp).items():
            runs.setdefault("importtime_%s_s" % name, []).append(seconds)
    from serial.tools import list_ports

    t = time.perf_counter()
    list_ports.comports()
    comports_ms = (time.perf_counter() - t) * 1e3
    result = {"page_cache": "cold (venv and checkout evicted before each run)" if cold else "warm"}
    for key, values in runs.items():
        result[key + "_median"] = float(np.median(values)) if values else None
        result[key + "_all"] = [round(v, 2) for v in values]
    result["autodetect_list_ports_ms"] = comports_ms
    return result


def main(argv):
    parser = argparse.ArgumentParser(prog="opensteady bench apps")
    parser.add_argument("--frames", type=int, default=150, help="frames per stream run (30 fps)")
    parser.add_argument("--repeat", type=int, default=3, help="start-up runs")
    parser.add_argument("--only", choices=("stream", "startup"), help="run one part")
    parser.add_argument("--cold", action="store_true",
                        help="start-up with a cold page cache: this venv's and checkout's files evicted before each run")
    args = parser.parse_args(argv)
    if args.only != "startup":
        for name, figures in bench_stream(args.frames).items():
            print("stream %-15s %s" % (name, " ".join("%s=%s" % (k, round(v, 2) if isinstance(v, float) else v)
                                                      for k, v in figures.items())))
    if args.only != "stream":
        for k, v in bench_startup(args.repeat, args.cold).items():
            print("startup %-40s %s" % (k, round(v, 3) if isinstance(v, float) else v))
    return 0

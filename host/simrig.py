"""The simulated rig, and closed-loop scenario runs of the one host loop on it.

A real rig gives the host a camera, a serial port and the passing of time.
:class:`SimRig` gives exactly that, from one ``sim.world.SimGimbal`` (MuJoCo
plant, motor and IMU models, the real firmware, a simulated UART and a
virtual camera):

- :meth:`SimRig.camera`: a frame source on simulated time. Frame k is
  captured on the first control tick at or after k / fps and reaches the
  host ``[camera] latency_s`` later (capture, transfer and processing delay
  in one); waiting for a frame advances the world;
- :meth:`SimRig.port`: a pyserial-style port whose bytes cross the simulated
  UART to the firmware; a read with a timeout waits in simulated time;
- :meth:`SimRig.clock`: simulated seconds, for the link, backend and loop.

Everything else is the application's own code: ``host.loop.HostLoop`` with
``host.pipeline.TrackingPipeline``, ``host.mount.Mount`` and the
``opensteady`` backend over a real ``host.link.Link``, so heartbeats, the
handshake, mode requests and telemetry parsing run as with a board.

    result = run_scenario(load_scenario("track-crossing"), seed=0)
    result.metrics["tracking_rms_frac"], result.series["t_s"]

``opensteady sim`` (host/simcli.py) and ``opensteady track --sim`` both run
through :func:`open_rig` and :class:`ScenarioRecorder`, so they print the
same metrics for the same scenario and seed. The metrics' definitions are in
``sim.metrics``; ground truth (where each face really is) is taken at each
frame's capture time.
"""

import contextlib
import gc
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from opensteady.firmware import protocol
from opensteady.host.capture import Frame
from opensteady.host.link import Link
from opensteady.host.loop import HostLoop
from opensteady.host.mount import Mount
from opensteady.host.mount.opensteady import OpenSteadyBackend
from opensteady.sim import metrics as M
from opensteady.sim.firmware_runner import load_code
from opensteady.sim.world import SimGimbal

# the metrics that time a run (they differ run to run); every other metric is the same for a scenario and seed
TIMING_KEYS = ("wall_seconds", "realtime_factor", "cpu_seconds", "realtime_factor_cpu", "load_seconds")


class SimPort:
    """The host end of the simulated UART, with the part of pyserial's port API that Link uses."""

    def __init__(self, rig):
        self.rig = rig
        self.timeout = 0  # seconds a read may wait for ``size`` bytes (simulated time); 0 never waits
        self._rx = bytearray()
        self._arrived = rig.gimbal.read  # the bytes that have reached the host by now
        # the simulated UART's time per byte into the host (8N1), as host.link.Link asks a port for it
        self.byte_time_s = 10.0 / rig.gimbal.link_down.params.baud

    def _fill(self):
        data = self._arrived()
        if data:
            self._rx.extend(data)

    @property
    def in_waiting(self):
        self._fill()
        return len(self._rx)

    def read(self, size=1):
        self._fill()
        rx = self._rx
        if size >= len(rx) and not self.timeout:  # all of it (what Link asks for): no slicing
            data = bytes(rx)
            rx.clear()
            return data
        if self.timeout and len(self._rx) < size:
            rig = self.rig
            deadline_tick = rig.gimbal.tick_count + max(1, int(round(self.timeout * 1e6 / rig.gimbal.period_us)))
            while len(self._rx) < size and rig.gimbal.tick_count < deadline_tick:
                rig.advance_to((rig.gimbal.tick_count + 1) * rig.gimbal.period_us / 1e6)
                self._fill()
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def write(self, data):
        self.rig.gimbal.write(bytes(data))
        return len(data)

    def reset_input_buffer(self):
        self._fill()
        self._rx.clear()

    def close(self):
        pass


class SimCamera:
    """The virtual camera as a frame source (FrameGrabber's interface, without a thread)."""

    live = False
    paced = False
    status = "ok"
    error = None
    errors = 0
    dropped = 0

    def __init__(self, rig):
        self.rig = rig

    def latest(self, timeout_s=0.1):
        return self.rig.next_frame(timeout_s)

    @property
    def ended(self):
        return self.rig.ended

    def stop(self):
        pass


@dataclass
class FrameTruth:
    """Where each subject's face really was when a frame was captured."""

    t_s: float
    face_px: list  # (u, v) per subject
    in_view: list  # bool per subject


class SimRig:
    """One simulated gimbal and world, served as a camera, a serial port and a clock."""

    def __init__(self, scenario, firmware="inprocess", seed=0, face_image=None):
        self.scenario = scenario
        self.gimbal = SimGimbal(scenario, firmware=firmware, seed=seed, face_image=face_image)
        g = self.gimbal
        self.end_tick = int(math.floor(scenario.seconds * 1e6 / g.period_us + 1e-9))
        self.frame_dt_s = 1.0 / scenario.vision.fps if scenario.uses_vision else None
        self.latency_ticks = int(round(scenario.vision.latency_s * 1e6 / g.period_us))
        self.frames_captured = 0
        self.truth = []  # FrameTruth per captured frame, by frame index
        self._queue = deque()  # (delivery tick, Frame)
        self._gestures = sorted(scenario.gestures, key=lambda e: e.t_s)

    # --- what a rig gives the host ------------------------------------------------
    def clock(self):
        """Simulated seconds."""
        return self.gimbal.time_s

    def port(self):
        return SimPort(self)

    def camera(self):
        return SimCamera(self)

    # --- time ---------------------------------------------------------------------
    def _capture_tick(self, k):
        """The first control tick at or after frame k's time k / fps."""
        return int(math.ceil(k * self.frame_dt_s * 1e6 / self.gimbal.period_us - 1e-6))

    def _next_capture_tick(self):
        if self.frame_dt_s is None:
            return None
        tick = self._capture_tick(self.frames_captured)
        return tick if tick < self.end_tick else None

    def advance_to(self, t_s):
        """Run the world up to ``t_s``, capturing every frame whose time comes on the way."""
        g = self.gimbal
        if self.frame_dt_s is not None:
            end = int(math.floor(t_s * 1e6 / g.period_us + 1e-9))
            while True:
                cap = self._next_capture_tick()
                if cap is None or cap > end:
                    break
                g.step_to(cap * g.period_us / 1e6)
                self._capture()
        g.step_to(t_s)

    def _capture(self):
        g = self.gimbal
        t_s = g.time_s
        rgb = g.render()
        faces = [g.subject_face_px(k) for k in range(len(self.scenario.subjects))]
        self.truth.append(FrameTruth(t_s, [f[0] for f in faces], [f[1] for f in faces]))
        gestures = []
        while self._gestures and self._gestures[0].t_s <= t_s:
            gestures.append(self._gestures.pop(0).gesture)
        # stamped when taken, on the host's clock (here the simulated one), as a V4L2 camera stamps its buffers
        frame = Frame(rgb, t_s, self.frames_captured, time.perf_counter(), tuple(gestures), capture_s=t_s)
        self._queue.append((g.tick_count + self.latency_ticks, frame))
        self.frames_captured += 1

    def next_frame(self, timeout_s):
        """The next frame once it has reached the host, waiting up to ``timeout_s`` simulated seconds."""
        g = self.gimbal
        deadline = min(g.tick_count + max(1, int(round(timeout_s * 1e6 / g.period_us))), self.end_tick)
        if self.frame_dt_s is None:  # the scenario films nothing: the wait is time passing (most of a stabilise run)
            g.step_to(max(deadline, g.tick_count) * g.period_us / 1e6)
            return None
        self.advance_to(g.time_s)  # a frame due right now is captured now
        while True:
            if self._queue and self._queue[0][0] <= deadline:
                due, frame = self._queue.popleft()
                self.advance_to(max(due, g.tick_count) * g.period_us / 1e6)
                return frame
            cap = self._next_capture_tick()
            if cap is not None and cap <= deadline:
                self.advance_to(cap * g.period_us / 1e6)
                continue
            self.advance_to(max(deadline, g.tick_count) * g.period_us / 1e6)
            return None

    @property
    def ended(self):
        """The scenario's time is up and no frame is left to deliver within it."""
        if self.gimbal.tick_count < self.end_tick:
            return False
        return not (self._queue and self._queue[0][0] <= self.end_tick)

    def close(self):
        self.gimbal.close()


# --- pipelines ----------------------------------------------------------------------

def sim_pipeline_config(config, scenario):
    """``config`` (a host PipelineConfig) adapted to the scenario's camera.

    The virtual camera's field of view and frame rate; hand detection off and
    in line, because the world holds no photos of hands (its gestures come
    with the frames) and a worker thread would not be repeatable; no
    whole-person detector, because the subjects are head-and-shoulders
    photos, not figures; face descriptors computed in line, so a run is the
    same every time.
    """
    cam = scenario.camera
    framing = replace(config.framing, hfov_deg=cam.hfov_deg, vfov_deg=cam.vfov_deg)
    fps = scenario.vision.fps or 30.0
    return replace(config, framing=framing, hands_async=False, nominal_dt_s=1.0 / fps,
                   vision=dict(config.vision, hands=False, persons="none"),
                   tracker=dict(config.tracker, reid="inline"), light_level=scenario.light.level)


def default_pipeline_config():
    """The application's default PipelineConfig (host/config.py's defaults)."""
    from opensteady.host.config import build_pipeline_config, load_config

    return build_pipeline_config(load_config(None))


@dataclass
class _BaselineTarget:
    locked: bool
    x: float = None
    y: float = None
    source: str = "face"


class _BaselineSetpoint:
    def __init__(self, fields):
        self.fields = fields
        self.roll_deg = 0.0

    def to_protocol(self):
        return self.fields


@dataclass
class _BaselineOutput:
    target: _BaselineTarget
    setpoint: _BaselineSetpoint
    paused: bool = False
    events: list = field(default_factory=list)


class BaselinePipeline:
    """``sim.baseline.BaselineTracker`` with the pipeline's step(), so the naive tracker runs in the same loop."""

    def __init__(self, perception, width_px, height_px):
        from opensteady.sim.baseline import BaselineTracker

        self.perception = perception
        self.tracker = BaselineTracker()
        self.size = (width_px, height_px)
        self.calibration_point = (0.5, 0.5)

    def inject_gesture(self, gesture):
        pass  # the baseline knows no gestures

    def step(self, frame_rgb, t_s, telemetry=None):
        from opensteady.host.pipeline import gimbal_following

        det = self.perception.process(frame_rgb, t_s)
        # like TrackingPipeline, chase nothing while the gimbal ignores setpoints (booting)
        fields = self.tracker.step(det if gimbal_following(telemetry) else replace(det, faces=()), *self.size)
        box = det.faces[0].box if det.faces else None
        target = _BaselineTarget(self.tracker.locked, box.cx if box else None, box.cy if box else None)
        return _BaselineOutput(target, _BaselineSetpoint(fields))

    def close(self):
        self.perception.close()


def make_pipeline(scenario, config, tracker="opensteady"):
    """The per-frame pipeline for a scenario: TrackingPipeline, or the naive baseline; None without vision."""
    if not scenario.uses_vision:
        return None
    if tracker == "baseline":
        from opensteady.vision.pipeline import Perception, VisionConfig

        return BaselinePipeline(Perception(VisionConfig(**config.vision)), scenario.camera.width,
                                scenario.camera.height)
    from opensteady.host.pipeline import TrackingPipeline

    return TrackingPipeline(config)


class _NoPipeline:
    """Stands in when the scenario films nothing: the loop never gets a frame to give it."""

    calibration_point = (0.5, 0.5)

    def close(self):
        pass


def open_rig(scenario, pipeline_config=None, firmware="inprocess", seed=0, face_image=None, tracker=None,
             **mount_options):
    """Build the rig, the pipeline and the mount for a scenario; returns (rig, pipeline, mount).

    The mount is not opened yet (``mount.open()`` handshakes on simulated time); ``mount_options`` go to
    host.mount.Mount (``stall_s``, ``telemetry_max_age_s``).
    """
    tracker = tracker or scenario.tracker
    config = sim_pipeline_config(pipeline_config or default_pipeline_config(), scenario)
    rig = SimRig(scenario, firmware=firmware, seed=seed, face_image=face_image)
    try:
        pipeline = make_pipeline(scenario, config, tracker) or _NoPipeline()
    except Exception:
        rig.close()
        raise
    link = Link("sim://" + scenario.name, port_factory=rig.port, clock=rig.clock)
    mount = Mount(OpenSteadyBackend(link.url, link=link, mode=scenario.mode), **mount_options)
    return rig, pipeline, mount


# --- recording and metrics ------------------------------------------------------------

def commanded_series(trace_ticks, camera_ypr_deg, handle_ypr_deg, sends, dt_s):
    """The attitude the host commanded at each trace sample, integrated from the setpoints sent.

    ``sends``: (tick, (flags, yaw, pitch, roll)) in order. A setpoint written
    at tick n applies from the sample after it. Rates integrate over the
    ``dt_s`` between samples, earth-frame angles are taken as they
    are, other angles are relative to the handle. Before the first setpoint
    the command is the camera's attitude at the first sample.
    """
    out = []
    ypr = None
    flags = None
    values = (0.0, 0.0, 0.0)
    j = 0
    for i, tick in enumerate(trace_ticks):
        while j < len(sends) and sends[j][0] < tick:
            flags, yaw, pitch, roll = sends[j][1]
            values = (yaw / 100.0, pitch / 100.0, roll / 100.0)
            j += 1
        if ypr is None:
            ypr = list(camera_ypr_deg[i])
        if flags is not None:
            for a in range(3):
                v = values[a]
                if flags & (protocol.SP_YAW_IS_RATE << a):
                    ypr[a] += v * dt_s
                elif flags & (protocol.SP_YAW_IN_EARTH_FRAME << a):
                    ypr[a] = v
                else:
                    ypr[a] = handle_ypr_deg[i][a] + v
        out.append(list(ypr))
    return out


def fault_names(flags):
    return [name for bit, name in enumerate(protocol.FAULT_NAMES) if flags & (1 << bit)]


class ScenarioRecorder:
    """Collects what the loop did on a rig and turns it, with the world's traces, into the scenario metrics."""

    def __init__(self, rig, pipeline, mount):
        self.rig = rig
        self.pipeline = pipeline
        self.mount = mount
        if not rig.scenario.uses_vision:
            self.tracker = None
        else:
            self.tracker = "baseline" if isinstance(pipeline, BaselinePipeline) else "opensteady"
        self.sends = []  # (tick, setpoint fields) of every setpoint written
        self.frames = {"t_s": [], "face_px": [], "in_view": [], "locked": [], "paused": [], "wrong_target": [],
                       "setpoint": [], "face_found": []}

    def record(self, step):
        """Note one LoopStep (a frame processed and its setpoint sent)."""
        rig = self.rig
        g = rig.gimbal
        out = step.out
        sp = out.setpoint.to_protocol()
        if step.bytes_written:
            self.sends.append((int(round(step.sent_s * 1e6 / g.period_us)), sp))
        k = rig.scenario.target_index
        if k is None:
            return
        truth = rig.truth[step.frame.index]
        # a target the tracker only predicts (coasting, holding) is not a target in view
        locked = bool(out.target.locked) and getattr(out.target, "source", "face") in ("face", "body")
        tx, ty = (out.target.x, out.target.y) if locked and out.target.x is not None else (None, None)
        cam = rig.scenario.camera
        (u, v), in_view = truth.face_px[k], truth.in_view[k]
        wrong = False
        if tx is not None:
            # the tracker's target is nearer another person's face than the subject's
            mine = math.hypot(tx * cam.width - u, ty * cam.height - v)
            for j, (uj, vj) in enumerate(truth.face_px):
                if j != k and truth.in_view[j] and math.hypot(tx * cam.width - uj, ty * cam.height - vj) < mine:
                    wrong = True
        if truth.t_s >= rig.scenario.warmup_s:
            f = self.frames
            f["t_s"].append(truth.t_s)
            f["face_px"].append((u, v))
            f["in_view"].append(in_view)
            f["locked"].append(locked)
            f["paused"].append(bool(out.paused))
            f["wrong_target"].append(wrong)
            f["setpoint"].append(sp)
            detections = getattr(out, "detections", None)
            f["face_found"].append(None if detections is None else
                                   face_found(detections.faces, (u, v), cam.width, cam.height))

    def result(self):
        """RunResult(metrics, series) of the run so far."""
        rig = self.rig
        g = rig.gimbal
        sc = rig.scenario
        tr = g.traces
        t = np.array(tr.t_s)
        ticks = [int(round(x * 1e6 / g.period_us)) for x in tr.t_s]
        sample_s = (ticks[1] - ticks[0]) * g.period_us / 1e6 if len(ticks) > 1 else 0.0
        cmd_series = commanded_series(ticks, tr.camera_ypr_deg, tr.handle_ypr_deg, self.sends, sample_s)
        after = t >= sc.warmup_s
        # each trace converted once: the metrics take the samples after the warm-up, the series all of them
        cam_all = np.array(tr.camera_ypr_deg)
        handle_all = np.array(tr.handle_ypr_deg)
        cmd_all = np.array(cmd_series)
        effort_all = np.array(tr.effort)
        cam = cam_all[after]
        handle = handle_all[after]
        cmd = cmd_all[after] if cmd_series else cam
        effort = effort_all[after]
        size = (sc.camera.width, sc.camera.height)
        frames = self.frames
        in_view = np.array(frames["in_view"], dtype=bool)
        backend = self.mount.backend
        link = backend.link
        calibration_point = self.pipeline.calibration_point
        m = {
            "scenario": sc.name,
            "firmware": g.firmware.mode,
            "tracker": self.tracker,
            "seed": g.seed,
            "sim_seconds": round(g.time_s, 6),
            "tracking_rms_frac": M.round_or_none(M.tracking_rms_frac(frames["face_px"], in_view, calibration_point,
                                                                      size)),
            "tracking_lost_frac": M.round_or_none(M.lost_frac(in_view, frames["locked"])),
            "camera_jitter_rms_deg": M.round_or_none(M.jitter_rms_deg(t[after], cam, cmd)),
            "handle_motion_rms_deg": M.round_or_none(M.motion_rms_deg(handle)),
            "max_motor_effort": M.round_or_none(float(effort.max()) if len(effort) else None, 4),
            "faults": fault_names(backend.fault_flags_seen),
            "mode_reached": backend.mode_reached,
            "frames": len(frames["t_s"]),
            "frames_in_view": int(in_view.sum()),
            "wrong_target_frac": M.round_or_none(float(np.mean(frames["wrong_target"])) if frames["wrong_target"]
                                                 else None),
            "paused_frames": int(sum(frames["paused"])),
            # frames with the subject in view in which vision found a face (the dim-room scenario's measure)
            "face_detected_frac": M.round_or_none(_mean_known(v for v, seen in zip(frames["face_found"], in_view)
                                                              if seen)),
            "light_duty": round(g.hal.light_duty_u16 / 65535.0, 4),
            "link_bytes_dropped": g.link_up.bytes_dropped + g.link_down.bytes_dropped,
            "link_bytes_corrupted": g.link_up.bytes_corrupted + g.link_down.bytes_corrupted,
            "host_crc_errors": link.crc_errors,
            "telemetry_frames": backend.telemetry_frames,
            "heartbeats_sent": link.heartbeats_sent,
            "final_camera_ypr_deg": [round(a, 3) for a in g.camera_ypr_deg()],
            "final_handle_ypr_deg": [round(a, 3) for a in g.handle_ypr_deg()],
        }
        series = {
            "t_s": t,
            "camera_ypr_deg": cam_all,
            "handle_ypr_deg": handle_all,
            "commanded_ypr_deg": cmd_all,
            "joint_deg": np.array(tr.joint_deg),
            "effort": effort_all,
            "frame_t_s": np.array(frames["t_s"]),
            "face_px": np.array(frames["face_px"]).reshape(-1, 2),
            "in_view": in_view,
            "locked": np.array(frames["locked"], dtype=bool),
        }
        return RunResult(m, series)


def face_found(faces, face_px, width, height, tolerance=0.3):
    """True when a detected face box is centred on the subject's true face (``face_px``).

    Within ``tolerance`` of the box's width: a box that only contains the
    face (in the dark, short range may report the whole head-and-shoulders
    photo as one low-score "face") does not count.
    """
    u, v = face_px
    for f in faces:
        w_px = f.box.w * width
        if math.hypot(f.box.cx * width - u, f.box.cy * height - v) <= tolerance * w_px:
            return True
    return False


def _mean_known(values):
    """The mean of the values that are not None, or None when there are none."""
    known = [float(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


@dataclass
class RunResult:
    metrics: dict
    series: dict = field(default_factory=dict)


def _progress(fraction, t_s, total_s, stream):
    width = 30
    n = int(width * fraction)
    stream.write("\r[%s%s] %5.1f/%.1f s sim" % ("#" * n, "." * (width - n), t_s, total_s))
    stream.flush()


def run_scenario(scenario, firmware="inprocess", seed=0, face_image=None, tracker=None, progress=False,
                 progress_stream=None, pipeline_config=None, on_step=None):
    """Run ``scenario`` to its end through the host loop; returns RunResult(metrics, series).

    ``on_step(step)``, when given, sees every host.loop.LoopStep (the demo's video uses it).
    """
    stream = progress_stream or sys.stderr
    load0 = time.perf_counter()
    load_code(firmware)  # the first compiled run builds it (about a minute): loading is not simulating
    load_s = time.perf_counter() - load0
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    with no_cyclic_gc():
        result = _run(scenario, firmware, seed, face_image, tracker, progress, stream, pipeline_config, on_step)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    if progress:
        stream.write("\n")
    m = result.metrics
    m["wall_seconds"] = round(wall, 3)
    m["realtime_factor"] = round(scenario.seconds / wall, 3) if wall > 0 else None
    # CPU time of this process (all its threads): less sensitive to other load on a shared machine
    m["cpu_seconds"] = round(cpu, 3)
    m["realtime_factor_cpu"] = round(scenario.seconds / cpu, 3) if cpu > 0 else None
    m["load_seconds"] = round(load_s, 3)
    return result


@contextlib.contextmanager
def no_cyclic_gc():
    """The cyclic garbage collector off for a scenario run, and back as it was after.

    A run makes few reference cycles (a few hundred objects in a 10 s
    stabilise run) but allocates enough containers to trigger about fifty
    collections, one of them a full pass over everything the process holds
    (numpy, MuJoCo, the firmware): 17 ms of a 0.45 s run. Memory is freed by
    reference counting as before; the cycles wait for the next collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _run(scenario, firmware, seed, face_image, tracker, progress, stream, pipeline_config, on_step):
    rig, pipeline, mount = open_rig(scenario, pipeline_config, firmware=firmware, seed=seed, face_image=face_image,
                                    tracker=tracker)
    try:
        mount.open()
        loop = HostLoop(rig.camera(), pipeline, mount, clock=rig.clock)
        recorder = ScenarioRecorder(rig, pipeline, mount)
        shown = -1
        while not loop.ended:
            step = loop.step()
            if step is not None:
                recorder.record(step)
                if on_step is not None:
                    on_step(step)
            if progress and int(100 * rig.clock() / scenario.seconds) != shown:
                shown = int(100 * rig.clock() / scenario.seconds)
                _progress(rig.clock() / scenario.seconds, rig.clock(), scenario.seconds, stream)
        result = recorder.result()
        mount.close(rig.clock())
    finally:
        pipeline.close()
        rig.close()
    return result

"""Scenario runner: the host's side of a closed-loop run, and the metrics.

    from opensteady.sim.runner import run_scenario
    result = run_scenario(load_scenario("track-crossing"), firmware="inprocess", seed=0)
    result.metrics["tracking_rms_frac"], result.series["t_s"]

The host side does what ``opensteady track`` does with a real gimbal, on
simulated time: it talks the OpenSteady wire protocol through the simulated
serial link (MODE until acknowledged, HEARTBEAT every 100 ms), and with vision
in the loop it renders the virtual camera at ``camera.fps``, runs
``host.pipeline.TrackingPipeline`` (real MediaPipe, the real target tracker and
framing controller) or the naive :mod:`sim.baseline` on each frame, and sends
the resulting SETPOINT ``camera.latency_s`` after the frame's time. Everything
the device sends back is parsed with the protocol's own Parser: telemetry
feeds the pipeline, FAULT and telemetry fault bits become ``faults``.
"""

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from opensteady.firmware import protocol
from opensteady.sim import metrics as M
from opensteady.sim.baseline import BaselineTracker
from opensteady.sim.world import SimGimbal

MODE_IDS = {"lock": protocol.MODE_LOCK, "pan_follow": protocol.MODE_PAN_FOLLOW, "follow": protocol.MODE_FOLLOW,
            "track": protocol.MODE_TRACK}
HEARTBEAT_S = 0.1
MODE_FIRST_S = 1.3  # boot calibration takes calib_ms (1 s) once the handle is still
MODE_RETRY_S = 0.5


@dataclass
class RunResult:
    metrics: dict
    series: dict = field(default_factory=dict)


class _DeviceReader:
    """Parses device -> host bytes: latest telemetry, ACKs, faults."""

    def __init__(self):
        self.parser = protocol.Parser()
        self.telemetry = None
        self.fault_flags_seen = 0
        self.acks = []
        self.telemetry_count = 0

    def feed(self, data):
        p = self.parser
        for b in data:
            mid = p.feed(b)
            while mid >= 0:
                self._handle(mid, p.payload())
                mid = p.flush()

    def _handle(self, mid, payload):
        fields = protocol.decode(mid, payload)
        if fields is None:
            return
        if mid == protocol.MSG_TELEMETRY:
            self.telemetry = dict(zip(protocol.FIELDS[mid], fields))
            self.fault_flags_seen |= self.telemetry["fault_flags"]
            self.telemetry_count += 1
        elif mid == protocol.MSG_FAULT:
            self.fault_flags_seen |= fields[0]
        elif mid == protocol.MSG_ACK:
            self.acks.append(fields)


def fault_names(flags):
    return [name for bit, name in enumerate(protocol.FAULT_NAMES) if flags & (1 << bit)]


class _Commanded:
    """The attitude the host is commanding, integrated from the setpoints as the host sends them."""

    def __init__(self):
        self.ypr = None
        self.flags = None
        self.values = (0.0, 0.0, 0.0)

    def set(self, flags, yaw, pitch, roll):
        self.flags = flags
        self.values = (yaw / 100.0, pitch / 100.0, roll / 100.0)

    def advance(self, dt_s, camera_ypr, handle_ypr):
        if self.ypr is None:
            self.ypr = list(camera_ypr)
        if self.flags is None:
            return self.ypr
        for i in range(3):
            v = self.values[i]
            if self.flags & (protocol.SP_YAW_IS_RATE << i):
                self.ypr[i] += v * dt_s
            elif self.flags & (protocol.SP_YAW_IN_EARTH_FRAME << i):
                self.ypr[i] = v
            else:
                self.ypr[i] = handle_ypr[i] + v
        return self.ypr


def _progress(fraction, t_s, total_s, stream):
    width = 30
    n = int(width * fraction)
    stream.write("\r[%s%s] %5.1f/%.1f s sim" % ("#" * n, "." * (width - n), t_s, total_s))
    stream.flush()


def _make_pipeline(scenario, perception):
    from opensteady.host.framing import FramingConfig
    from opensteady.host.pipeline import PipelineConfig, TrackingPipeline

    cam = scenario.camera
    framing = FramingConfig(hfov_deg=cam.hfov_deg, vfov_deg=cam.vfov_deg)
    # no photos of hands exist offline, so hand detection is off; gestures are injected
    # face descriptors in line: the same run every time
    config = PipelineConfig(framing=framing, vision={"hands": False}, tracker={"reid": "inline"},
                            nominal_dt_s=1.0 / scenario.vision.fps)
    return TrackingPipeline(config, perception=perception)


def run_scenario(scenario, firmware="inprocess", seed=0, face_image=None, tracker=None, progress=False,
                 progress_stream=None):
    """Run ``scenario`` to its end; returns RunResult(metrics, series)."""
    tracker = tracker or scenario.tracker
    stream = progress_stream or sys.stderr
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    perception = None
    if scenario.uses_vision:
        from opensteady.vision.pipeline import Perception, VisionConfig

        perception = Perception(VisionConfig(hands=False, persons="none"))  # the subjects are heads, not figures
    with SimGimbal(scenario, firmware=firmware, seed=seed, face_image=face_image) as g:
        result = _run(g, scenario, tracker, perception, progress, stream)
    if perception is not None:
        perception.close()
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
    return result


def _run(g, scenario, tracker_name, perception, progress, stream):
    vis = scenario.vision
    dev = _DeviceReader()
    mode_id = MODE_IDS[scenario.mode]
    seq = 0
    pending = []  # (send_time_s, bytes, setpoint fields or None)
    next_hb = 0.0
    next_mode = MODE_FIRST_S
    mode_acked = False
    pipeline = baseline = None
    if scenario.uses_vision:
        if tracker_name == "baseline":
            baseline = BaselineTracker()
        else:
            pipeline = _make_pipeline(scenario, perception)
    calibration_point = pipeline.calibration_point if pipeline else (0.5, 0.5)
    frame_dt = 1.0 / vis.fps if scenario.uses_vision else None
    next_frame = 0.0
    gestures = sorted(scenario.gestures, key=lambda e: e.t_s)
    target = scenario.target_index
    commanded = _Commanded()
    cmd_series = []  # commanded attitude at each trace sample
    frames = {"t_s": [], "face_px": [], "in_view": [], "locked": [], "paused": [], "wrong_target": [],
              "setpoint": []}
    step_s = g.period_us / 1e6
    n_steps = int(round(scenario.seconds / step_s))
    progress_every = max(1, n_steps // 100)
    for k in range(n_steps):
        t = g.time_s
        # --- host side at time t ---------------------------------------------------
        if t >= next_hb:
            g.write(protocol.encode(protocol.MSG_HEARTBEAT, seq, protocol.pack(protocol.MSG_HEARTBEAT,
                                                                                protocol.ROLE_HOST, int(t * 1000))))
            seq = (seq + 1) & 0xFF
            next_hb += HEARTBEAT_S
        if not mode_acked and t >= next_mode:
            g.write(protocol.encode(protocol.MSG_MODE, seq, protocol.pack(protocol.MSG_MODE, mode_id)))
            seq = (seq + 1) & 0xFF
            next_mode += MODE_RETRY_S
        while gestures and gestures[0].t_s <= t and pipeline is not None:
            pipeline.inject_gesture(gestures.pop(0).gesture)
        # frames at the camera's rate; the host starts tracking once the gimbal acknowledged the mode
        if frame_dt is not None and t >= next_frame - 1e-9:
            next_frame += frame_dt
            if mode_acked:
                sp = _frame_step(g, scenario, t, pipeline, baseline, perception, dev, target, calibration_point,
                                 frames)
                frame = protocol.encode(protocol.MSG_SETPOINT, seq, protocol.pack(protocol.MSG_SETPOINT, *sp))
                seq = (seq + 1) & 0xFF
                pending.append((t + vis.latency_s, frame, sp))
        while pending and pending[0][0] <= t + 1e-9:
            _when, data, sp = pending.pop(0)
            g.write(data)
            commanded.set(*sp)
        # --- the device and the world -----------------------------------------------
        g.step_to(t + step_s)
        data = g.read()
        if data:
            dev.feed(data)
            if not mode_acked:
                mode_acked = any(a[0] == protocol.MSG_MODE and a[2] == protocol.ACK_OK for a in dev.acks)
        if g.tick_count % 4 == 0:
            cmd_series.append(list(commanded.advance(4 * step_s, g.traces.camera_ypr_deg[-1],
                                                     g.traces.handle_ypr_deg[-1])))
        if progress and k % progress_every == 0:
            _progress(k / n_steps, t, scenario.seconds, stream)
    return RunResult(_metrics(g, scenario, dev, frames, cmd_series, calibration_point, tracker_name,
                              mode_acked),
                     _series(g, frames, cmd_series))


def _frame_step(g, scenario, t, pipeline, baseline, perception, dev, target, calibration_point, frames):
    """Render, perceive, decide; record ground truth. Returns setpoint fields or None."""
    cam = scenario.camera
    frame = g.render()
    if pipeline is not None:
        out = pipeline.step(frame, t, telemetry=dev.telemetry)
        # a target the tracker only predicts (coasting, holding) is not a target in view
        locked = bool(out.target.locked) and getattr(out.target, "source", "face") in ("face", "body")
        paused = bool(out.paused)
        sp = out.setpoint.to_protocol()
        tx, ty = (out.target.x, out.target.y) if locked and out.target.x is not None else (None, None)
    else:
        det = perception.process(frame, t)  # the same detector the pipeline uses
        sp = baseline.step(det, cam.width, cam.height)
        locked = baseline.locked
        paused = False
        tx, ty = (det.faces[0].box.cx, det.faces[0].box.cy) if det.faces else (None, None)
    if target is not None:
        (u, v), in_view = g.subject_face_px(target)
        wrong = False
        if tx is not None:
            # the tracker's target is nearer another person's face than the subject's
            mine = math.hypot(tx * cam.width - u, ty * cam.height - v)
            for j in range(len(scenario.subjects)):
                if j != target:
                    (uj, vj), vis_j = g.subject_face_px(j)
                    if vis_j and math.hypot(tx * cam.width - uj, ty * cam.height - vj) < mine:
                        wrong = True
        if t >= scenario.warmup_s:
            frames["t_s"].append(t)
            frames["face_px"].append((u, v))
            frames["in_view"].append(in_view)
            frames["locked"].append(locked)
            frames["paused"].append(paused)
            frames["wrong_target"].append(wrong)
            frames["setpoint"].append(sp)
    return sp


def _metrics(g, scenario, dev, frames, cmd_series, calibration_point, tracker_name, mode_acked):
    tr = g.traces
    t = np.array(tr.t_s)
    after = t >= scenario.warmup_s
    cam = np.array(tr.camera_ypr_deg)[after]
    handle = np.array(tr.handle_ypr_deg)[after]
    cmd = np.array(cmd_series)[after] if cmd_series else cam
    effort = np.array(tr.effort)[after]
    size = (scenario.camera.width, scenario.camera.height)
    in_view = np.array(frames["in_view"], dtype=bool)
    m = {
        "scenario": scenario.name,
        "firmware": g.firmware.mode,
        "tracker": tracker_name if scenario.uses_vision else None,
        "seed": g.seed,
        "sim_seconds": round(g.time_s, 6),
        "tracking_rms_frac": M.round_or_none(M.tracking_rms_frac(frames["face_px"], in_view, calibration_point,
                                                                  size)),
        "tracking_lost_frac": M.round_or_none(M.lost_frac(in_view, frames["locked"])),
        "camera_jitter_rms_deg": M.round_or_none(M.jitter_rms_deg(t[after], cam, cmd)),
        "handle_motion_rms_deg": M.round_or_none(M.motion_rms_deg(handle)),
        "max_motor_effort": M.round_or_none(float(effort.max()) if len(effort) else None, 4),
        "faults": fault_names(dev.fault_flags_seen),
        "mode_acked": mode_acked,
        "frames": len(frames["t_s"]),
        "frames_in_view": int(in_view.sum()),
        "wrong_target_frac": M.round_or_none(float(np.mean(frames["wrong_target"])) if frames["wrong_target"]
                                             else None),
        "paused_frames": int(sum(frames["paused"])),
        "link_bytes_dropped": g.link_up.bytes_dropped + g.link_down.bytes_dropped,
        "link_bytes_corrupted": g.link_up.bytes_corrupted + g.link_down.bytes_corrupted,
        "host_crc_errors": dev.parser.crc_errors,
        "telemetry_frames": dev.telemetry_count,
        "final_camera_ypr_deg": [round(a, 3) for a in g.camera_ypr_deg()],
        "final_handle_ypr_deg": [round(a, 3) for a in g.handle_ypr_deg()],
    }
    return m


def _series(g, frames, cmd_series):
    tr = g.traces
    return {
        "t_s": np.array(tr.t_s),
        "camera_ypr_deg": np.array(tr.camera_ypr_deg),
        "handle_ypr_deg": np.array(tr.handle_ypr_deg),
        "commanded_ypr_deg": np.array(cmd_series),
        "joint_deg": np.array(tr.joint_deg),
        "effort": np.array(tr.effort),
        "frame_t_s": np.array(frames["t_s"]),
        "face_px": np.array(frames["face_px"]).reshape(-1, 2),
        "in_view": np.array(frames["in_view"], dtype=bool),
        "locked": np.array(frames["locked"], dtype=bool),
    }

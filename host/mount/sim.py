"""The simulator as camera and gimbal: ``opensteady track --sim``.

:class:`SimSession` owns one ``sim.world.SimGimbal`` (MuJoCo plant, motor and
IMU models, the real firmware, a simulated UART, a virtual camera) and
serves the tracker three things:

- a frame source: each ``latest()`` steps simulated time to the next frame
  and renders it (``t_s`` is simulated time, so runs are repeatable);
- a gimbal backend: the ordinary OpenSteady driver over :class:`SimPort`,
  a pyserial-like port whose bytes cross the simulated UART, so the real
  wire protocol and firmware are exercised. A setpoint is written
  ``latency_s`` (scenario ``[camera] latency_s``) after its frame's time;
- the scenario's injected gestures, fed to the pipeline at their times.

    session = SimSession("track-crossing", PipelineConfig())
    source, backend = session.source(), session.backend()
"""

import math
import time
from dataclasses import replace

from opensteady.host.capture import Frame
from opensteady.host.framing import offset_to_angle_deg
from opensteady.host.link import Link
from opensteady.host.mount.opensteady import OpenSteadyBackend


class SimPort:
    """The host end of the simulated UART with the slice of pyserial's port API that Link uses."""

    def __init__(self, session):
        self.session = session
        self.timeout = 0
        self._rx = bytearray()

    @property
    def in_waiting(self):
        self._rx.extend(self.session.gimbal.read())
        return len(self._rx)

    def read(self, size=1):
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def write(self, data):
        self.session.before_send()
        self.session.gimbal.write(bytes(data))
        return len(data)

    def reset_input_buffer(self):
        self._rx.clear()

    def close(self):
        pass


class SimLink(Link):
    """host.link.Link over a SimPort instead of a serial port (no handshake: the firmware is ours)."""

    def __init__(self, session):
        # Heartbeats are timed on the wall clock inside Link; in lockstep the setpoint
        # stream (every frame) feeds the firmware's failsafe, so they stay off and the
        # bytes on the simulated wire depend on simulated time only.
        super().__init__("sim://" + session.scenario.name, handshake=False, reconnect=False,
                         heartbeat_interval_s=float("inf"), port_factory=lambda: SimPort(session))
        self._session = session


class SimSource:
    """Frames from the simulator, one per call; ends when the scenario's time is up."""

    live = False
    paced = False

    def __init__(self, session):
        self.session = session
        self.status = "ok"
        self.error = None
        self.errors = 0
        self.dropped = 0

    def latest(self, timeout_s=0.1):
        return self.session.next_frame()

    @property
    def ended(self):
        return self.session.done

    def stop(self):
        pass


class SimSession:
    def __init__(self, scenario, pipeline_config, seed=0, firmware="inprocess", perception=None):
        from opensteady.host.pipeline import TrackingPipeline
        from opensteady.sim.scenario import load_scenario
        from opensteady.sim.world import SimGimbal

        self.scenario = load_scenario(scenario) if isinstance(scenario, str) else scenario
        sc = self.scenario
        if not sc.uses_vision:
            raise ValueError("scenario %r has no camera frames or no subjects; --sim needs one with both, "
                             "e.g. track-crossing" % sc.name)
        cam = sc.camera
        framing = replace(pipeline_config.framing, hfov_deg=cam.hfov_deg, vfov_deg=cam.vfov_deg)
        # in-line hands keep the run deterministic in simulated time
        self.config = replace(pipeline_config, framing=framing, hands_async=False, nominal_dt_s=1.0 / sc.vision.fps)
        self.gimbal = SimGimbal(sc, firmware=firmware, seed=seed)
        self.pipeline = TrackingPipeline(self.config, perception=perception)
        self.frame_dt_s = 1.0 / sc.vision.fps
        self.latency_s = sc.vision.latency_s
        self.frames = 0
        self.done = False
        self._send_at_s = None
        self._gestures = sorted(sc.gestures, key=lambda g: g.t_s)
        self._errors_deg = []
        self._in_view = 0
        self._scored = 0

    def clock(self):
        """Simulated seconds: the time base for the gimbal driver in lockstep."""
        return self.gimbal.time_s

    def source(self):
        return SimSource(self)

    def backend(self):
        return OpenSteadyBackend("sim://" + self.scenario.name, link=SimLink(self))

    def next_frame(self):
        t_s = self.frames * self.frame_dt_s
        if t_s > self.scenario.seconds:
            self.done = True
            return None
        self.gimbal.step_to(t_s)
        rgb = self.gimbal.render()
        self._score(t_s)
        while self._gestures and self._gestures[0].t_s <= t_s:
            self.pipeline.inject_gesture(self._gestures.pop(0).gesture)
        self._send_at_s = t_s + self.latency_s
        self.frames += 1
        return Frame(rgb, t_s, self.frames - 1, time.perf_counter())

    def before_send(self):
        """Advance simulated time to when this frame's setpoint reaches the wire."""
        if self._send_at_s is not None and self.gimbal.time_s < self._send_at_s:
            self.gimbal.step_to(self._send_at_s)

    def _score(self, t_s):
        k = self.scenario.target_index
        if k is None or t_s < self.scenario.warmup_s:
            return
        (u, v), in_view = self.gimbal.subject_face_px(k)
        self._scored += 1
        if not in_view:
            return
        self._in_view += 1
        p = self.gimbal.camera.params
        cal_x, cal_y = self.pipeline.calibration_point
        yaw = offset_to_angle_deg(u / p.width, cal_x, self.config.framing.hfov_deg)
        pitch = offset_to_angle_deg(v / p.height, cal_y, self.config.framing.vfov_deg)
        self._errors_deg.append(math.hypot(yaw, pitch))

    def metrics(self):
        """Framing error of the target's face from the calibration point, after warm-up."""
        import numpy as np

        errors = np.asarray(self._errors_deg) if self._errors_deg else None
        return {
            "scenario": self.scenario.name,
            "sim_seconds": self.gimbal.time_s,
            "frames": self.frames,
            "target_in_view_fraction": (self._in_view / self._scored) if self._scored else None,
            "target_error_deg_median": float(np.median(errors)) if errors is not None else None,
            "target_error_deg_p95": float(np.percentile(errors, 95)) if errors is not None else None,
        }

    def close(self):
        self.gimbal.close()

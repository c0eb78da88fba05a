"""The one per-frame host loop: frame -> TrackingPipeline -> setpoint -> gimbal.

Every path that closes the loop runs this class: ``opensteady track`` with a
camera, a video file or the simulated rig, ``opensteady sim`` scenarios (with
or without vision) and the benchmarks. Its parts are the capture source
(``host.capture``, or ``host.simrig``'s simulated camera), the
``host.pipeline.TrackingPipeline`` and the mount frontend
(``host.mount.Mount`` over a backend and its port). The simulator supplies
only what a real rig does: frames on its own time and a serial port.

    loop = HostLoop(source, pipeline, mount, clock=time.monotonic)
    while not loop.ended:
        step = loop.step()          # None when no frame came within idle_wait_s
        if step is not None:
            print(step.out.setpoint, step.bytes_written)

While waiting for a frame the gimbal is polled every ``poll_interval_s``
(so each telemetry frame is stamped soon after its bytes came: see
host.link and host.attitude_history). Per frame: poll the gimbal
(heartbeats, mode handshake and telemetry happen inside the backend and
link), take the gimbal's attitude at the frame's
capture time (``Mount.telemetry_at``: interpolated between telemetry samples
placed on the host clock by their device time; None once telemetry is stale),
run the pipeline with it, send the setpoint, and the fill light's level when
the pipeline's has changed. With no frame, the gimbal is still polled, so its failsafe stays
fed and telemetry keeps flowing. ``clock`` is the only time source; the
simulated rig passes its simulated clock.
"""

import time
from dataclasses import dataclass

IDLE_WAIT_S = 0.02  # the longest wait for a frame before step() returns None
# the gimbal is polled at least this often while a frame is awaited: a telemetry frame is stamped when its
# bytes are read (host.link), so the host's clock offset to the device's is learnt to within this
POLL_INTERVAL_S = 0.002


@dataclass
class LoopStep:
    frame: object  # host.capture.Frame
    out: object  # host.pipeline.PipelineOutput
    sent_s: float  # clock time the setpoint was handed to the mount
    bytes_written: int  # 0 when the port was down (or for the ``none`` gimbal)
    # the newest fresh telemetry when the setpoint went out (None when stale): where the gimbal is now, for
    # status readers (``out.telemetry`` is its attitude when the frame was captured)
    telemetry_now: object = None


class HostLoop:
    def __init__(self, source, pipeline, mount, clock=time.monotonic, idle_wait_s=IDLE_WAIT_S, services=None,
                 poll_interval_s=POLL_INTERVAL_S):
        if not poll_interval_s > 0:
            raise ValueError("poll_interval_s = %r: must be > 0" % (poll_interval_s,))
        self.services = services  # host.serve.Services (--serve): remote commands in, manual moves override
        self.source = source
        self.pipeline = pipeline
        self.mount = mount
        self.clock = clock
        self.idle_wait_s = idle_wait_s
        self.poll_interval_s = poll_interval_s
        self.light_sent = 0  # the fill light level last sent to the mount (a board boots with it off)

    @property
    def ended(self):
        """True once the source has no more frames (a file or a scenario ran out)."""
        return self.source.ended

    def _wait_frame(self):
        """The next frame, or None after ``idle_wait_s``; the gimbal is polled every ``poll_interval_s`` meanwhile."""
        # hundreds of polls a second: the bound methods are looked up once, and the clock is read once
        # per poll and once after it (the reading after the poll serves the deadline and the next wait)
        clock = self.clock
        source = self.source
        latest = source.latest
        poll = self.mount.poll
        interval_s = self.poll_interval_s
        now_s = clock()
        end_s = now_s + self.idle_wait_s
        while True:
            wait_s = end_s - now_s
            frame = latest(timeout_s=interval_s if wait_s > interval_s else (wait_s if wait_s > 0.0 else 0.0))
            if frame is not None:
                return frame
            poll(clock())
            now_s = clock()
            if now_s >= end_s or source.ended:
                return None

    def step(self):
        """Wait for one frame and process it; returns a LoopStep, or None when no frame came."""
        frame = self._wait_frame()
        if frame is None:
            return None
        for gesture in frame.gestures:
            self.pipeline.inject_gesture(gesture)
        now_s = self.clock()
        self.mount.poll(now_s)
        # the gimbal's attitude when this frame was taken (not the latest), from fresh telemetry only
        telemetry = self.mount.telemetry_at(frame.capture_s, now_s)
        if self.services is not None:
            self.services.before_step(self.pipeline)
        out = self.pipeline.step(frame.rgb, frame.t_s, telemetry)
        sent_s = self.clock()
        setpoint = out.setpoint if self.services is None else self.services.setpoint(out.setpoint, out.t_s)
        n = self.mount.send(setpoint, sent_s)
        level = getattr(self.pipeline, "light_level", None)
        if level is not None and level != self.light_sent:
            self.mount.set_light(level)
            self.light_sent = level
        return LoopStep(frame, out, sent_s, n, self.mount.telemetry_at(None, sent_s))

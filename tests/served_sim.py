"""The simulator tracked with --serve's services attached: what `opensteady track --sim --serve` runs.

Frames come from the lockstep simulator (simulated time, real MediaPipe, the
real firmware over the simulated UART); the panel, API and VISCA port listen
on loopback. ``step(n)`` advances n frames; ``run_in_background()`` keeps
stepping on a thread for clients that act on their own (a browser).
"""

import threading

from opensteady.host.control import Controls
from opensteady.host.mount import Mount
from opensteady.host.mount.sim import SimSession
from opensteady.host.outputs import FrameHub
from opensteady.host.pipeline import PipelineConfig
from opensteady.host.serve import Services

TWO_STILL_PEOPLE = """
name = "two-still-people"
description = "Two people stand still, 20 deg apart, in front of a still handle."
seconds = 600.0
warmup_s = 0.5
mode = "track"

[handle]
profile = "still"

[[subjects]]
name = "left"
image = "astronaut"
target = true
path = [[0.0, -10.0, 1.2, 0.1], [600.0, -10.0, 1.2, 0.1]]

[[subjects]]
name = "right"
image = "astronaut-mirrored"
target = false
path = [[0.0, 10.0, 1.2, 0.1], [600.0, 10.0, 1.2, 0.1]]
"""


class ServedSim:
    def __init__(self, scenario="track-crossing", web=True, visca=False, visca_host="127.0.0.1", token=None,
                 web_host="127.0.0.1"):
        from opensteady.host.visca import ViscaServer
        from opensteady.host.web import WebServer

        self.session = SimSession(scenario, PipelineConfig())
        self.pipeline = self.session.pipeline
        framing = self.session.config.framing
        self.controls = Controls(framing.hfov_deg, framing.vfov_deg)
        self.hub = FrameHub()
        self.services = Services(self.controls, self.hub)
        self.source = self.session.source()
        self.mount = Mount(self.session.backend())
        self.mount.open()
        try:
            if web:
                self.services.web = WebServer(self.controls, self.hub, web_host, 0, token)
            if visca:
                self.services.visca = ViscaServer(self.controls, visca_host, 0)
            self.services.start()
        except Exception:
            self.close()
            raise
        self.frames = 0
        self.last = None
        self._stop = threading.Event()
        self._thread = None

    def step(self, n=1):
        for _ in range(n):
            frame = self.source.latest()
            if frame is None:
                raise RuntimeError("the scenario ended")
            clock = self.session.clock
            telemetry = self.mount.poll(clock())
            self.services.before_step(self.pipeline)
            out = self.pipeline.step(frame.rgb, frame.t_s, telemetry)
            self.mount.send(self.services.setpoint(out.setpoint, out.t_s), clock())
            link = {"gimbal": self.mount.name, "connected": self.mount.connected,
                    "setpoints_sent": self.mount.setpoints_sent}
            self.services.after_step(frame, out, self.pipeline, fps=30.0, e2e_ms=None, link=link)
            self.frames += 1
            self.last = out
        return self.last

    def run_in_background(self):
        def loop():
            while not self._stop.is_set():
                self.step()

        self._thread = threading.Thread(target=loop, name="served-sim", daemon=True)
        self._thread.start()
        return self

    @property
    def telemetry(self):
        return self.mount.telemetry

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
        self.services.close()
        self.mount.close(self.session.clock())
        self.pipeline.close()
        self.session.close()

"""The simulator tracked with --serve's services attached: what `opensteady track --sim --serve` runs.

Frames come from the lockstep simulator (simulated time, real MediaPipe, the
real firmware over the simulated UART); the panel, API and VISCA port listen
on loopback. ``step(n)`` advances n frames; ``run_in_background()`` keeps
stepping on a thread for clients that act on their own (a browser).
"""

import threading

from opensteady.host.control import Controls
from opensteady.host.loop import HostLoop
from opensteady.host.outputs import FrameHub
from opensteady.host.pipeline import PipelineConfig
from opensteady.host.serve import Services
from opensteady.host.simrig import open_rig
from opensteady.sim.scenario import load_scenario

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

        self.rig, self.pipeline, self.mount = open_rig(load_scenario(scenario), PipelineConfig())
        framing = self.pipeline.config.framing
        self.controls = Controls(framing.hfov_deg, framing.vfov_deg)
        self.hub = FrameHub()
        self.services = Services(self.controls, self.hub)
        try:
            self.mount.open()
            if web:
                self.services.web = WebServer(self.controls, self.hub, web_host, 0, token)
            if visca:
                self.services.visca = ViscaServer(self.controls, visca_host, 0)
            self.services.start()
        except Exception:
            self.close()
            raise
        self.loop = HostLoop(self.rig.camera(), self.pipeline, self.mount, clock=self.rig.clock,
                             services=self.services)
        self.frames = 0
        self.last = None
        self._stop = threading.Event()
        self._thread = None

    def step(self, n=1):
        """Advance n camera frames through the host loop (as `opensteady track --sim --serve` does)."""
        done = 0
        while done < n:
            if self.loop.ended:
                raise RuntimeError("the scenario ended")
            step = self.loop.step()
            if step is None:
                continue
            link = {"gimbal": self.mount.name, "connected": self.mount.connected,
                    "setpoints_sent": self.mount.setpoints_sent, "light": self.mount.light_status}
            self.services.after_step(step.frame, step.out, self.pipeline, telemetry=step.telemetry_now, fps=30.0,
                                     e2e_ms=None, link=link)
            self.frames += 1
            done += 1
            self.last = step.out
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
        self.mount.close(self.rig.clock())
        self.pipeline.close()
        self.rig.close()

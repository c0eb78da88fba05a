"""``--serve``: the control panel, JSON API, MJPEG stream, VISCA port and virtual webcam, wired to the loop.

:class:`Services` owns them all and gives the tracking loop four calls, so the
loop needs only a few lines to take part:

    services = Services.from_args(args, pipeline.config.framing, fps=30)  # None without --serve
    services.start()                                   # prints the addresses
    # per frame:
    services.before_step(pipeline)                     # apply queued commands
    out = pipeline.step(frame.rgb, frame.t_s, telemetry)
    setpoint = services.setpoint(out.setpoint, out.t_s)    # a manual move overrides tracking
    mount.send(setpoint, now)
    services.after_step(frame, out, pipeline, fps=..., e2e_ms=..., link=...)   # publish + status
    ...
    services.close()

Nothing here blocks the loop: commands are queued, frames go into a
one-frame slot (host.outputs.FrameHub), status is a snapshot.
"""

import logging

from opensteady.host.outputs import VIEWS, FrameHub

log = logging.getLogger(__name__)


def add_arguments(parser):
    g = parser.add_argument_group("working with other apps (--serve)")
    g.add_argument("--serve", action="store_true",
                   help="start the browser control panel + JSON API, the MJPEG stream and the VISCA port")
    g.add_argument("--serve-host", default="127.0.0.1", metavar="ADDR",
                   help="address for the panel, stream and VISCA (default 127.0.0.1; anything else needs --serve-token)")
    g.add_argument("--serve-port", type=int, default=8080, metavar="N", help="HTTP port (default 8080; 0 = any free)")
    g.add_argument("--serve-token", metavar="SECRET", help="required by every request when serving off localhost")
    g.add_argument("--no-panel", action="store_true", help="--serve without the HTTP panel, API and stream")
    g.add_argument("--no-visca", action="store_true", help="--serve without the VISCA-over-IP port")
    g.add_argument("--visca-port", type=int, default=52381, metavar="N", help="VISCA over IP UDP port (default 52381)")
    g.add_argument("--stream-view", choices=VIEWS, default="clean",
                   help="what /stream.mjpg and the virtual camera show by default: the clean picture or the HUD")
    g.add_argument("--virtual-camera", action="store_true",
                   help="also show the picture as a webcam (pyvirtualcam: v4l2loopback, OBS Virtual Camera)")
    g.add_argument("--virtual-camera-device", metavar="DEV", help="e.g. /dev/video10 (default: the first free one)")


def hud_picture(rgb, out, status):
    """The picture with the HUD drawn on it, as RGB (host.hud draws on BGR)."""
    import cv2

    from opensteady.host.hud import draw_hud

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    draw_hud(bgr, out, status)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Services:
    def __init__(self, controls, hub, web=None, visca=None, vcam=None):
        self.controls = controls
        self.hub = hub
        self.web, self.visca, self.vcam = web, visca, vcam
        self.messages = []  # what the last commands did, newest last (shown in the HUD)
        self._last_t_s = None

    @classmethod
    def from_args(cls, args, framing_config, width=640, height=480, fps=30.0, stream=True):
        """Build what the flags ask for (not started); None without --serve or --virtual-camera."""
        if not (getattr(args, "serve", False) or getattr(args, "virtual_camera", False)):
            return None
        from opensteady.host.control import Controls

        controls = Controls(framing_config.hfov_deg, framing_config.vfov_deg)
        hub = FrameHub()
        services = cls(controls, hub)
        try:
            if args.serve and not args.no_panel:
                from opensteady.host.web import WebServer

                services.web = WebServer(controls, hub, args.serve_host, args.serve_port, args.serve_token,
                                         args.stream_view)
            if args.serve and not args.no_visca:
                from opensteady.host.visca import ViscaServer

                services.visca = ViscaServer(controls, args.serve_host, args.visca_port)
            if args.virtual_camera:
                from opensteady.host.outputs import VirtualCamera

                services.vcam = VirtualCamera(hub, width, height, fps, args.stream_view,
                                              device=args.virtual_camera_device)
        except Exception:
            services.close()
            raise
        return services

    def start(self, stream=None):
        """Start everything; prints what is where to ``stream`` (None: don't print)."""
        if self.web is not None:
            self.web.start()
        if self.visca is not None:
            self.visca.start()
        if self.vcam is not None:
            self.vcam.start()
        if stream is not None:
            for line in self.describe():
                print(line, file=stream, flush=True)
        return self

    def describe(self):
        lines = []
        if self.web is not None:
            token = "?token=%s" % self.web.token if self.web.token else ""
            lines.append("control panel: %s%s" % (self.web.url, token))
            lines.append("video stream (MJPEG, for OBS, VLC, ffmpeg): %sstream.mjpg%s" % (self.web.url, token))
        if self.visca is not None:
            lines.append("VISCA over IP: udp://%s:%d" % (self.visca.host, self.visca.port))
        if self.vcam is not None:
            lines.append("virtual camera: %s (pick it as the camera in your video-call app)" % self.vcam.device)
        return lines

    # --- the loop's calls ------------------------------------------------------------
    def before_step(self, pipeline):
        done = self.controls.apply(pipeline)
        if done:
            self.messages.extend(done)
            del self.messages[:-5]
        return done

    def setpoint(self, setpoint, t_s):
        dt_s = 0.0 if self._last_t_s is None else max(0.0, t_s - self._last_t_s)
        self._last_t_s = t_s
        return self.controls.override(setpoint, dt_s)

    def after_step(self, frame, out, pipeline, hud_status=None, telemetry=None, **extra):
        """Publish this frame to the outputs and a status snapshot to the panel/API/VISCA (``telemetry``: the
        gimbal's newest, host.loop.LoopStep.telemetry_now; else the attitude the frame was processed with)."""
        status = dict(hud_status or {}, message=self.messages[-1] if self.messages else None)
        self.hub.publish(frame.rgb, frame.t_s, frame.index, captured_at=getattr(frame, "grabbed_at", None),
                         hud=lambda: hud_picture(frame.rgb, out, dict(status, **extra)))
        self.controls.update_status(out, pipeline, telemetry=telemetry, frame=frame.index, **extra)

    def close(self):
        for part in (self.vcam, self.visca, self.web):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    log.exception("closing %s", type(part).__name__)
        self.hub.close()

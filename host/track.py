"""Track a subject with a webcam, a video file or the simulator, and drive a gimbal.

    opensteady track --camera 0 --port /dev/ttyACM0      # OpenSteady firmware on a board
    opensteady track --camera 0 --gimbal simplebgc --port /dev/ttyUSB0
    opensteady track --sim                                # simulated camera and gimbal
    opensteady track --video clip.mp4 --headless --json --gimbal none

Each frame goes through the one host loop (host/loop.py): capture (own
thread, newest frame wins; with --sim the simulated rig's camera, host/simrig.py)
-> TrackingPipeline (vision, target, gestures, framing controller) -> mount
and output driver. Around it: a preview window and HUD, a JSON lines session
log, and a JSON summary (with --sim also the scenario metrics that
``opensteady sim`` prints). Settings: built-in defaults, then
``--config FILE.toml`` (docs/config.example.toml), then these flags.
"""

import json
import logging
import os
import signal
import sys
import time

log = logging.getLogger(__name__)


def add_arguments(parser):
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, metavar="INDEX", help="webcam index (default: camera.source, 0)")
    src.add_argument("--video", metavar="PATH", help="read frames from a video file instead of a camera")
    src.add_argument("--sim", action="store_true", help="use the simulator's virtual camera and gimbal")
    parser.add_argument("--config", metavar="FILE.toml", help="settings file (see docs/config.example.toml)")
    parser.add_argument("--gimbal", choices=("auto", "opensteady", "simplebgc", "mavlink", "sim", "none"),
                        help="output driver (auto: sim with --sim, opensteady with --port, else an OpenSteady board found by its USB IDs, else none)")
    parser.add_argument("--port", metavar="URL", help="serial port or pyserial URL (/dev/ttyACM0, COM3, socket://h:p)")
    parser.add_argument("--baud", type=int, help="serial baud rate (default 115200)")
    parser.add_argument("--calibration", metavar="PRESET|X,Y",
                        help="where the subject is held: centre, top-third, left-third, ... or X,Y in 0..1")
    parser.add_argument("--portrait", action="store_true", help="roll the camera 90 deg (portrait framing)")
    parser.add_argument("--lost-action", choices=("hold", "recentre", "sweep"), help="after losing the target")
    parser.add_argument("--no-hands", action="store_true", help="face detection only (no gestures; faster)")
    parser.add_argument("--pose", action="store_true", help="also run body pose (keeps the target when the face turns)")
    parser.add_argument("--mirror", action="store_true", help="the camera image is mirrored (selfie view)")
    parser.add_argument("--headless", action="store_true", help="no preview window")
    parser.add_argument("--json", action="store_true",
                        help="stdout: one JSON status line per second and a JSON summary line at exit")
    parser.add_argument("--log", metavar="FILE.jsonl", help="session log path (default: in the output directory)")
    parser.add_argument("--no-log", action="store_true", help="do not write a session log")
    parser.add_argument("--output-dir", metavar="DIR", help=output_dir_help())
    parser.add_argument("--no-pace", action="store_true",
                        help="video files: process every frame in order instead of playing in real time")
    parser.add_argument("--loop", action="store_true", help="video files: start again at the end (never ends)")
    parser.add_argument("--scenario", default="track-crossing", help="--sim: scenario name or file")
    parser.add_argument("--seed", type=int, default=0, help="--sim: random seed (runs are repeatable per seed)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    parser.add_argument("--max-seconds", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--motors-off-on-exit", action="store_true", help="switch the motors off at exit")
    from opensteady.host.serve import add_arguments as add_serve_arguments

    add_serve_arguments(parser)


def output_dir_help():
    from opensteady.host.config import OUTPUT_DIR_ENV, default_output_dir

    env = {k: v for k, v in os.environ.items() if k != OUTPUT_DIR_ENV}
    text = ("photos, videos and session logs go here (default: [output] dir in --config, else $%s, else %s)"
            % (OUTPUT_DIR_ENV, default_output_dir(env)))
    return text.replace("%", "%%")  # argparse formats help strings


def _percentile(values, q):
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def apply_flags(settings, args):
    """CLI flags over the file's settings (each validated like the file)."""
    from opensteady.host.config import set_value

    if args.camera is not None:
        set_value(settings, "camera", "source", args.camera, "--camera")
    if args.video is not None:
        set_value(settings, "camera", "source", args.video, "--video")
    for flag, section, key in (("gimbal", "gimbal", "driver"), ("port", "gimbal", "port"), ("baud", "gimbal", "baud"),
                               ("calibration", "calibration", "point"), ("lost_action", "framing", "lost_action"),
                               ("output_dir", "output", "dir")):
        value = getattr(args, flag)
        if value is not None:
            set_value(settings, section, key, value, "--" + flag.replace("_", "-"))
    if args.portrait:
        set_value(settings, "framing", "orientation", "portrait", "--portrait")
    if args.no_hands:
        set_value(settings, "vision", "hands", False, "--no-hands")
    if args.pose:
        set_value(settings, "vision", "pose", True, "--pose")
    if args.mirror:
        set_value(settings, "camera", "mirror", True, "--mirror")
    if args.motors_off_on_exit:
        set_value(settings, "gimbal", "motors_off_on_exit", True, "--motors-off-on-exit")
    g = settings["gimbal"]
    if g["driver"] == "auto":
        # no --port: look for an OpenSteady board by its USB IDs at start-up (host.autodetect)
        g["driver"] = "sim" if args.sim else ("opensteady" if g["port"] else "detect")
    if args.sim and g["driver"] != "sim":
        from opensteady.host.config import ConfigError

        raise ConfigError("--sim drives the simulated gimbal; it cannot be combined with --gimbal %s" % g["driver"])
    return settings


def _backend_options(settings):
    driver = settings["gimbal"]["driver"]
    alive = {"alive_s": settings["gimbal"]["alive_s"]}
    if driver == "mavlink":
        return dict(settings["mavlink"], **alive)
    if driver == "simplebgc":
        return dict(settings["simplebgc"], **alive)
    if driver == "opensteady":
        return alive
    return {}


class Stats:
    """Running counts and latencies for status lines and the summary."""

    def __init__(self):
        self.frames = 0
        self.frames_with_target = 0
        self.pipeline_ms = []
        self.e2e_ms = []
        self.stage_ms = {}
        self.events = []
        self.state = None  # the framing controller's state on the last frame
        self.target = None  # the target's source on the last frame: face, body, predicted, none
        self._window = []  # wall times of the frames in the last second

    def add(self, out, e2e_ms, now):
        self.frames += 1
        if out.target.locked and out.target.source in ("face", "body"):
            self.frames_with_target += 1
        self.pipeline_ms.append(out.latency_ms["total"])
        for stage, ms in out.latency_ms.items():
            self.stage_ms.setdefault(stage, []).append(ms)
        self.e2e_ms.append(e2e_ms)
        self.state = out.setpoint.state
        self.target = out.target.source
        self._window.append(now)
        while self._window and now - self._window[0] > 1.0:
            self._window.pop(0)
        self.events.extend({"t_s": e.t_s, "kind": e.kind, "detail": e.detail} for e in out.events)

    @property
    def fps(self):
        return float(len(self._window))

    def summary(self):
        return {
            "frames": self.frames,
            "frames_with_target": self.frames_with_target,
            "pipeline_ms_p50": _percentile(self.pipeline_ms, 50),
            "pipeline_ms_p95": _percentile(self.pipeline_ms, 95),
            "e2e_ms_p50": _percentile(self.e2e_ms, 50),
            "e2e_ms_p95": _percentile(self.e2e_ms, 95),
            "stage_ms_p50": {k: _percentile(v, 50) for k, v in self.stage_ms.items()},
        }


class MediaOutput:
    """Photos (after the countdown) and video recording of the raw camera frames."""

    def __init__(self, directory, fps):
        self.directory = directory
        self.fps = fps
        self.photos = []
        self.videos = []
        self._writer = None

    def _path(self, prefix, ext, index):
        os.makedirs(self.directory, exist_ok=True)
        return os.path.join(self.directory, "%s-%s-%05d.%s" % (prefix, time.strftime("%Y%m%d-%H%M%S"), index, ext))

    def photo(self, rgb, index):
        import cv2

        path = self._path("photo", "jpg", index)
        if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            log.error("could not write the photo %s", path)
            return None
        self.photos.append(path)
        return path

    def record(self, on, rgb, index):
        import cv2

        if on and self._writer is None:
            path = self._path("video", "mp4", index)
            h, w = rgb.shape[:2]
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), float(self.fps), (w, h))
            if not writer.isOpened():
                log.error("could not start recording to %s", path)
                return
            self._writer = writer
            self.videos.append(path)
        elif not on and self._writer is not None:
            self.close()
        if self._writer is not None:
            self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _emit(record):
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _make_source(settings, args):
    from opensteady.host.capture import CameraSource, VideoFileSource

    cam = settings["camera"]
    source = cam["source"]
    if isinstance(source, str) and not source.isdigit():
        return VideoFileSource(source, paced=not args.no_pace, loop=args.loop)
    return CameraSource(int(source), cam["width"], cam["height"], cam["fps"], cam["retry_s"])


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def run(args):
    from opensteady.host.capture import CaptureError
    from opensteady.host.config import ConfigError, build_pipeline_config, load_config
    from opensteady.host.errors import CommandError, check_output_folder

    try:
        settings = apply_flags(load_config(args.config), args)
        pipeline_config = build_pipeline_config(settings)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    if args.log:
        check_output_folder(args.log, "session log")  # never create a folder the user named
    g = settings["gimbal"]
    try:
        if args.sim:
            # The simulated rig: its camera, its serial port into the firmware, its clock.
            from opensteady.host.simrig import ScenarioRecorder, open_rig
            from opensteady.sim.scenario import load_scenario

            rig, pipeline, mount = open_rig(load_scenario(args.scenario), pipeline_config, seed=args.seed,
                                            stall_s=g["stall_s"], telemetry_max_age_s=g["telemetry_max_age_s"])
            return _track(args, settings, rig.camera(), pipeline, mount, rig.clock, rig,
                          ScenarioRecorder(rig, pipeline, mount))
    except (CaptureError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    from opensteady.host.pipeline import PipelineLoader

    # MediaPipe's import and graphs are most of the start-up. The board is found and handshakes first
    # and gets a hold setpoint at once; then the models load on a thread while the camera opens and the
    # gimbal is held (_hold_while_loading).
    loader = PipelineLoader(pipeline_config, start=False)  # started once the first setpoint is out
    try:
        backend = _create_backend(settings)
        source = _make_source(settings, args)
    except (CaptureError, ValueError) as exc:
        loader.discard()
        raise CommandError(str(exc)) from None
    except BaseException:
        loader.discard()
        raise
    from opensteady.host.capture import FrameGrabber
    from opensteady.host.mount import Mount

    grabber = FrameGrabber(source, retry_s=settings["camera"]["retry_s"], give_up_s=settings["camera"]["give_up_s"])
    mount = Mount(backend, stall_s=g["stall_s"], telemetry_max_age_s=g["telemetry_max_age_s"])
    return _track(args, settings, grabber, loader, mount, time.monotonic)


def _create_backend(settings):
    from opensteady.host.mount import create_backend

    g = settings["gimbal"]
    if g["driver"] == "detect":
        g["driver"], g["port"] = _detect_board(g["baud"])
    return create_backend(g["driver"], g["port"] or None, g["baud"], **_backend_options(settings))


def _track(args, settings, source, pipeline, mount, clock, rig=None, recorder=None):
    """Open the gimbal and run the host loop on ``source`` until it ends, a limit, q or Ctrl-C."""
    from opensteady.host.config import output_dir
    from opensteady.host.errors import EXIT_BUG, EXIT_FAILED, EXIT_USAGE, CommandError, fail, link_exit_code
    from opensteady.host.link import LinkError
    from opensteady.host.loop import HostLoop
    from opensteady.host.pipeline import PipelineLoader
    from opensteady.host.session_log import SessionLog, frame_record

    out_dir = output_dir(settings)
    g = settings["gimbal"]
    session = None
    try:
        mount.open()
        if not args.no_log and (args.log or settings["output"]["session_log"]):
            path = args.log or os.path.join(out_dir, "session-%s.jsonl" % time.strftime("%Y%m%d-%H%M%S"))
            session = SessionLog(path)
            session.write({"type": "start", "wall_time": time.time(), "settings": settings, "argv": sys.argv[1:]})
    except (LinkError, ValueError, OSError) as exc:
        mount.close(clock())
        _discard(pipeline)
        if rig is not None:
            rig.close()
        code = link_exit_code(exc) if isinstance(exc, LinkError) else EXIT_USAGE
        raise CommandError(str(exc), code) from None
    # wall-clock stamps of the start-up (opensteady bench apps subtracts its launch time) and the holds sent
    startup = {"first_setpoint_unix_s": None, "models_ready_unix_s": None, "first_tracked_setpoint_unix_s": None,
               "hold_setpoints": 0}
    started_early = False
    interrupted_while_loading = False
    if isinstance(pipeline, PipelineLoader):
        loader = pipeline
        try:
            _hold(mount, clock, loader.config, startup)
            loader.start()
            if getattr(source.source, "live", True):
                source.start()  # a camera opens (0.5-1 s) beside the models; a file waits, so no frame is skipped
                started_early = True
            pipeline = _hold_while_loading(loader, mount, clock, startup)
        except KeyboardInterrupt:  # Ctrl-C while loading: the summary and safe shutdown below
            interrupted_while_loading = True
        except BaseException:  # loading failed: leave nothing half-open
            mount.close(clock())
            source.stop()
            loader.discard()
            if session is not None:
                session.close()
            raise

    try:
        services = _start_services(args, settings, pipeline)
    except (ValueError, OSError, RuntimeError) as exc:
        mount.close(clock())
        _discard(pipeline)
        if rig is not None:
            rig.close()
        raise CommandError(str(exc)) from None
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    media = MediaOutput(out_dir, settings["camera"]["fps"])
    grabber = source.start() if hasattr(source, "start") and not started_early else source
    window = None
    if not args.headless:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # OpenCV's Qt backend aborts the whole process without a display; don't let it try.
            log.warning("no display (DISPLAY is not set): running without the preview window (--headless)")
        else:
            from opensteady.host.hud import PreviewWindow

            try:
                window = PreviewWindow()
            except Exception as exc:  # OpenCV built without GUI support
                log.warning("no preview window (%s); running headless", exc)
    if rig is None:
        mount.start_watchdog(clock)  # on simulated time nothing can stall
    loop = HostLoop(grabber, pipeline, mount, clock=clock, services=services)

    stats = Stats()
    started = clock()
    next_status = started + 1.0
    exit_reason = "end_of_stream"
    status = {"gimbal": mount.name, "gesture": None, "message": None}
    gesture_shown_until = 0.0
    code = 0
    try:
        if interrupted_while_loading:
            raise KeyboardInterrupt
        while True:
            now = clock()
            if args.max_seconds is not None and now - started >= args.max_seconds:
                exit_reason = "max_seconds"
                break
            if args.max_frames is not None and stats.frames >= args.max_frames:
                exit_reason = "max_frames"
                break
            step = loop.step()
            if step is None:
                if loop.ended:
                    if getattr(grabber, "gave_up", False):
                        exit_reason = "camera_lost"
                    break
                if window is not None and getattr(grabber, "error", None) is not None:
                    if _waiting_preview(window, grabber, mount) == "quit":
                        exit_reason = "quit"
                        break
                if args.json and clock() >= next_status:
                    next_status = clock() + 1.0
                    _emit(_status_line(stats, mount, grabber, clock(), started))
                continue
            if startup["first_tracked_setpoint_unix_s"] is None:
                startup["first_tracked_setpoint_unix_s"] = time.time()
                if startup["first_setpoint_unix_s"] is None:
                    startup["first_setpoint_unix_s"] = startup["first_tracked_setpoint_unix_s"]
            if recorder is not None:
                recorder.record(step)
            frame, out = step.frame, step.out
            e2e_ms = (time.perf_counter() - frame.grabbed_at) * 1e3
            now = clock()
            stats.add(out, e2e_ms, now)
            if services is not None:
                services.after_step(frame, out, pipeline, hud_status=status, telemetry=step.telemetry_now,
                                    fps=stats.fps, e2e_ms=e2e_ms,
                                    link=_link_status(mount))
            for event in out.events:
                if event.kind == "photo_now":
                    path = media.photo(frame.rgb, frame.index)
                    status["message"] = "photo saved: %s" % path if path else "photo failed"
                elif event.kind == "gesture":
                    status["gesture"] = event.detail
                    gesture_shown_until = now + 2.0
                elif event.kind == "action":
                    status["message"] = "action: %s" % event.detail
                log.info("event %s %s at %.2f s", event.kind, event.detail, event.t_s)
            if now > gesture_shown_until:
                status["gesture"] = None
            media.record(out.recording, frame.rgb, frame.index)
            if session is not None:
                session.write(frame_record(out, frame.index, e2e_ms))
            if window is not None:
                if _preview(window, frame, out, stats, mount, grabber, status, e2e_ms, pipeline) == "quit":
                    exit_reason = "quit"
                    break
            if args.json and now >= next_status:
                next_status = now + 1.0
                _emit(_status_line(stats, mount, grabber, now, started))
    except KeyboardInterrupt:
        exit_reason = "interrupted"
        code = 130
    except Exception as exc:  # a bug: the summary still says what really ended the run
        log.debug("the run failed", exc_info=True)
        exit_reason = "error: %s: %s" % (type(exc).__name__, exc)
        code = fail("track", "internal error %s: %s\nThis is a bug in opensteady: please report it with the "
                    "command line and the output of `opensteady -vv track ...`" % (type(exc).__name__, exc), EXIT_BUG)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        sim_result = recorder.result() if recorder is not None else None
        if services is not None:
            services.close()
        mount.close(clock(), motors_off=g["motors_off_on_exit"])
        grabber.stop()
        _discard(pipeline)
        if rig is not None:
            rig.close()
        media.close()
        if window is not None:
            window.close()
        summary = dict(stats.summary(), type="summary", exit=exit_reason, gimbal=mount.name,
                       dropped_frames=getattr(grabber, "dropped", 0), setpoints_sent=mount.setpoints_sent,
                       bytes_written=mount.bytes_written, stall_stops=mount.stall_stops,
                       camera_errors=getattr(grabber, "errors", 0), events=stats.events,
                       gimbal_rejected=mount.rejected, gimbal_problem=mount.device_problem,
                       photos=media.photos, videos=media.videos,
                       log=session.path if session is not None else None, startup=startup)
        if sim_result is not None:
            summary["sim"] = sim_result.metrics
        if session is not None:
            session.write(summary)
            session.close()
        if args.json:
            _emit(summary)
        else:
            print("%d frames, target seen in %d; pipeline p50 %s ms, p95 %s ms; %s" % (
                summary["frames"], summary["frames_with_target"], _fmt(summary["pipeline_ms_p50"]),
                _fmt(summary["pipeline_ms_p95"]), exit_reason))
            if session is not None:
                print("session log: %s (plot it with `opensteady replay %s --plot out.png`)" % (session.path, session.path))
    if code == 0 and ((stats.frames == 0 and getattr(grabber, "errors", 0)) or exit_reason == "camera_lost"):
        # the camera never delivered a frame, or went away for longer than camera.give_up_s
        code = fail("track", "%s (check the cable, or --camera another index)" % grabber.error, EXIT_FAILED)
    return code


def _discard(pipeline):
    from opensteady.host.pipeline import PipelineLoader

    if isinstance(pipeline, PipelineLoader):
        pipeline.discard()
    else:
        pipeline.close()


def _hold(mount, clock, pipeline_config, startup):
    """One hold setpoint: zero rates in the earth frame at the configured roll (as before a target is locked)."""
    from opensteady.host.framing import SetpointCommand

    now = clock()
    mount.poll(now)
    mount.send(SetpointCommand(roll_deg=pipeline_config.framing.roll_deg), now)
    startup["hold_setpoints"] += 1
    if startup["first_setpoint_unix_s"] is None:
        startup["first_setpoint_unix_s"] = time.time()


def _hold_while_loading(loader, mount, clock, startup, period_s=0.05):
    """Hold the gimbal while the models load: the first setpoint goes out as soon as the link is up.

    Zero rates in the earth frame at the configured roll (what the framing
    controller sends before it has a target), every ``period_s``, so neither
    the firmware's link failsafe nor the stall watchdog trips. Returns the
    loaded pipeline; raises what loading raised.
    """
    while True:
        _hold(mount, clock, loader.config, startup)
        if loader.wait(period_s):
            pipeline = loader.result()
            startup["models_ready_unix_s"] = time.time()
            startup["models_load_s"] = round(loader.seconds, 3)
            return pipeline


def _detect_board(baud):
    """("opensteady", port) for a board found by USB IDs and handshake, else ("none", "") with a note why."""
    from opensteady.host.autodetect import BoardNotFound, find_board

    try:
        port, version = find_board(baud=baud)
    except BoardNotFound as exc:
        log.warning("%s Running without a gimbal.", exc)
        return "none", ""
    print("OpenSteady board found on %s (firmware %s.%s)" % (port, version.get("fw_major"), version.get("fw_minor")),
          file=sys.stderr)
    return "opensteady", port


def _start_services(args, settings, pipeline):
    """--serve / --virtual-camera (host.serve); None when neither is asked for."""
    from opensteady.host.serve import Services

    cam = settings["camera"]
    services = Services.from_args(args, pipeline.config.framing, cam["width"], cam["height"], cam["fps"])
    if services is not None:
        services.start(stream=sys.stderr if args.json else sys.stdout)
    return services


def _link_status(mount):
    return {"gimbal": mount.name, "connected": mount.connected, "setpoints_sent": mount.setpoints_sent,
            "bytes_written": mount.bytes_written, "stall_stops": mount.stall_stops, "telemetry": mount.telemetry,
            "problem": mount.device_problem, "light": mount.light_status}


def _fmt(v):
    return "-" if v is None else "%.1f" % v


def _status_line(stats, mount, grabber, now_s, started_s):
    recent = stats.pipeline_ms[-max(1, int(stats.fps)):]
    age_s = mount.history.age_s(now_s)
    return {
        "type": "status",
        "elapsed_s": round(now_s - started_s, 2),
        "frames": stats.frames,
        "frames_with_target": stats.frames_with_target,
        "fps": stats.fps,
        "state": stats.state,
        "target": stats.target,
        "pipeline_ms_p50": _percentile(recent, 50),
        "gimbal": mount.name,
        "gimbal_connected": mount.connected,
        "gimbal_problem": mount.device_problem,
        "telemetry": mount.telemetry,
        # seconds since the newest telemetry sample arrived (fresh up to gimbal.telemetry_max_age_s), or null
        "telemetry_age_s": None if age_s is None else round(age_s, 3),
        "camera": getattr(grabber, "status", "ok"),
        "camera_error": str(grabber.error) if getattr(grabber, "error", None) else None,
        "camera_errors": getattr(grabber, "errors", 0),
        "dropped_frames": getattr(grabber, "dropped", 0),
    }


def _waiting_preview(window, grabber, mount):
    """Keep the window alive while the camera is away: say so, and still take keys."""
    import numpy as np

    from opensteady.host.hud import RED, WHITE, put_text

    img = np.zeros((480, 640, 3), np.uint8)
    put_text(img, "CAMERA: %s" % grabber.error, (8, 30), RED)
    put_text(img, "retrying...  (q to quit)", (8, 54), WHITE)
    put_text(img, "%s: %s" % (mount.name, "connected" if mount.connected else "DISCONNECTED, retrying"), (8, 78), WHITE)
    return window.show(img)


def _preview(window, frame, out, stats, mount, grabber, status, e2e_ms, pipeline):
    import cv2

    from opensteady.host.calibration import PRESETS
    from opensteady.host.hud import PRESET_CYCLE, draw_hud

    img = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
    problem = mount.device_problem
    if problem:
        status = dict(status, message=problem)  # silent, a REPL, or refused values: say so on screen
    draw_hud(img, out, dict(status, fps=stats.fps, e2e_ms=e2e_ms, connected=mount.connected,
                            camera_error=str(grabber.error) if getattr(grabber, "error", None) else None))
    action = window.show(img)
    click = window.take_click()
    if click is not None:
        pipeline.set_calibration_point(*click)
        status["message"] = "calibration point set to (%.2f, %.2f)" % click
    if action == "calibration_centre":
        pipeline.set_calibration_point(*PRESETS["centre"])
    elif action == "calibration_next":
        names = PRESET_CYCLE
        current = next((n for n in names if PRESETS[n] == pipeline.calibration_point), names[-1])
        name = names[(names.index(current) + 1) % len(names)]
        pipeline.set_calibration_point(*PRESETS[name])
        status["message"] = "calibration point: %s" % name
    elif action in ("pause_toggle", "photo", "record_toggle", "recentre", "light_cycle"):
        pipeline.request_action(action)
    return action

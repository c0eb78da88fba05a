"""Run a closed-loop gimbal simulation scenario (``opensteady sim``).

With no arguments it runs the ``track-crossing`` scenario (a person crossing
the frame, real vision in the loop, firmware in-process) for 10 simulated
seconds, and the naive baseline on the same run; it prints the metrics, each
with what it means and what is good, and writes ./opensteady-sim.png (where the
face was in the picture against the calibration point, OpenSteady beside the
baseline). No camera, board or GPU needed.

The run is the application's own host loop (host/loop.py: TrackingPipeline,
mount, OpenSteady backend and link) on the simulated rig (host/simrig.py),
so ``opensteady track --sim --scenario X --seed N`` reports the same metrics.

    opensteady sim
    opensteady sim --scenario stabilize-walking --firmware micropython --json
    opensteady sim --scenario track-crossing --baseline --plot out.png
    opensteady sim --list
"""

import json
import math
import os
import sys

from opensteady.host.errors import EXIT_FAILED, EXIT_USAGE, fail

DEFAULT_SCENARIO = "track-crossing"
DEFAULT_PLOT = "opensteady-sim.png"
DEFAULT_VIDEO = "opensteady-sim.mp4"


def add_arguments(parser):
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO,
                        help="bundled scenario name or a .toml file (default: %(default)s; --list shows them)")
    parser.add_argument("--face", metavar="IMAGE", help="photo of a person to use instead of the astronaut")
    parser.add_argument("--seconds", type=float, metavar="S", help="simulated seconds (default: the scenario's)")
    parser.add_argument("--firmware", choices=("inprocess", "micropython", "compiled"), default="inprocess",
                        help="run the firmware in this Python process, in the real MicroPython binary, or in "
                             "this process compiled with Cython (about 2x faster; built once, cached)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (runs are repeatable per seed)")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="host settings, as for `opensteady track` (framing, tracker, vision)")
    parser.add_argument("--tracker", choices=("opensteady", "baseline"),
                        help="tracker on the host side (default: the scenario's, normally opensteady)")
    parser.add_argument("--baseline", action="store_true",
                        help="also run the naive baseline tracker on the same scenario and seed, and report the ratio")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="write a plot here (default: %s when run without arguments)" % DEFAULT_PLOT)
    parser.add_argument("--video", metavar="OUT.mp4",
                        help="write what the gimbal's camera saw, with the HUD (default: %s when run without "
                             "arguments)" % DEFAULT_VIDEO)
    parser.add_argument("--light", type=int, choices=(0, 1, 2, 3), metavar="LEVEL",
                        help="the fill light level the host asks for (0 off, 1..3; default: the scenario's [light] level)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="firmware_set",
                        help="a firmware config key for this run, over the scenario's [firmware] table "
                             "(repeatable; e.g. --set torque_ff_mu=0.005)")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object on the last line")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--list", action="store_true", help="list the bundled scenarios and exit")


def _fail(message, code=EXIT_USAGE):
    return fail("sim", message, code)


# name -> (what it means, what is good); printed beside each figure
EXPLAIN = {
    "scenario": ("the simulated situation (opensteady sim --list)", None),
    "firmware": ("where the firmware ran: in this process (interpreted or compiled), or in the real MicroPython VM", None),
    "tracker": ("what turned camera frames into gimbal commands", None),
    "sim_seconds": ("simulated time", None),
    "wall_seconds": ("how long it took on this computer", None),
    "realtime_factor": ("simulated seconds per real second", "above 1 is faster than real time"),
    "load_seconds": ("loading the firmware's code before the run (the compiled mode builds it the first time); "
                     "not in the times above", None),
    "tracking_rms_frac": ("how far the face sat from the calibration point, RMS, in frame widths",
                          "lower is better; below 0.05 looks steady on screen"),
    "tracking_lost_frac": ("share of the time the person was in view but not followed",
                           "0 is best"),
    "camera_jitter_rms_deg": ("shake left in the camera after stabilisation (above 0.5 Hz), degrees RMS",
                              "lower is better; compare with the handle's motion"),
    "handle_motion_rms_deg": ("how much the hand-held handle moved, degrees RMS", "the disturbance, not a score"),
    "max_motor_effort": ("the highest motor torque as a share of its peak", "below 1 leaves torque to spare"),
    "faults": ("faults the firmware reported", "none is good"),
    "baseline_tracking_rms_frac": ("the same error for a naive tracker (bang-bang steps on the pixel offset)",
                                   "what OpenSteady should beat"),
    "tracking_rms_vs_baseline": ("OpenSteady's error divided by the baseline's", "below 1 means OpenSteady framed "
                                 "better; 0.3 means 70% less error"),
}


def _fmt(v):
    if isinstance(v, float):
        return "%.4g" % v
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) or "none"
    return str(v)


def _print_metrics(m, stream):
    for k, (meaning, good) in EXPLAIN.items():
        if k in m:
            print("%-27s %-10s %s%s" % (k, _fmt(m[k]), meaning, "" if good is None else " (%s)" % good), file=stream)


def run(args):
    from opensteady.sim.scenario import ScenarioError, load_scenario, scenario_names

    if args.list:
        for name in scenario_names():
            sc = load_scenario(name)
            print("%-22s %s" % (name, sc.description))
        return 0
    no_args = (args.scenario == DEFAULT_SCENARIO and args.plot is None and not args.json and args.seconds is None
               and args.face is None and not args.baseline and args.tracker is None)
    plot_path = args.plot or (DEFAULT_PLOT if no_args else None)
    video_path = args.video or (DEFAULT_VIDEO if no_args else None)
    overrides = {}
    if args.seconds is not None:
        overrides["seconds"] = args.seconds
    if args.firmware_set:
        pairs = []
        for item in args.firmware_set:
            name, sep, value = item.partition("=")
            try:
                number = float(value)
            except ValueError:
                number = None
            if not sep or not name or number is None or not math.isfinite(number):
                return _fail("--set %r: expected KEY=NUMBER, a firmware config key (docs/firmware.md), "
                             "e.g. --set torque_ff_mu=0.005" % item)
            pairs.append((name.strip(), int(number) if number == int(number) else number))
        overrides["firmware"] = pairs
    try:
        if args.seconds is not None:
            warmup_s = load_scenario(args.scenario).warmup_s
            if not args.seconds > warmup_s:
                return _fail("--seconds %g: must be longer than the scenario's warm-up of %g s (boot, gyro "
                             "calibration, lock-on)" % (args.seconds, warmup_s))
        if "firmware" in overrides:
            overrides["firmware"] = tuple(load_scenario(args.scenario).firmware) + tuple(overrides["firmware"])
        scenario = load_scenario(args.scenario, overrides=overrides)
        if args.light is not None:
            from dataclasses import replace

            scenario = replace(scenario, light=replace(scenario.light, level=args.light))
    except ScenarioError as exc:
        return _fail(str(exc))
    face_image = None
    if args.face:
        from opensteady.sim.world import load_face_image

        try:
            face_image = load_face_image(args.face)
        except ValueError as exc:
            return _fail(str(exc))
    for what, path in (("plot", plot_path), ("video", video_path)):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            return _fail("cannot write the %s %r: its folder does not exist" % (what, path))

    from opensteady.host.config import ConfigError, build_pipeline_config, load_config
    from opensteady.host.simrig import run_scenario
    from opensteady.sim.firmware_runner import FirmwareError

    try:
        pipeline_config = build_pipeline_config(load_config(args.config))
    except ConfigError as exc:
        return _fail(str(exc))

    progress = not args.no_progress and sys.stderr.isatty()
    out = sys.stdout
    video = on_step = None
    if video_path and scenario.uses_vision:
        from opensteady.host.hud_video import HudVideo

        video = HudVideo(video_path, scenario.vision.fps)

        def on_step(step):
            if hasattr(step.out, "detections"):  # the baseline tracker has no HUD to draw
                video.write(step.frame.rgb, step.out, {"gimbal": "sim", "fps": scenario.vision.fps})
    try:
        result = run_scenario(scenario, firmware=args.firmware, seed=args.seed, face_image=face_image,
                              tracker=args.tracker, progress=progress, pipeline_config=pipeline_config,
                              on_step=on_step)
        metrics = result.metrics
        base = None
        if args.baseline or (no_args and scenario.uses_vision):
            if not scenario.uses_vision:
                return _fail("--baseline needs a tracking scenario (this one has no camera subjects)")
            base = run_scenario(scenario, firmware=args.firmware, seed=args.seed, face_image=face_image,
                                tracker="baseline", progress=progress, pipeline_config=pipeline_config)
            b = base.metrics["tracking_rms_frac"]
            metrics["baseline_tracking_rms_frac"] = b
            metrics["baseline_tracking_lost_frac"] = base.metrics["tracking_lost_frac"]
            mine = metrics["tracking_rms_frac"]
            metrics["tracking_rms_vs_baseline"] = round(mine / b, 4) if (mine is not None and b) else None
    except (FirmwareError, OSError) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except ValueError as exc:
        return _fail(str(exc))
    finally:
        if video is not None:
            video.close()
    if video is not None and video.frames:
        metrics["video"] = video.path
    if plot_path:
        from opensteady.sim.plot import plot_run

        plot_path = plot_run(result, scenario, plot_path, baseline=base)
        metrics["plot"] = plot_path
    _print_metrics(metrics, out if not args.json else sys.stderr)
    if plot_path:
        print("plot written to %s: where the face was in the picture over time against the calibration "
              "point%s, then stabilisation and motor effort" % (plot_path, ", OpenSteady beside the baseline"
                                                                if base is not None else ""),
              file=out if not args.json else sys.stderr)
    if video is not None and video.frames:
        print("video written to %s: what the gimbal's camera saw, with the HUD (red box: the tracked face, "
              "cyan circle: the calibration point)" % video.path, file=out if not args.json else sys.stderr)
    if args.json:
        print(json.dumps(metrics), file=out)
    return 0

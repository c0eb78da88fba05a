"""Run a closed-loop gimbal simulation scenario (``opensteady sim``).

With no arguments it runs the ``track-crossing`` scenario (a person crossing
the frame, real vision in the loop, firmware in-process) for 10 simulated
seconds, prints the metrics and writes ./opensteady-sim.png. No camera, board
or GPU needed.

The run is the application's own host loop (host/loop.py: TrackingPipeline,
mount, OpenSteady backend and link) on the simulated rig (host/simrig.py),
so ``opensteady track --sim --scenario X --seed N`` reports the same metrics.

    opensteady sim
    opensteady sim --scenario stabilize-walking --firmware micropython --json
    opensteady sim --scenario track-crossing --baseline --plot out.png
    opensteady sim --list
"""

import json
import os
import sys

from opensteady.host.errors import EXIT_FAILED, EXIT_USAGE, fail

DEFAULT_SCENARIO = "track-crossing"
DEFAULT_PLOT = "opensteady-sim.png"


def add_arguments(parser):
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO,
                        help="bundled scenario name or a .toml file (default: %(default)s; --list shows them)")
    parser.add_argument("--face", metavar="IMAGE", help="photo of a person to use instead of the astronaut")
    parser.add_argument("--seconds", type=float, metavar="S", help="simulated seconds (default: the scenario's)")
    parser.add_argument("--firmware", choices=("inprocess", "micropython"), default="inprocess",
                        help="run the firmware in this Python process or in the real MicroPython binary")
    parser.add_argument("--seed", type=int, default=0, help="random seed (runs are repeatable per seed)")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="host settings, as for `opensteady track` (framing, tracker, vision)")
    parser.add_argument("--tracker", choices=("opensteady", "baseline"),
                        help="tracker on the host side (default: the scenario's, normally opensteady)")
    parser.add_argument("--baseline", action="store_true",
                        help="also run the naive baseline tracker on the same scenario and seed, and report the ratio")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="write a plot here (default: %s when run without arguments)" % DEFAULT_PLOT)
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object on the last line")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--list", action="store_true", help="list the bundled scenarios and exit")


def _fail(message, code=EXIT_USAGE):
    return fail("sim", message, code)


def _print_metrics(m, stream):
    keys = ("scenario", "firmware", "tracker", "sim_seconds", "wall_seconds", "realtime_factor", "tracking_rms_frac",
            "tracking_lost_frac", "camera_jitter_rms_deg", "handle_motion_rms_deg", "max_motor_effort", "faults",
            "baseline_tracking_rms_frac", "tracking_rms_vs_baseline")
    for k in keys:
        if k in m:
            print("%-28s %s" % (k, m[k]), file=stream)


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
    overrides = {}
    if args.seconds is not None:
        overrides["seconds"] = args.seconds
    try:
        if args.seconds is not None:
            warmup_s = load_scenario(args.scenario).warmup_s
            if not args.seconds > warmup_s:
                return _fail("--seconds %g: must be longer than the scenario's warm-up of %g s (boot, gyro "
                             "calibration, lock-on)" % (args.seconds, warmup_s))
        scenario = load_scenario(args.scenario, overrides=overrides)
    except ScenarioError as exc:
        return _fail(str(exc))
    face_image = None
    if args.face:
        from opensteady.sim.world import load_face_image

        try:
            face_image = load_face_image(args.face)
        except ValueError as exc:
            return _fail(str(exc))
    if plot_path and not os.path.isdir(os.path.dirname(os.path.abspath(plot_path))):
        return _fail("cannot write the plot %r: its folder does not exist" % plot_path)

    from opensteady.host.config import ConfigError, build_pipeline_config, load_config
    from opensteady.host.simrig import run_scenario
    from opensteady.sim.firmware_runner import FirmwareError

    try:
        pipeline_config = build_pipeline_config(load_config(args.config))
    except ConfigError as exc:
        return _fail(str(exc))

    progress = not args.no_progress and sys.stderr.isatty()
    out = sys.stdout
    try:
        result = run_scenario(scenario, firmware=args.firmware, seed=args.seed, face_image=face_image,
                              tracker=args.tracker, progress=progress, pipeline_config=pipeline_config)
        metrics = result.metrics
        if args.baseline:
            if not scenario.uses_vision:
                return _fail("--baseline needs a tracking scenario (this one has no camera subjects)")
            base = run_scenario(scenario, firmware=args.firmware, seed=args.seed, face_image=face_image,
                                tracker="baseline", progress=progress, pipeline_config=pipeline_config)
            b = base.metrics["tracking_rms_frac"]
            metrics["baseline_tracking_rms_frac"] = b
            metrics["baseline_tracking_lost_frac"] = base.metrics["tracking_lost_frac"]
            mine = metrics["tracking_rms_frac"]
            metrics["tracking_rms_vs_baseline"] = round(mine / b, 4) if (mine is not None and b) else None
    except FirmwareError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except ValueError as exc:
        return _fail(str(exc))
    if plot_path:
        from opensteady.sim.plot import plot_run

        plot_path = plot_run(result, scenario, plot_path)
        metrics["plot"] = plot_path
    _print_metrics(metrics, out if not args.json else sys.stderr)
    if plot_path:
        print("plot written to %s" % plot_path, file=out if not args.json else sys.stderr)
    if args.json:
        print(json.dumps(metrics), file=out)
    return 0

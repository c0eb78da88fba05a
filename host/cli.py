"""The ``opensteady`` command line: one script, one subcommand per job.

Each subcommand lives in its own module that exposes ``add_arguments(parser)``
and ``run(args) -> int``. Those modules keep heavy imports (mediapipe, mujoco)
inside ``run`` so ``opensteady --help`` stays instant.

    opensteady --version
    opensteady ping --port /dev/ttyACM0
    opensteady sim --scenario track-crossing --plot out.png
"""

import argparse
import importlib
import logging
import sys

from opensteady.host import __version__

# name -> (module, one-line help)
SUBCOMMANDS = {
    "sim": ("opensteady.sim.cli", "run a headless closed-loop gimbal simulation scenario"),
    "track": ("opensteady.host.track", "track a face with a webcam, video file or the simulator"),
    "ping": ("opensteady.host.ping", "connect to OpenSteady firmware, handshake and show telemetry"),
    "flash": ("opensteady.host.flash", "compile the firmware with mpy-cross and copy it to a board"),
    "bench": ("opensteady.host.bench", "run the benchmarks written down in docs/benchmarks.md"),
    "sweep": ("opensteady.sim.sweep", "run a grid of simulator scenarios on Dask and write one CSV row per run"),
    "replay": ("opensteady.host.replay", "turn a session log (JSON lines) into plots"),
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="opensteady",
        description="OpenSteady: open-source AI tracking gimbal (vision, host, firmware, simulator).",
    )
    parser.add_argument("--version", action="version", version="opensteady " + __version__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name != module_name:
                raise
            continue  # not part of this checkout
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().splitlines()[0])
        module.add_arguments(p)
        modules[name] = module
    return parser, modules


def main(argv=None):
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

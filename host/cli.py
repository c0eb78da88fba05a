"""The ``opensteady`` command line: one script, one subcommand per job.

Each subcommand lives in its own module that exposes ``add_arguments(parser)``
and ``run(args) -> int``. Those modules keep heavy imports (mediapipe, mujoco)
inside ``run`` so ``opensteady --help`` stays instant.

    opensteady --version
    opensteady ping --port /dev/ttyACM0
    opensteady sim --scenario track-crossing --plot out.png

Errors and exit codes are the same for every subcommand (host/errors.py,
docs/host.md): ``opensteady COMMAND: error: ...`` on stderr; 0 done, 1 the
run failed, 2 bad usage, 3 a bug, 130 interrupted.
"""

import argparse
import importlib
import logging
import sys
import traceback

from opensteady.host import __version__
from opensteady.host.errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USAGE, CommandError, fail

# name -> (module, one-line help)
SUBCOMMANDS = {
    "sim": ("opensteady.host.simcli", "run a headless closed-loop gimbal simulation scenario"),
    "track": ("opensteady.host.track", "track a face with a webcam, video file or the simulator"),
    "ping": ("opensteady.host.ping", "connect to OpenSteady firmware, handshake and show telemetry"),
    "flash": ("opensteady.host.flash", "compile the firmware with mpy-cross and copy it to a board"),
    "bench": ("opensteady.host.bench", "run the benchmarks written down in docs/benchmarks.md"),
    "tune": ("opensteady.host.tune", "auto-tune the gimbal's axes (relay experiment on the firmware) and show a step"),
    "sweep": ("opensteady.host.sweep", "run a grid of simulator scenarios on Dask and write one CSV row per run"),
    "replay": ("opensteady.host.replay", "turn a session log (JSON lines) into plots"),
    "gestures": ("opensteady.host.gesture_record", "record your own hand's gestures as a labelled landmark CSV"),
}


VERBOSE_HELP = "more log output (-vv for debug and tracebacks); before or after the subcommand"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="opensteady",
        description="OpenSteady: open-source AI tracking gimbal (vision, host, firmware, simulator).",
    )
    parser.add_argument("--version", action="version", version="opensteady " + __version__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
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
        # -v also works after the subcommand (`opensteady sim -v`); SUPPRESS keeps the count from before it
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=VERBOSE_HELP)
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
        return EXIT_USAGE
    try:
        return int(modules[args.command].run(args) or 0)
    except CommandError as exc:
        return fail(args.command, str(exc), exc.code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug: one clear line, the traceback with -vv
        if args.verbose >= 2:
            traceback.print_exc()
        return fail(args.command, "internal error %s: %s\nThis is a bug in opensteady: please report it with the "
                    "command line and the output of `opensteady -vv %s ...`" % (type(exc).__name__, exc, args.command),
                    EXIT_BUG)


if __name__ == "__main__":
    sys.exit(main())

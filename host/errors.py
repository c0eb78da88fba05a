"""One error style and one exit-code table for every ``opensteady`` subcommand.

A problem the user can fix is printed as one line (or a short paragraph) on
stderr, ``opensteady COMMAND: error: WHAT (FIX)``, the way argparse reports a
bad flag, and the command exits with a code from this table (docs/host.md
shows it too):

====  =====================================================================
code  meaning
====  =====================================================================
0     done
1     the run failed: a camera, device or firmware process failed, stopped
      answering or sent nothing usable
2     bad usage: a bad flag or setting, or a file, folder or port that
      cannot be opened, read or written
3     an internal error (a bug): the message says how to report it
130   interrupted (Ctrl-C or SIGTERM)
====  =====================================================================

Subcommands either return ``fail(command, message, code)`` or raise
:class:`CommandError`; ``host/cli.py`` prints it.

    raise CommandError("cannot read run.jsonl: it is not a text file", EXIT_USAGE)
"""

import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "the run failed: a camera, device or firmware process failed, stopped answering or sent nothing usable",
    EXIT_USAGE: "bad usage: a bad flag or setting, or a file, folder or port that cannot be opened, read or written",
    EXIT_BUG: "an internal error (a bug): the message says how to report it",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM)",
}


class CommandError(Exception):
    """A problem the user can fix; ``str()`` is the message, ``code`` the exit code."""

    def __init__(self, message, code=EXIT_USAGE):
        super().__init__(message)
        self.code = code


def fail(command, message, code=EXIT_USAGE, stream=None):
    """Print ``opensteady COMMAND: error: MESSAGE`` on stderr and return ``code``."""
    print("opensteady %s: error: %s" % (command, message), file=stream or sys.stderr)
    return code


def link_exit_code(exc):
    """The exit code for a host.link.LinkError: a port that cannot be opened is bad usage (2); a device that
    opened but did not answer, or answered as something else, failed the run (1)."""
    from opensteady.host.link import NoResponse, ProtocolVersionMismatch, WrongFirmware

    return EXIT_FAILED if isinstance(exc, (NoResponse, WrongFirmware, ProtocolVersionMismatch)) else EXIT_USAGE


def check_output_folder(path, what):
    """Raise CommandError unless the folder that will hold ``path`` exists (nothing is created)."""
    import os

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError("cannot write the %s %s: the folder %s does not exist (create it first, or choose "
                           "another path)" % (what, path, folder))

